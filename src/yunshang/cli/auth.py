"""`yunshang login | logout | token | whoami`: people sign in through the identity provider.

`login` signs in (a browser on this machine with PKCE, or `--device` from any other device), caches
the tokens (0600, refreshed silently) and adds a kubeconfig user whose credential is `yunshang
token` (an exec plugin, client.authentication.k8s.io/v1): kubectl and every yunshang command then
act as that person.  The platform engineer's admin kubeconfig is left as it is.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..identity.credential import until
from .common import Output, OutputOpt, UserError, UsageProblem, emit_json, err, out


IssuerOpt = typer.Option(None, "--issuer", help="the provider's issuer URL (https; default: the stack's "
                         "yunshang:identity.issuer with --stack, else the local platform's Keycloak)")
ClientOpt = typer.Option(None, "--client-id", help="the OIDC client to sign in with (default: the stack's, yunshang)")
CaOpt = typer.Option(None, "--ca-file", help="the CA of the provider's certificate (default: the stack's caFile, "
                     "the local platform's CA, or the system's)")
StackOpt = typer.Option(None, "--stack", "-s", help="take the provider from stacks/Pulumi.<stack>.yaml (yunshang:identity)")
StateOpt = typer.Option(None, "--state-dir", help="the local platform whose Keycloak to sign in to "
                        "(default $YUNSHANG_STATE_DIR or ~/.local/state/yunshang/dev)")


def _provider(issuer: str | None, client_id: str | None, ca_file: str | None, stack: str | None,
              state_dir: Path | None = None):
    from ..identity.oidc import Provider

    if issuer and stack:
        raise UsageProblem("--issuer and --stack exclude each other: give only one")
    if issuer:
        if not issuer.startswith("https://"):
            raise UsageProblem(f"--issuer {issuer!r}: must be an https:// URL (the API server trusts nothing else)")
        return Provider(issuer.rstrip("/"), client_id or "yunshang", ca_file or "")
    if stack:
        ident = stack_identity(stack, "(the local platform's is its own Keycloak: leave out --stack, or pass --issuer)")
        return Provider(ident.issuer, client_id or ident.client_id, ca_file or ident.ca_file)
    from ..dev.controlplane import ControlPlane, default_state_dir

    cp = ControlPlane(state=state_dir or default_state_dir())
    if not cp.identity_file.exists():
        raise UserError(f"no identity provider named and none runs in {cp.state}: pass --issuer URL (the province's), "
                        "--stack prod, or start the local platform with `yunshang dev up`")
    local = json.loads(cp.identity_file.read_text())
    return Provider(local["issuer"], client_id or local["clientId"], ca_file or local["caFile"])


def stack_identity(stack: str, otherwise: str):
    """The stack's yunshang:identity, which must name a provider (``otherwise``: what to do if not)."""
    from ..infra.config import PROJECT_ROOT, ConfigError, from_stack_file

    try:
        ident = from_stack_file(stack, PROJECT_ROOT).identity
    except ConfigError as e:
        raise UserError(str(e)) from None
    if not ident.enabled:
        raise UserError(f"stack {stack} names no provider: yunshang:identity.issuer is empty {otherwise}")
    return ident


def _exec_user(provider) -> dict:
    import shutil

    command = shutil.which("yunshang") or str(Path(sys.executable).with_name("yunshang"))
    args = ["token", "--issuer", provider.issuer, "--client-id", provider.client_id]
    if provider.ca_file:
        args += ["--ca-file", str(Path(provider.ca_file).resolve())]
    from ..identity.credential import API

    return {"exec": {"apiVersion": API, "command": command, "args": args,
                     "interactiveMode": "Never", "provideClusterInfo": False}}


