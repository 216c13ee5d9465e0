"""`yunshang dev`: the local platform (a real control plane on loopback) and its toolchain."""
from __future__ import annotations

from pathlib import Path

import typer

from ..dev import controlplane as cp_mod
from ..dev import toolchain
from .common import Output, OutputOpt, emit_json, out

dev_app = typer.Typer(
    help="Run the local platform: etcd, kube-apiserver, controller-manager, scheduler and kwok "
    "fake nodes on 127.0.0.1, built by `make setup`.",
    no_args_is_help=True,
)

StateOpt = typer.Option(
    None, "--state-dir", help="where logs, certificates and etcd data live "
    "(default $YUNSHANG_STATE_DIR or ~/.local/state/yunshang/dev)"
)


def _state(state_dir: Path | None) -> Path:
    return state_dir or cp_mod.default_state_dir()


@dev_app.command()
def up(
    state_dir: Path = StateOpt,
    kubeconfig: bool = typer.Option(
        True, "--kubeconfig/--no-kubeconfig",
        help="merge the yunshang-local context into your kubeconfig and make it current",
    ),
    with_platform: bool = typer.Option(
        True, "--platform/--bare",
        help="also install yunshang's CRDs and policies and run the operator (--bare: Kubernetes only)",
    ),
    output: Output = OutputOpt,
) -> None:
    """Start the local platform and wait until it is ready.

    Example: `yunshang dev up && yunshang tenant list`
    """
    cp = cp_mod.ControlPlane.load(_state(state_dir))
    with out.status("starting the local platform") as status:
        cp.up(progress=lambda m: status.update(m))
        if with_platform:
            try:
                cp.start_monitoring(progress=lambda m: status.update(m))
                cp.start_platform(progress=lambda m: status.update(m))
            except BaseException:
                cp.down()
                raise
    merged = None
    if kubeconfig:
        merged, _ = cp_mod.merge_into_user_kubeconfig(cp)
    info = {
        "server": cp.server,
        "kubeconfig": str(cp.kubeconfig),
        "context": cp_mod.CONTEXT,
        "merged_into": str(merged) if merged else None,
        "state_dir": str(cp.state),
        "nodes": list(cp.nodes),
    }
    if output == Output.json:
        emit_json(info)
        return
    out.print(f"[green]local platform ready[/] at {cp.server}")
    out.print(f"  kubeconfig : {cp.kubeconfig}" + (f" (context {cp_mod.CONTEXT} merged into {merged})" if merged else ""))
    out.print(f"  logs       : {cp.logs}")
    if with_platform:
        out.print(f"  operator   : running (log {cp.logs / 'operator.log'})")
        out.print(f"  prometheus : http://127.0.0.1:{cp.ports['prometheus']}  "
                  f"dashboard: http://127.0.0.1:{cp.ports['prometheus']}/consoles/yunshang.html")
        out.print(f"  alerts     : http://127.0.0.1:{cp.ports['alertmanager']}")
        out.print("  next       : yunshang tenant request -f tenants/gz-bigdata.yaml")
        out.print("               yunshang tenant approve gz-bigdata && yunshang tenant list")
    out.print("  also       : kubectl get nodes   |   yunshang dev status   |   yunshang dev down")


@dev_app.command()
def down(state_dir: Path = StateOpt) -> None:
    """Stop every process `dev up` started (data stays in the state dir)."""
    cp = cp_mod.ControlPlane.load(_state(state_dir))
    stopped = cp.down()
    cp_mod.remove_from_user_kubeconfig(cp)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@dev_app.command()
def status(state_dir: Path = StateOpt, output: Output = OutputOpt) -> None:
    """Show each component: pid, running, ready, log file. Exit 1 if anything is down."""
    from rich.table import Table

    cp = cp_mod.ControlPlane.load(_state(state_dir))
    st = cp.status()
    if output == Output.json:
        emit_json({"server": cp.server if cp.ports else None, "components": st})
    else:
        t = Table("component", "pid", "running", "log")
        for name, s in st.items():
            t.add_row(name, str(s["pid"]), "yes" if s["running"] else "[red]no[/]", s["log"])
        out.print(t if st else "the local platform is not running (start it with `yunshang dev up`)")
    if not st or not all(s["running"] for s in st.values()):
        raise typer.Exit(1)


@dev_app.command()
def setup() -> None:
    """Build or install every missing tool into the cache (what `make setup` runs)."""
    with out.status("installing the toolchain") as s:
        timings = toolchain.install(lambda m: (s.update(m), out.print(f"[dim]{m}[/]")))
    out.print(f"toolchain ready in {toolchain.bin_dir()} " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


@dev_app.command()
def tools(output: Output = OutputOpt) -> None:
    """Show where each tool comes from and its version."""
    v = toolchain.versions()
    if output == Output.json:
        emit_json(v)
    else:
        for k, s in v.items():
            out.print(f"{k:15} {s}")
