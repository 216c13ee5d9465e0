"""`yunshang dev tools` shows which binary each tool resolves to (README "Set-up: where every binary
comes from"): every tool of the set-up table, each with the path it resolves to, including when
YUNSHANG_BIN_DIR or a per-tool variable (YUNSHANG_<TOOL>) puts it elsewhere.  No cluster."""
from __future__ import annotations

import json
from pathlib import Path

from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.dev import toolchain

# the README's set-up table, one name per binary (its rows name several: "kube-apiserver,
# kube-controller-manager, kube-scheduler", "prometheus, promtool, alertmanager")
TOOLS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "pulumi",
         "pulumi-resource-kubernetes", "pulumi-language-python", "prometheus", "promtool", "alertmanager"]


def fake_tool(path: Path, version: str) -> Path:
    """An executable that answers any version flag with one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(0o755)
    return path


def cli(monkeypatch, capfd, *args):
    monkeypatch.setattr("sys.argv", ["yunshang", *args])
    capfd.readouterr()
    code = run_app(app)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_dev_tools_lists_each_tool_with_the_binary_it_resolves_to(monkeypatch, capfd, tmp_path):
    bin_dir, elsewhere = tmp_path / "opt-k8s-bin", tmp_path / "elsewhere"
    for tool in TOOLS:
        fake_tool(bin_dir / tool, f"{tool} 9.9.9-from-bin-dir")
    kwok = fake_tool(elsewhere / "my-kwok", "kwok 0.0.1-from-variable")
    monkeypatch.setenv("YUNSHANG_CACHE", str(tmp_path / "empty-cache"))  # not the real toolchain
    monkeypatch.setenv("YUNSHANG_BIN_DIR", str(bin_dir))
    monkeypatch.setenv("YUNSHANG_KWOK", str(kwok))  # one variable per tool wins over YUNSHANG_BIN_DIR
    for tool in TOOLS:
        if tool != "kwok":
            monkeypatch.delenv("YUNSHANG_" + tool.upper().replace("-", "_"), raising=False)
    want = {tool: bin_dir / tool for tool in TOOLS} | {"kwok": kwok}
    # what the platform itself would run: the README's order (variable, YUNSHANG_BIN_DIR, cache, Debian)
    assert {tool: toolchain.find(tool) for tool in TOOLS} == want

    code, out, err = cli(monkeypatch, capfd, "dev", "tools")
    assert code == 0, err
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    unlisted = [t for t in TOOLS if t not in lines]
    no_path = [t for t in TOOLS if t in lines and str(want[t]) not in lines[t]]
    assert not unlisted and not no_path, (f"`yunshang dev tools` does not list {unlisted} and does not show the "
                                          f"binary of {no_path}:\n{out}")
    assert str(bin_dir / "kwok") not in lines["kwok"]  # the variable's binary, not YUNSHANG_BIN_DIR's

    code, out, err = cli(monkeypatch, capfd, "dev", "tools", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(TOOLS) <= set(doc), f"-o json lists {sorted(doc)}"
    assert all(str(want[t]) in json.dumps(doc[t]) for t in TOOLS), doc