def _into_kubeconfig(ctx: typer.Context, provider) -> tuple[Path, str, str]:
    """A user whose credential is `yunshang token` for this provider, and a context `<cluster>-sso` on
    the cluster of the current (or --context) context, made current.  Returns (file, context, before)."""
    import os
    import urllib.parse

    import yaml

    from .tenant import target

    t = target(ctx)
    path = t.path
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"no kubeconfig at {path}: name the cluster's with --kubeconfig, or use --no-kubeconfig") from None
    before = cfg.get("current-context", "")
    name = t.context or before
    contexts = {c["name"]: c.get("context", {}) for c in cfg.get("contexts") or []}
    if name not in contexts:
        raise UserError(f"no context {name!r} in {path}: choose the cluster's with --context, or use --no-kubeconfig")
    cluster = contexts[name].get("cluster", "")
    user = f"sso@{urllib.parse.urlparse(provider.issuer).netloc}"
    new = name if name.endswith("-sso") else f"{cluster}-sso"

    def put(key: str, entry: dict) -> None:
        items = [i for i in cfg.get(key) or [] if i.get("name") != entry["name"]]
        cfg[key] = items + [entry]
    put("users", {"name": user, "user": _exec_user(provider)})
    put("contexts", {"name": new, "context": {"cluster": cluster, "user": user}})
    cfg["current-context"] = new
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(tmp, path)
    return path, new, before


def login(
    ctx: typer.Context,
    device: bool = typer.Option(False, "--device", help="sign in on another device (phone, PC): the device "
                                "authorization grant; this prints a URL and a code"),
    no_browser: bool = typer.Option(False, "--no-browser", help="print the sign-in URL instead of opening a browser "
                                    "(open it on this machine: the provider sends it back to 127.0.0.1)"),
    kubeconfig_user: bool = typer.Option(True, "--kubeconfig-user/--no-kubeconfig", help="add the signed-in user "
                                         "to your kubeconfig and make its context current"),
    issuer: Optional[str] = IssuerOpt, client_id: Optional[str] = ClientOpt, ca_file: Optional[str] = CaOpt,
    stack: Optional[str] = StackOpt, state_dir: Optional[Path] = StateOpt,
    timeout: float = typer.Option(300, "--timeout", min=5, help="seconds to wait for the sign-in"),
    output: Output = OutputOpt,
) -> None:
    """Sign in through the identity provider (统一身份认证), as kubelogin does.

      yunshang login                      # a browser on this machine (PKCE, loopback redirect)
      yunshang login --device             # from your phone or another PC: a URL and a code
      yunshang login --stack prod         # the province's provider, from the stack's yunshang:identity
      yunshang whoami                     # who the platform sees: user, groups, tenants, roles
    """
    from ..identity import oidc

    provider = _provider(issuer, client_id, ca_file, stack, state_dir)
    try:
        if device:
            def show(uri: str, code: str, complete: str) -> None:
                err.print(f"sign in at {uri} with the code [bold]{code}[/]" +
                          (f"  (or open {complete})" if complete else ""), highlight=False)
            tokens = oidc.login_device(provider, show, timeout)
        else:
            def open_url(url: str) -> bool:
                if no_browser:
                    err.print(f"open this URL in a browser on this machine to sign in:\n{url}", highlight=False,
                              markup=False)
                    return True
                import webbrowser

                err.print("opening your browser to sign in …", highlight=False)
                return webbrowser.open(url)
            tokens = oidc.login_browser(provider, open_url, timeout)
    except oidc.SignInError as e:
        raise UserError(str(e)) from None
    oidc.TokenCache(provider).save(tokens)
    c = oidc.claims(tokens["id_token"])
    where = _into_kubeconfig(ctx, provider) if kubeconfig_user else None
    info = {"username": c.get("preferred_username") or c.get("sub"), "issuer": provider.issuer,
            "providerGroups": c.get("groups", []), "expires": until(c["exp"]),
            "kubeconfig": str(where[0]) if where else None, "context": where[1] if where else None}
    if output == Output.json:
        emit_json(info)
        return
    out.print(f"signed in as [bold]{info['username']}[/] (token until {info['expires']}, refreshed as needed)",
              highlight=False)
    if where:
        back = f"; back: kubectl config use-context {where[2]}" if where[2] and where[2] != where[1] else ""
        out.print(f"context {where[1]} in {where[0]} is current{back}", highlight=False)
    out.print("next: yunshang whoami", highlight=False)


