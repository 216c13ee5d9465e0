"""Run the real Pulumi engine fully offline against the local platform.

A file backend and the CLI's home live under the state dir, secrets use a passphrase, and
nothing is downloaded: no update check, no plugin acquisition.  The pinned CLI and its
language host are on PATH (the toolchain's bin); the kubernetes provider is linked into
PULUMI_HOME's plugin cache as `resource-kubernetes-v<version>`, where the engine looks for the
exact version the Python SDK asks for.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import toolchain

LOCAL_PASSPHRASE = "yunshang-local"  # protects only throwaway local stacks


def link_plugins(home: Path) -> None:
    """PULUMI_HOME/plugins/resource-kubernetes-vX/pulumi-resource-kubernetes -> the toolchain's build."""
    try:
        built = toolchain.find(toolchain.KUBERNETES_PLUGIN)
    except toolchain.ToolMissing:
        return  # the engine will say which plugin is missing; `make setup` builds it
    target = home / "plugins" / toolchain.plugin_dir().name / toolchain.KUBERNETES_PLUGIN
    if target.is_symlink() and target.resolve() == built.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(built)
    tmp.replace(target)


def env(state: Path, passphrase: str | None = None) -> dict[str, str]:
    backend = state / "pulumi-backend"
    home = state / "pulumi-home"
    backend.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    link_plugins(home)
    path = os.pathsep.join(
        [str(toolchain.bin_dir()), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    return {
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_HOME": str(home),
        "PULUMI_CONFIG_PASSPHRASE": passphrase
        or os.environ.get("PULUMI_CONFIG_PASSPHRASE", LOCAL_PASSPHRASE),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        # the language host runs the program with this interpreter's virtualenv tools
        "YUNSHANG_PYTHON": sys.executable,
        "PATH": path,
    }


def exports(values: dict[str, str]) -> str:
    """POSIX shell `export` lines, for `eval "$(yunshang dev env)"`."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())


def pulumi_command():
    """The Automation API's handle on the pinned CLI."""
    from pulumi import automation as auto

    return auto.PulumiCommand(root=str(toolchain.find("pulumi").parent.parent), skip_version_check=True)
