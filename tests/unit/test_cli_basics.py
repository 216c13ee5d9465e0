"""The CLI without a cluster: help for every group, one-line errors, exit codes."""
from __future__ import annotations

import pytest

from yunshang.cli import app
from yunshang.cli.common import run_app


def cli(monkeypatch, capfd, *args):
    monkeypatch.setattr("sys.argv", ["yunshang", *args])
    code = run_app(app)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("group", ["dev", "tenant", "platform", "share", "audit", "report"])
def test_every_group_has_help(monkeypatch, capfd, group):
    code, out, _ = cli(monkeypatch, capfd, group, "--help")
    assert code == 0 and "Usage: yunshang" in out and len(out.splitlines()) > 8


def test_status_of_a_platform_that_is_not_running_exits_1(monkeypatch, capfd, tmp_path):
    code, out, _ = cli(monkeypatch, capfd, "dev", "status", "--state-dir", str(tmp_path))
    assert code == 1 and "not running" in out


def test_unreachable_cluster_is_one_line(monkeypatch, capfd, tmp_path):
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                  "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
                  "current-context: c\n")
    code, _, err = cli(monkeypatch, capfd, "--kubeconfig", str(kc), "tenant", "list")
    assert code == 1 and err.strip().count("\n") == 0
    assert "cannot reach the API server at https://127.0.0.1:1 (connection refused)" in err


def test_bad_tool_variable_is_named(monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("YUNSHANG_ETCD", "/nowhere/etcd")
    code, _, err = cli(monkeypatch, capfd, "dev", "up", "--state-dir", str(tmp_path), "--no-kubeconfig")
    assert code == 1 and "YUNSHANG_ETCD=/nowhere/etcd is not an executable file" in err


def test_pulumi_passthrough_runs_the_pinned_cli(monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("YUNSHANG_STATE_DIR", str(tmp_path))  # never the user's Pulumi state
    code, out, _ = cli(monkeypatch, capfd, "platform", "pulumi", "version")
    assert code == 0 and out.strip() == "v3.259.0"


def test_costs_with_an_unknown_stack(monkeypatch, capfd, tmp_path):
    code, _, err = cli(monkeypatch, capfd, "--kubeconfig", str(tmp_path / "none"), "report", "costs", "--stack", "nope")
    assert code == 1 and "no stack 'nope'" in err


def test_not_found_points_at_the_right_listing():
    from kubernetes.client import ApiException

    from yunshang.client import api_message

    e = ApiException(status=404, reason="Not Found")
    assert api_message(e, "tenant 'x'") == "tenant 'x' not found (see `yunshang tenant list`)"
    assert api_message(e, "agreement 'a'", "yunshang share list") == "agreement 'a' not found (see `yunshang share list`)"
