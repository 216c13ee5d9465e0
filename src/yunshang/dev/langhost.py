"""A Pulumi language plugin for Python (`pulumi-language-python`), for the pinned CLI.

The Go module of Pulumi's own Python language host is not served here, so `make setup` installs
this one next to the pinned `pulumi` binary (a small launcher that runs
``python -m yunshang.dev.langhost``).  It serves the engine's LanguageRuntime gRPC service
(stubs from the `pulumi` wheel) and, on Run, executes Pulumi's own
``pulumi-language-python-exec`` script (taken from the pulumi/sdk/v3 Go module at setup) with
the project's virtualenv, exactly as the Go host does: same arguments, config in
PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS, exit code 32 meaning "error already shown".

Protocol (sdk/go/common/resource/plugin): the CLI starts ``pulumi-language-python [flags]
<engine address>`` in the project directory and reads the port from our first stdout line.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Iterable

EXEC_SCRIPT = "pulumi-language-python-exec"
BAIL_EXIT_CODE = 32  # the exec script showed the user an actionable message already


class HostError(RuntimeError):
    """A problem the user must fix (missing virtualenv, missing exec script)."""


def virtualenv_of(root: str, options: dict) -> Path | None:
    """The virtualenv named in Pulumi.yaml (runtime.options.virtualenv), relative to the project."""
    venv = options.get("virtualenv")
    if not venv:
        return None
    p = Path(venv)
    return p if p.is_absolute() else Path(root or ".") / p


def python_of(venv: Path | None) -> str:
    if venv is None:
        return sys.executable
    py = venv / "bin" / "python"
    if not py.exists():
        raise HostError(f"virtualenv {venv} has no bin/python: create it with `make setup` in the project directory")
    return str(py)


def exec_script(search: Iterable[Path]) -> Path:
    """Pulumi's exec script: beside this host's launcher (where setup puts it), then on PATH."""
    dirs = [*search, *(Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d)]
    for d in dirs:
        p = d / EXEC_SCRIPT
        if p.is_file():
            return p
    raise HostError(f"{EXEC_SCRIPT} not found beside the language host or on PATH: run `make setup`")


def exec_command(python: str, script: Path, req, engine: str, program: str) -> list[str]:
    """The command line the Go host uses for the exec script (see its argparse)."""
    cmd = [python, "-u", str(script),
           "--monitor", req.monitor_address, "--engine", engine,
           "--project", req.project, "--root_directory", req.info.root_directory or req.pwd,
           "--stack", req.stack, "--pwd", req.pwd,
           "--dry_run", "true" if req.dryRun else "false",
           "--parallel", str(req.parallel)]
    if req.organization:
        cmd += ["--organization", req.organization]
    return [*cmd, program, *req.args]


def program_path(req) -> str:
    """Absolute path of the entry point (a directory runs its __main__.py)."""
    info = req.info
    base = Path(info.program_directory or req.pwd)
    entry = info.entry_point or req.program or "."
    return str((base / entry).resolve())


def plugin_dependencies(venv: Path | None) -> list[dict[str, str]]:
    """Resource plugins the virtualenv's Pulumi packages ask for (their pulumi-plugin.json)."""
    if venv is None:
        return []
    out = []
    for f in sorted(venv.glob("lib/python*/site-packages/*/pulumi-plugin.json")):
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("resource") and meta.get("name"):
            version = meta.get("version", "")
            out.append({"name": meta["name"], "kind": "resource",
                        "version": version if not version or version.startswith("v") else f"v{version}",
                        "server": meta.get("server", "")})
    return out


def _options(info) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(info.options) if info.HasField("options") else {}


