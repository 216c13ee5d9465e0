"""`yunshang dev`: the local platform (a real control plane on loopback) and its toolchain."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..lazy import OnFirstUse
from .common import Output, OutputOpt, UserError, emit_json, out

cp_mod = OnFirstUse("yunshang.dev.controlplane")
toolchain = OnFirstUse("yunshang.dev.toolchain")
setup_mod = OnFirstUse("yunshang.dev.setup")

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


@dev_app.callback()
def _local_only(ctx: typer.Context) -> None:
    """The local platform is reached through its own kubeconfig (<state dir>/kubeconfig): a cluster
    chosen with --kubeconfig or --context is refused, not silently ignored."""
    from .common import UsageProblem
    from .tenant import target

    t = target(ctx)
    if t.chosen:
        flag = "--kubeconfig" if t.named == "--kubeconfig" else "--context"
        raise UsageProblem(f"{flag} does not apply to `yunshang dev`: it runs the local platform of --state-dir "
                           "(its kubeconfig: <state dir>/kubeconfig); leave it out")


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
    catalog: bool = typer.Option(
        True, "--catalog/--no-catalog",
        help="then run `pulumi up` of the local stack: the platform as code and the example departments",
    ),
    real_node: bool = typer.Option(
        True, "--real-node/--fake-nodes-only",
        help="also run one real node (kubelet, containerd, a CNI bridge: pods really run) beside kwok's fake "
             "ones; needs root and cgroups, else it says why and runs fake nodes only",
    ),
    identity: bool = typer.Option(
        True, "--identity/--no-identity",
        help="also run Keycloak, the identity provider the API server trusts (its realm: the catalog's departments "
             "and stacks/people.local.yaml); people then sign in with `yunshang login`",
    ),
    output: Output = OutputOpt,
) -> None:
    """Start the local platform and wait until it is ready.

    Example: `yunshang dev up && yunshang tenant list`
    """
    cp = cp_mod.ControlPlane.load(_state(state_dir))
    cp.real_node = real_node
    if identity:
        cp.identity = _local_identity()
    with out.status("starting the local platform") as status:
        cp.up(progress=lambda m: status.update(m))
        if with_platform:
            try:
                cp.start_monitoring(_monitoring_settings(), progress=lambda m: status.update(m))
                cp.start_platform(progress=lambda m: status.update(m))
            except BaseException:
                cp.down()
                raise
            if catalog:
                status.update("pulumi up of the local stack (platform as code + tenants/)")
                changes = _pulumi_up_local(cp)
    merged = previous = None
    if kubeconfig:
        merged, previous = _merge_user_kubeconfig(cp)
    down_cmd = _down_command(cp.state)
    context, lines = _context_report(cp_mod.context_name(cp.state), merged, previous, down_cmd)
    info = {
        "server": cp.server,
        "kubeconfig": str(cp.kubeconfig),
        **context,
        "merged_into": str(merged) if merged else None,
        "state_dir": str(cp.state),
        "nodes": list(cp.nodes),
        "real_node": cp.real_node_name(),
        "real_node_note": cp.node_note,
        "identity": {"issuer": json.loads(cp.identity_file.read_text())["issuer"],
                     "people": str(cp.people_file)} if identity else None,
    }
    if output == Output.json:
        emit_json(info)
        return
    out.print(f"[green]local platform ready[/] at {cp.server}")
    out.print(f"  kubeconfig : {cp.kubeconfig}")
    for line in lines:
        out.print(line, highlight=False)
    out.print(f"  logs       : {cp.logs}")
    if cp.real_node_name():
        out.print(f"  real node  : {cp.real_node_name()} (pods that tolerate its taint "
                  f"{cp_mod.node_mod.TAINT['key']} run there; the rest on kwok's fake nodes)", highlight=False)
    elif real_node:
        out.print(f"  real node  : none — {cp.node_note}", highlight=False)
    if identity:
        out.print(f"  sign-in    : Keycloak at {info['identity']['issuer']}; its people and passwords: "
                  "`yunshang dev people`; then `yunshang login` (or `--device`)", highlight=False)
    if with_platform:
        if catalog:
            out.print(f"  pulumi up  : stack local, {changes}; departments from tenants/ are being provisioned")
        out.print(f"  operator   : running (log {cp.logs / 'operator.log'})")
        out.print(f"  prometheus : http://127.0.0.1:{cp.ports['prometheus']}  "
                  f"dashboard: http://127.0.0.1:{cp.ports['prometheus']}/consoles/yunshang.html")
        out.print(f"  alerts     : http://127.0.0.1:{cp.ports['alertmanager']}")
        out.print("  try next   : yunshang tenant list                      # the catalog, Ready in seconds")
        out.print("               yunshang tenant request my-dept --department-code 520000-X \\")
        out.print("                 --department-name 某某局 --level province --owner me --purpose demo --project P-1")
        out.print("               yunshang tenant approve my-dept --all-roles   # the reviewers sign (locally: all roles)")
        out.print("               yunshang share request --consumer gy-police --provider gz-bigdata \\")
        out.print("                 --namespace gz-bigdata-exchange --service api --port 80 --purpose 'case lookups'")
        out.print("               yunshang share approve gy-police.gz-bigdata.api   # the provider decides")
        out.print("               yunshang audit && yunshang report costs")
    out.print(f"  also       : kubectl get nodes   |   yunshang dev status   |   {down_cmd}", highlight=False)


@dev_app.command()
def down(state_dir: Path = StateOpt) -> None:
    """Stop every process `dev up` started (data stays in the state dir)."""
    cp = cp_mod.ControlPlane.load(_state(state_dir))
    stopped = cp.down()
    if not stopped:  # another platform's context may be current: not this command's to touch
        out.print(f"nothing was running from {cp.state}; {cp_mod.user_kubeconfig_path()} left unchanged",
                  highlight=False)
        return
    out.print(f"stopped: {', '.join(stopped)}")
    try:
        removal = cp_mod.remove_from_user_kubeconfig(cp)
    except cp_mod.KubeconfigError as e:
        raise UserError(f"{e}, then remove the context {cp_mod.context_name(cp.state)} with "
                        f"`kubectl config delete-context`") from None
    out.print(_removal_line(removal), highlight=False)


@dev_app.command()
def status(state_dir: Path = StateOpt, output: Output = OutputOpt) -> None:
    """Show each component: pid, running, ready, log file. Exit 1 if anything is down."""
    from rich.table import Table

    state = _state(state_dir)
    if not state.is_dir():
        raise UserError(f"--state-dir {state}: no such directory; nothing has run there "
                        f"(`yunshang dev up --state-dir {state}` starts a platform in it)")
    cp = cp_mod.ControlPlane.load(state)
    st = cp.status()
    if output == Output.json:
        emit_json({"server": cp.server if cp.ports else None, "state_dir": str(state), "components": st})
    else:
        t = Table("component", "pid", "running", "log")
        for name, s in st.items():
            t.add_row(name, str(s["pid"]), "yes" if s["running"] else "[red]no[/]", s["log"])
        out.print(t if st else f"the local platform in {state} is not running (start it with `yunshang dev up`)")
    if not st or not all(s["running"] for s in st.values()):
        raise typer.Exit(1)


@dev_app.command()
def env(state_dir: Path = StateOpt, output: Output = OutputOpt) -> None:
    """Print shell exports for plain `pulumi` and `kubectl` on the local platform.

    In the repo root: `eval "$(yunshang dev env)"; pulumi stack select local; pulumi preview;
    pulumi up --yes`.  The pinned pulumi (with its Python language host and the kubernetes
    provider) comes first on PATH; the file backend and PULUMI_HOME are the ones `dev up` uses;
    KUBECONFIG is the local platform's admin kubeconfig.
    """
    import sys

    from ..dev import pulumi_env

    state = _state(state_dir)
    values = {"KUBECONFIG": str(state / "kubeconfig"), **pulumi_env.env(state / "pulumi")}
    if state != cp_mod.default_state_dir():
        values["YUNSHANG_KUBECONFIG"] = values["KUBECONFIG"]  # the local stack names the default path
    if output == Output.json:
        emit_json(values)
        return
    sys.stdout.write(pulumi_env.exports(values))


@dev_app.command()
def setup() -> None:
    """Build or install every missing tool into the cache (what `make setup` runs): the toolchain,
    and Keycloak from Maven Central with the JDK it runs on."""
    with out.status("installing the toolchain") as s:
        timings = setup_mod.install(lambda m: (s.update(m), out.print(f"[dim]{m}[/]")))
    out.print(f"toolchain ready in {toolchain.bin_dir()} " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))


@dev_app.command()
def image(
    tag: str = typer.Option("", "--tag", help="the image's tag (default: the project's version, pyproject.toml)"),
    output_dir: Path = typer.Option(Path("dist"), "--output-dir", help="where operator-<tag>.oci.tar is written"),
    load: bool = typer.Option(False, "--load", help="also import it into the real node of the local platform "
                              "(--state-dir), as yunshang.local/operator:<tag>"),
    monitoring: bool = typer.Option(False, "--monitoring", help="also build Prometheus' and Alertmanager's images "
                                    "from Debian's packages (for stack config yunshang:monitoring.mode deploy)"),
    state_dir: Path = StateOpt,
    output: Output = OutputOpt,
) -> None:
    """Build the operator's image as an OCI archive, from Debian's packages (mmdebstrap), the operator's
    pinned dependencies and this project's wheel: no container daemon, no base image, no registry
    (what `make image` runs).  Push it where a cluster pulls from, e.g.

      skopeo copy oci-archive:dist/operator-0.1.0.oci.tar docker://registry.gz.gov.local/yunshang/operator:0.1.0

    (tested against a registry on loopback), then set `yunshang:operator.image` in the stack to that reference."""
    from ..dev import operator_image

    with out.status("building the operator image") as s:
        try:
            built = operator_image.build(output_dir, tag or None, lambda m: (s.update(m), out.print(f"[dim]{m}[/]")))
        except RuntimeError as e:
            raise UserError(f"the operator image was not built: {e}") from None
        extra: dict = {}
        if monitoring:
            from ..dev import images

            extra = images.monitoring_images(output_dir, lambda m: (s.update(m), out.print(f"[dim]{m}[/]")))
        if load:
            from ..dev import node

            rn = node.RealNode.load(cp_mod.ControlPlane(state=_state(state_dir)).node_state)
            if rn is None:
                raise UserError(f"no real node runs in {_state(state_dir)}: start it with `yunshang dev up`, "
                                "or build without --load")
            for ref, path in {built.ref: built.path, **extra}.items():
                rn.import_image(path, ref)
    info = built.summary() | {"loaded": load, "monitoring": {ref: str(p) for ref, p in extra.items()}}
    if output == Output.json:
        emit_json(info)
    else:
        out.print(f"{built.ref}  {info['size_mib']} MiB ({info['unpacked_mib']} MiB unpacked), "
                  f"{info['debian_packages']} Debian packages, {info['python_distributions']} Python distributions, "
                  f"built in {info['seconds']} s", markup=False, highlight=False)
        out.print(f"{built.path}  {built.digest}" + ("  (loaded into the local node)" if load else ""),
                  markup=False, highlight=False)
        for ref, path in extra.items():
            out.print(f"{ref}  {path}  {path.stat().st_size / 2**20:.1f} MiB", markup=False, highlight=False)


@dev_app.command()
def people(state_dir: Path = StateOpt, output: Output = OutputOpt) -> None:
    """The local identity provider's people: username, provider groups and the password made for this
    platform (stacks/people.local.yaml and a clerk for each department of tenants/).  Sign in as one
    with `yunshang login`."""
    cp = cp_mod.ControlPlane.load(_state(state_dir))
    if not cp.people_file.exists():
        raise UserError(f"no identity provider was started in {cp.state}: `yunshang dev up` starts one "
                        "(unless --no-identity)")
    everyone = json.loads(cp.people_file.read_text())
    if output == Output.json:
        emit_json(everyone)
        return
    for name, p in everyone.items():
        out.print(f"{name:22} {p['password']:18} {', '.join(p['groups']) or '— (no group)'}",
                  highlight=False, markup=False)


def _local_identity():
    from ..dev.keycloak import LocalIdentity
    from ..infra.config import PROJECT_ROOT, ConfigError

    try:
        return LocalIdentity.of_project(PROJECT_ROOT)
    except (ConfigError, ValueError) as e:
        raise UserError(f"the local identity provider's realm: {e}") from None


@dev_app.command()
def tools(output: Output = OutputOpt) -> None:
    """Show the binary each tool resolves to (YUNSHANG_<TOOL>, then YUNSHANG_BIN_DIR, then the pinned
    toolchain cache) and, where it says, its version; then Keycloak and the JDK it runs on."""
    v = setup_mod.versions()
    if output == Output.json:
        emit_json(v)
    else:
        for k, s in v.items():
            out.print(f"{k:27} {s['path'] or '-':60} {s['version']}", markup=False, highlight=False)


def _merge_user_kubeconfig(cp) -> tuple[Path, str | None]:
    try:
        return cp_mod.merge_into_user_kubeconfig(cp)
    except cp_mod.KubeconfigError as e:
        raise UserError(f"{e}; the platform is running meanwhile (KUBECONFIG={cp.kubeconfig})") from None


def _down_command(state: Path) -> str:
    """The `dev down` that stops the platform in ``state`` (from the same environment)."""
    same = state.expanduser().resolve() == cp_mod.default_state_dir().expanduser().resolve()
    return "yunshang dev down" + ("" if same else f" --state-dir {state}")


def _context_report(name: str, merged: Path | None, previous: str | None,
                    down_cmd: str = "yunshang dev down") -> tuple[dict, list[str]]:
    """What `dev up` says about the user's kubeconfig: its JSON fields and its printed lines.

    ``name`` is the platform's context (``context_name``), ``merged`` the kubeconfig it was merged
    into (None: --no-kubeconfig), ``previous`` the context current before, ``down_cmd`` how to stop it.
    """
    default = cp_mod.CONTEXT
    separate = name != default
    fields = {"context": name, "context_current": merged is not None, "separate_from_default": separate}
    if merged is None:
        return fields, ["  context    : none merged (--no-kubeconfig); your kubeconfig is unchanged"]
    was = f"; was {previous}, back with `{down_cmd}`" if previous and previous != name else ""
    lines = [f"  context    : {name} merged into {merged} and now current{was}"]
    if separate:
        lines.append(f"  separate   : not the default platform's context {default}; "
                     f"`kubectl config use-context {default}` switches to that one")
    return fields, lines


def _removal_line(removal) -> str:
    """What `dev down` says about the user's kubeconfig (a ``controlplane.Removal``)."""
    if not removal.removed:
        return (f"  kubeconfig : {removal.path} left unchanged (no context {removal.context} "
                f"pointing at this platform)")
    now = ""
    if removal.current is not None:
        now = f"; current context now {removal.current}" if removal.current else "; no current context now"
    return f"  kubeconfig : removed context {removal.context} from {removal.path}{now}"


def _monitoring_settings():
    """The local stack's alerting (ops team, timing) for the local Alertmanager."""
    from ..dev.monitoring import Settings
    from ..infra.config import PROJECT_ROOT, ConfigError, from_stack_file
    from .common import UserError

    try:
        a = from_stack_file("local", PROJECT_ROOT).alerting
    except ConfigError as e:
        raise UserError(str(e)) from None
    return Settings(ops=a.ops, group_wait=a.timing.group_wait, group_interval=a.timing.group_interval,
                    repeat_interval=a.timing.repeat_interval)


def _pulumi_up_local(cp) -> dict:
    from pulumi import automation as auto

    from ..infra import automation
    from ..target import Target
    from .common import UserError

    here = Target(str(cp.kubeconfig), named="--kubeconfig")  # this platform's, whatever the stack says
    try:
        result = automation.stack("local", state=cp.state / "pulumi", env=here.pulumi_env()).up(color="never")
    except auto.errors.CommandError as e:
        raise UserError(f"pulumi up of the local stack failed: {str(e).strip().splitlines()[-1][:300]}; "
                        f"the platform is running, retry with `yunshang platform up`") from None
    return result.summary.resource_changes
