"""One Target (kubeconfig, context) from the CLI's root callback to every command, Pulumi included."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from yunshang.cli import app
from yunshang.infra.config import StackConfig, with_target
from yunshang.target import Target


def test_only_what_the_command_line_chose_overrides_the_stack():
    assert Target().pulumi_env() == {}
    assert Target("/k/from-env", named="$KUBECONFIG").pulumi_env() == {}  # $KUBECONFIG: the stack's own setting
    assert Target("/k/f", named="--kubeconfig").pulumi_env() == {"YUNSHANG_KUBECONFIG": "/k/f"}
    assert Target(None, "c").pulumi_env() == {"YUNSHANG_CONTEXT": "c"}
    cfg = StackConfig(kubeconfig="/stack/kc", context="stackctx")
    assert with_target(cfg, {}) == cfg
    assert with_target(cfg, {"YUNSHANG_KUBECONFIG": "/k/f", "YUNSHANG_CONTEXT": "c"}).model_dump() == \
        cfg.model_copy(update={"kubeconfig": "/k/f", "context": "c"}).model_dump()


@pytest.mark.parametrize("flags", [["--kubeconfig", "/tmp/x"], ["--context", "y"]])
def test_dev_refuses_a_chosen_cluster_in_one_line(flags, monkeypatch, capsys):
    from yunshang.cli.common import run_app

    monkeypatch.setattr("sys.argv", ["yunshang", *flags, "dev", "status"])
    assert run_app(app) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not apply to `yunshang dev`" in lines[0], err


def test_every_cluster_command_gets_the_target(monkeypatch, tmp_path):
    """The tenant, share, audit and report commands all make their client from the root's Target."""
    seen = []

    class Probe:
        def __init__(self, kubeconfig=None, context=None, named=None):
            seen.append((kubeconfig, context, named))
            raise SystemExit(0)
    monkeypatch.setattr("yunshang.client.Tenants", Probe)
    kc = str(tmp_path / "kc")
    for args in (["tenant", "list"], ["share", "list"], ["audit"], ["report", "performance"]):
        CliRunner().invoke(app, ["--kubeconfig", kc, "--context", "c", *args])
    assert seen == [(kc, "c", "--kubeconfig")] * 4
