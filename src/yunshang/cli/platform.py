"""`yunshang platform`: provision the shared platform with Pulumi (the real engine, offline)."""
from __future__ import annotations

import time
from pathlib import Path

import typer

from .common import Output, OutputOpt, UserError, emit_json, out

platform_app = typer.Typer(
    help="Platform as code: the Pulumi program in infra/ with the stacks in stacks/ "
    "(namespaces, CRDs, RBAC, admission policies, operator, the department catalog).",
    no_args_is_help=True,
)

StackOpt = typer.Option("local", "--stack", "-s", help="stack: one of stacks/Pulumi.<name>.yaml: local (the local "
                        "platform) or prod; any other name is refused (nothing is created for it)")


TakeOverOpt = typer.Option(
    None, "--take-over", metavar="KIND/NAME",
    help="adopt an object that exists but is not this stack's (KIND/NAME or KIND/NAMESPACE/NAME, as the refusal "
         "names it; `unmarked` for every object no stack marks, e.g. once after upgrading from a yunshang without "
         "stack marks). Without it, up and preview stop before changing anything such an object.")


def _stack(ctx: typer.Context, name: str, take_over: list[str] | None = None):
    """The stack, its program told the Target when --kubeconfig or --context chose one (over the
    stack's own yunshang:kubeconfig and yunshang:context)."""
    from pulumi import automation as auto

    from ..infra import automation, ownership
    from .tenant import target

    try:
        return automation.stack(name, env={ownership.TAKE_OVER_ENV: ",".join(take_over or []),
                                           **target(ctx).pulumi_env()})
    except automation.UnknownStack as e:
        raise UserError(str(e)) from None
    except auto.errors.CommandError as e:
        raise UserError(f"cannot open stack {name!r}: {_last_line(str(e))}") from None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "stderr:" not in ln]
    errs = [ln for ln in lines if ln.lower().startswith("error")]
    return (errs or lines or ["unknown error"])[-1][:400]


def _run(what: str, fn, output: Output):
    from pulumi import automation as auto

    t0 = time.monotonic()
    try:
        result = fn(on_output=None if output == Output.json else lambda line: out.print(line, markup=False, highlight=False))
    except auto.errors.CommandError as e:
        raise UserError(f"pulumi {what} failed: {_last_line(str(e))}") from None
    return result, time.monotonic() - t0


@platform_app.command()
def up(ctx: typer.Context, stack: str = StackOpt, output: Output = OutputOpt,
       take_over: list[str] = TakeOverOpt) -> None:
    """Create or update everything the stack declares (pulumi up).  Objects another stack manages, or
    that exist unmarked, are never adopted unless named with --take-over.  `yunshang --kubeconfig F
    --context C platform up` deploys there instead of where the stack's config points."""
    s = _stack(ctx, stack, take_over)
    result, secs = _run("up", s.up, output)
    outputs = {k: v.value for k, v in result.outputs.items()}
    if output == Output.json:
        emit_json({"changes": result.summary.resource_changes, "seconds": round(secs, 1), "outputs": outputs})
        return
    out.print(f"[green]up[/] in {secs:.1f}s: {result.summary.resource_changes}")
    for k, v in outputs.items():
        out.print(f"  {k:12} {v}")


@platform_app.command()
def preview(ctx: typer.Context, stack: str = StackOpt, output: Output = OutputOpt,
            take_over: list[str] = TakeOverOpt) -> None:
    """Show what `up` would change, without changing anything (and stop where up would adopt an
    object that is not this stack's)."""
    s = _stack(ctx, stack, take_over)
    result, secs = _run("preview", s.preview, output)
    if output == Output.json:
        emit_json({"changes": result.change_summary, "seconds": round(secs, 1)})
        return
    out.print(f"preview in {secs:.1f}s: {result.change_summary}")


@platform_app.command()
def destroy(ctx: typer.Context, stack: str = StackOpt, yes: bool = typer.Option(False, "--yes", "-y")) -> None:
    """Remove the platform the stack created (namespaces, policies, RBAC, operator, monitoring).

    Retained, by design: the CRDs (with every Tenant, ShareAgreement and AuditRecord) and the
    catalog's tenants.  Removing those is explicit: `yunshang tenant delete NAME`, then
    `kubectl delete crd tenants.platform.yunshang.io ...` (see the README)."""
    if not yes and not typer.confirm(f"destroy everything in stack {stack}?"):
        raise typer.Exit(1)
    s = _stack(ctx, stack)
    result, secs = _run("destroy", s.destroy, Output.table)
    out.print(f"destroyed in {secs:.1f}s: {result.summary.resource_changes}")


@platform_app.command()
def outputs(ctx: typer.Context, stack: str = StackOpt, output: Output = OutputOpt) -> None:
    """The stack's outputs (API server, namespaces, tenants, dashboards)."""
    s = _stack(ctx, stack)
    values = {k: v.value for k, v in s.outputs().items()}
    if output == Output.json:
        emit_json(values)
        return
    for k, v in values.items():
        out.print(f"{k:12} {v}")