def logout(issuer: Optional[str] = IssuerOpt, client_id: Optional[str] = ClientOpt, ca_file: Optional[str] = CaOpt,
           stack: Optional[str] = StackOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Forget the cached tokens and end the session at the provider.  The kubeconfig entries stay:
    they sign in again with `yunshang login`."""
    from ..identity import oidc

    provider = _provider(issuer, client_id, ca_file, stack, state_dir)
    out.print(oidc.logout(provider, oidc.TokenCache(provider)), highlight=False)


def token(issuer: str = typer.Option(..., "--issuer"), client_id: str = typer.Option("yunshang", "--client-id"),
          ca_file: str = typer.Option("", "--ca-file")) -> None:
    """The kubeconfig's credential plugin (client.authentication.k8s.io/v1 ExecCredential): the cached
    ID token, refreshed when it ends within 30 s.  kubectl and yunshang call it; people run `login`.
    (It answers on a fast path of its own, yunshang.identity.credential.)"""
    from ..identity.credential import main

    raise typer.Exit(main(["--issuer", issuer, "--client-id", client_id, "--ca-file", ca_file]))


def whoami(ctx: typer.Context, output: Output = OutputOpt) -> None:
    """Who the API server takes you for (a SelfSubjectReview): user, groups, your tenants and roles,
    and when your sign-in token ends."""
    from ..models.tenant import ADMIN_GROUP, DEPT_GROUP_PREFIX
    from ..signoff import REVIEWER_GROUP_PREFIX
    from .tenant import target

    t = target(ctx)
    info = _review(t)
    groups = info.get("groups") or []
    tenants = sorted(g.removeprefix(DEPT_GROUP_PREFIX) for g in groups if g.startswith(DEPT_GROUP_PREFIX))
    roles = sorted([f"reviewer:{g.removeprefix(REVIEWER_GROUP_PREFIX)}" for g in groups
                    if g.startswith(REVIEWER_GROUP_PREFIX)] + (["platform-admin"] if ADMIN_GROUP in groups else []) +
                   (["ops"] if "yunshang:ops" in groups else []))
    result = {"username": info.get("username", ""), "uid": info.get("uid", ""), "groups": groups, "tenants": tenants,
              "roles": roles, "tokenExpires": _token_expiry(t)}
    if output == Output.json:
        emit_json(result)
        return
    out.print(f"user     {result['username']}", highlight=False, markup=False)
    out.print(f"tenants  {', '.join(tenants) or '— (in no department: you can sign in, and nothing more)'}",
              highlight=False, markup=False)
    out.print(f"roles    {', '.join(roles) or '—'}", highlight=False, markup=False)
    out.print(f"groups   {', '.join(groups)}", highlight=False, markup=False)
    if result["tokenExpires"]:
        out.print(f"token    until {result['tokenExpires']} (refreshed as needed; `yunshang logout` ends it)",
                  highlight=False, markup=False)


def _review(t) -> dict:
    """A SelfSubjectReview as the kubeconfig's user (its credential plugin run first, its refusal said)."""
    from .. import rest

    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        endpoint = rest.Endpoint(t.kubeconfig, t.context)
        review = endpoint.send_raw("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body)
    except rest.CredentialFailed as e:
        raise UserError(str(e)) from None
    except rest.RestError as e:
        if e.status == 401:
            raise UserError("the API server does not accept your credentials (401): sign in again with "
                            "`yunshang login`") from None
        raise UserError(f"the API server said {e.status}: {e.reason}") from None
    except rest.Unreachable as e:
        raise UserError(f"the API server does not answer ({e}); is the platform running?") from None
    except (rest.Unsupported, OSError, ValueError) as e:
        raise UserError(f"cannot use this kubeconfig ({_one_line(e)}); is it the platform's?") from None
    info = (review.get("status") or {}).get("userInfo") or {}
    return info


def _one_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines or [type(e).__name__])[0][:300]


def _token_expiry(t) -> str:
    """When the signed-in person's ID token ends, if the context's user is a `yunshang token` plugin."""
    import yaml

    from ..identity import oidc

    try:
        cfg = yaml.safe_load(t.path.read_text()) or {}
    except OSError:
        return ""
    name = t.context or cfg.get("current-context")
    ctx = next((c.get("context", {}) for c in cfg.get("contexts") or [] if c.get("name") == name), {})
    user = next((u.get("user", {}) for u in cfg.get("users") or [] if u.get("name") == ctx.get("user")), {})
    args = (user.get("exec") or {}).get("args") or []
    if "token" not in args or "--issuer" not in args:
        return ""
    opt = lambda flag, default="": args[args.index(flag) + 1] if flag in args else default  # noqa: E731
    tokens = oidc.TokenCache(oidc.Provider(opt("--issuer"), opt("--client-id", "yunshang"), opt("--ca-file"))).load()
    return until(oidc.claims(tokens["id_token"])["exp"]) if tokens else ""
