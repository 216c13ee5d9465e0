"""The Python language host's pure parts, and `yunshang dev env` as a shell reads it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.runtime.proto import language_pb2

from yunshang.dev import langhost

ROOT = Path(__file__).resolve().parents[2]


def run_request(**kw):
    from google.protobuf import struct_pb2

    opts = struct_pb2.Struct()
    opts.update({"virtualenv": ".venv", "toolchain": "pip"})
    info = language_pb2.ProgramInfo(root_directory="/p", program_directory="/p/infra", entry_point=".", options=opts)
    base = dict(monitor_address="127.0.0.1:1", project="yunshang", stack="local", pwd="/p", program="infra",
                dryRun=True, parallel=8, info=info)
    return language_pb2.RunRequest(**{**base, **kw})


def test_exec_command_is_the_go_hosts():
    req = run_request(organization="gov", args=["a"])
    prog = langhost.program_path(req)
    assert prog == "/p/infra"
    cmd = langhost.exec_command("/p/.venv/bin/python", Path("/t/pulumi-language-python-exec"), req, "127.0.0.1:2", prog)
    assert cmd == ["/p/.venv/bin/python", "-u", "/t/pulumi-language-python-exec",
                   "--monitor", "127.0.0.1:1", "--engine", "127.0.0.1:2", "--project", "yunshang",
                   "--root_directory", "/p", "--stack", "local", "--pwd", "/p", "--dry_run", "true",
                   "--parallel", "8", "--organization", "gov", "/p/infra", "a"]


def test_virtualenv_is_relative_to_the_project_and_must_exist(tmp_path):
    assert langhost.virtualenv_of("/p", {"virtualenv": ".venv"}) == Path("/p/.venv")
    assert langhost.virtualenv_of("/p", {"virtualenv": "/abs/venv"}) == Path("/abs/venv")
    assert langhost.virtualenv_of("/p", {}) is None
    with pytest.raises(langhost.HostError, match=r"virtualenv .*/nope has no bin/python: create it with `make setup`"):
        langhost.python_of(tmp_path / "nope")


def test_required_plugins_come_from_the_virtualenvs_packages():
    deps = langhost.plugin_dependencies(ROOT / ".venv")
    assert {"name": "kubernetes", "kind": "resource", "version": "v4.25.0", "server": ""} in deps


def test_exec_script_is_found_beside_the_host_or_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(langhost.HostError, match="pulumi-language-python-exec not found"):
        langhost.exec_script([tmp_path])
    (tmp_path / langhost.EXEC_SCRIPT).write_text("#!/bin/sh\n")
    assert langhost.exec_script([tmp_path]) == tmp_path / langhost.EXEC_SCRIPT


def test_dev_env_is_shell_exports(tmp_path):
    state = tmp_path / "state"
    r = subprocess.run([str(Path(sys.executable).parent / "yunshang"), "dev", "env", "--state-dir", str(state)],
                       capture_output=True, text=True, check=True)
    shown = subprocess.run(["sh", "-c", r.stdout + "env"], capture_output=True, text=True, check=True).stdout
    env = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert env["KUBECONFIG"] == str(state / "kubeconfig")
    assert env["YUNSHANG_KUBECONFIG"] == str(state / "kubeconfig")
    assert env["PULUMI_BACKEND_URL"] == (state / "pulumi" / "pulumi-backend").as_uri()
    assert env["PULUMI_HOME"] == str(state / "pulumi" / "pulumi-home")
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_CONFIG_PASSPHRASE"]
    from yunshang.dev import toolchain

    assert env["PATH"].split(":")[0] == str(toolchain.bin_dir())
    as_json = subprocess.run([str(Path(sys.executable).parent / "yunshang"), "dev", "env", "--state-dir", str(state), "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(as_json)["PULUMI_HOME"] == env["PULUMI_HOME"]