@platform_app.command("authorization-config")
def authorization_config(
    output_dir: Path = typer.Option(..., "--output-dir", "-d", help="where to write authorization.yaml and "
                                    "need-to-know.kubeconfig, e.g. /etc/kubernetes/yunshang (on every control-plane node)"),
    url: str = typer.Option("https://yunshang-operator-webhook.yunshang-system.svc:8443/authorize", help=(
        "the operator's /authorize endpoint as the API server reaches it (the webhooks' Service follows the leader)")),
    ca_file: Path = typer.Option(..., "--ca-file", exists=True, dir_okay=False, help=(
        "the CA of the operator's webhook certificate (ca.crt of the Secret yunshang:operator.webhookSecret names)")),
    token_file: Path = typer.Option(..., "--token-file", exists=True, dir_okay=False, help=(
        "the webhooks' bearer token (token of that Secret)")),
    output: Output = OutputOpt,
) -> None:
    """The API server's authorizers for need-to-know (Node, RBAC, then the operator's webhook for
    department reads by name): pass `--authorization-config=<dir>/authorization.yaml` to
    kube-apiserver instead of --authorization-mode.

    yunshang platform authorization-config -d /etc/kubernetes/yunshang --ca-file ca.crt --token-file token
    """
    import yaml

    from ..views import authorization_config as config, webhook_kubeconfig

    if not url.startswith("https://"):
        raise UserError(f"--url {url!r}: the API server sends its token only over TLS; give an https:// URL")
    output_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = (output_dir / "need-to-know.kubeconfig").resolve()
    kubeconfig.write_text(yaml.safe_dump(webhook_kubeconfig(url, str(ca_file.resolve()),
                                                            token_file=str(token_file.resolve()))))
    kubeconfig.chmod(0o600)
    path = output_dir / "authorization.yaml"
    path.write_text(yaml.safe_dump(config(str(kubeconfig))))
    if output == Output.json:
        emit_json({"authorizationConfig": str(path), "kubeconfig": str(kubeconfig)})
        return
    out.print(f"wrote {path} and {kubeconfig}: start kube-apiserver with --authorization-config={path} "
              "(and without --authorization-mode)")


@platform_app.command("authentication-config")
def authentication_config(
    output_dir: Path = typer.Option(..., "--output-dir", "-d", help="where to write authentication.yaml, e.g. "
                                    "/etc/kubernetes/yunshang (on every control-plane node)"),
    stack: str = typer.Option("prod", "--stack", "-s", help="the stack whose yunshang:identity names the provider"),
    ca_file: Path = typer.Option(None, "--ca-file", exists=True, dir_okay=False, help=(
        "the CA of the provider's certificate, embedded in the file (default: the stack's yunshang:identity.caFile; "
        "none: the system's)")),
    output: Output = OutputOpt,
) -> None:
    """The API server's authentication configuration (统一身份认证): a JWT authenticator for the province's
    identity provider, its claims mapped to the platform's groups as the stack's yunshang:identity says, and
    the validation rules that keep reserved names out of every token.  Pass
    `--authentication-config=<dir>/authentication.yaml` to kube-apiserver (instead of any --oidc-* flag); it
    reloads the file when it changes.

    yunshang platform authentication-config --stack prod -d /etc/kubernetes/yunshang
    """
    import yaml

    from ..identity.authn import authentication_config as config
    from .auth import stack_identity

    ident = stack_identity(stack, f"(set it, https://…, in stacks/Pulumi.{stack}.yaml)")
    ca = ca_file or (Path(ident.ca_file).expanduser() if ident.ca_file else None)
    if ca is not None and not ca.is_file():
        raise UserError(f"yunshang:identity.caFile {str(ca)!r} does not exist here: pass the provider's CA with --ca-file")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "authentication.yaml"
    path.write_text(yaml.safe_dump(config(ident, ca.read_text() if ca else "")))
    if output == Output.json:
        emit_json({"authenticationConfig": str(path), "issuer": ident.issuer})
        return
    out.print(f"wrote {path}: start kube-apiserver with --authentication-config={path} (and no --oidc-* flags); "
              f"it trusts {ident.issuer} for audiences {', '.join(ident.audiences)}", highlight=False)


@platform_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def pulumi(ctx: typer.Context) -> None:
    """Run the pinned pulumi CLI offline on this project's stacks, e.g.
    `yunshang platform pulumi stack ls`, `... preview --stack local`, `... config --stack prod`.
    The same as `eval "$(yunshang dev env)"; pulumi ...` in the project directory."""
    import os
    import subprocess

    from ..dev import pulumi_env, toolchain
    from ..infra import automation
    from ..infra.config import PROJECT_ROOT
    from .tenant import target

    env = {**os.environ, **pulumi_env.env(automation.state_dir()), **target(ctx).pulumi_env()}
    if os.environ.get("PULUMI_BACKEND_URL"):
        env["PULUMI_BACKEND_URL"] = os.environ["PULUMI_BACKEND_URL"]
    rc = subprocess.call([str(toolchain.find("pulumi")), *ctx.args], cwd=PROJECT_ROOT, env=env)
    raise typer.Exit(rc)