def make_servicer(engine: str, search: list[Path]):
    import grpc
    from pulumi.runtime.proto import LanguageRuntimeServicer, language_pb2, plugin_pb2

    class Host(LanguageRuntimeServicer):
        def GetPluginInfo(self, request, context):
            from importlib.metadata import version

            return plugin_pb2.PluginInfo(version=version("pulumi"))

        def GetRequiredPlugins(self, request, context):
            venv = virtualenv_of(request.info.root_directory or request.pwd, _options(request.info))
            return language_pb2.GetRequiredPluginsResponse(
                plugins=[plugin_pb2.PluginDependency(**d) for d in plugin_dependencies(venv)])

        def Run(self, request, context):
            try:
                venv = virtualenv_of(request.info.root_directory or request.pwd, _options(request.info))
                cmd = exec_command(python_of(venv), exec_script(search), request, engine, program_path(request))
            except HostError as e:
                return language_pb2.RunResponse(error=str(e))
            env = dict(os.environ)
            env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
            env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
            if venv is not None:
                env["VIRTUAL_ENV"] = str(venv)
                env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
            # the program's output goes where ours goes: the engine shows it
            rc = subprocess.call(cmd, cwd=request.pwd or None, env=env)
            if rc == 0:
                return language_pb2.RunResponse()
            if rc == BAIL_EXIT_CODE:
                return language_pb2.RunResponse(bail=True)
            return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {rc}")  # as the Go host says

        def InstallDependencies(self, request, context):
            venv = virtualenv_of(request.info.root_directory or request.directory, _options(request.info))
            try:
                python_of(venv)
            except HostError as e:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            yield language_pb2.InstallDependenciesResponse(
                stdout=f"virtualenv {venv or sys.prefix} is ready (dependencies come from `make setup`)\n".encode())

        def About(self, request, context):
            venv = virtualenv_of(request.info.root_directory, _options(request.info))
            py = python_of(venv) if venv and (venv / "bin" / "python").exists() else sys.executable
            version = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                                     capture_output=True, text=True).stdout.strip()
            return language_pb2.AboutResponse(executable=py, version=version)

        def GetProgramDependencies(self, request, context):
            venv = virtualenv_of(request.info.root_directory or request.pwd, _options(request.info))
            py = python_of(venv)
            listing = subprocess.run([py, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                                     capture_output=True, text=True).stdout or "[]"
            deps = [language_pb2.DependencyInfo(name=d["name"], version=d["version"]) for d in json.loads(listing)]
            return language_pb2.GetProgramDependenciesResponse(dependencies=deps)

    return Host()


def serve(argv: list[str]) -> None:
    import grpc
    from pulumi.runtime.proto import language_pb2_grpc

    positional = [a for a in argv if not a.startswith("-")]
    engine = positional[-1] if positional else ""
    search = [Path(os.environ["YUNSHANG_LANGHOST_DIR"])] if os.environ.get("YUNSHANG_LANGHOST_DIR") else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)])
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(make_servicer(engine, search), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # the engine ends a plugin with SIGINT (then SIGKILL): stop quietly, no traceback in its output
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(grace=1)


LAUNCHER = """#!/bin/sh
# pulumi-language-python for the pinned pulumi CLI (written by `yunshang dev setup`; see yunshang.dev.langhost).
# Python: $YUNSHANG_PYTHON, else the project's .venv, else the one that ran setup.
YUNSHANG_LANGHOST_DIR=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
export YUNSHANG_LANGHOST_DIR
for py in "$YUNSHANG_PYTHON" "$PWD/.venv/bin/python" "{python}"; do
  if [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import yunshang.dev.langhost' 2>/dev/null; then
    exec "$py" -m yunshang.dev.langhost "$@"
  fi
done
echo "pulumi-language-python: no Python with yunshang installed (tried \\$YUNSHANG_PYTHON, ./.venv, {python}); run make setup" >&2
exit 1
"""


def install(bin_dir: Path, script_source: Path) -> list[Path]:
    """Put the launcher and Pulumi's exec script next to the pinned `pulumi`."""
    launcher = bin_dir / "pulumi-language-python"
    launcher.write_text(LAUNCHER.format(python=sys.executable))
    launcher.chmod(0o755)
    script = bin_dir / EXEC_SCRIPT
    script.write_bytes(script_source.read_bytes())
    script.chmod(0o755)
    return [launcher, script]


if __name__ == "__main__":
    serve(sys.argv[1:])
