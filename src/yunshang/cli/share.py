"""`yunshang share`: consent-based data sharing between departments."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import typer

from ..lazy import OnFirstUse
from .common import Output, OutputOpt, UserError, emit_json, out
from .tenant import _call, _client

api = OnFirstUse("yunshang.client")
agreement = OnFirstUse("yunshang.models.agreement")

share_app = typer.Typer(
    help="Sharing agreements: a consumer department applies for one Service port of a provider "
    "department; the provider's owners approve; exactly that path opens until it expires.",
    no_args_is_help=True,
)


def _agreements(ctx: typer.Context):
    return api.Agreements(_client(ctx))


def _row(a: dict[str, Any]) -> dict[str, Any]:
    s, st = a["spec"], a.get("status") or {}
    return {"name": a["metadata"]["name"], "phase": st.get("phase", "Pending"), "consumer": s["consumer"],
            "provider": s["provider"], "service": f"{s['service']['namespace']}/{s['service']['name']}:{s['service']['port']}",
            "expires": s["expires"], "message": st.get("message", ""), "due": st.get("deadline"),
            "overdue": _overdue(st.get("deadline"))}


def _overdue(deadline: str | None) -> bool:
    """A pending decision past its deadline (限时办结)."""
    if not deadline:
        return False
    return dt.datetime.fromisoformat(deadline.replace("Z", "+00:00")) < dt.datetime.now(dt.timezone.utc)


@share_app.command("request")
def request(
    ctx: typer.Context,
    consumer: str = typer.Option(..., help="your tenant (the one that wants access)"),
    provider: str = typer.Option(..., help="the tenant that owns the Service"),
    namespace: str = typer.Option(..., help="the provider namespace of the Service, e.g. gz-bigdata-exchange"),
    service: str = typer.Option(..., help="the Service's name"),
    port: int = typer.Option(..., help="the Service port"),
    purpose: str = typer.Option(..., help="why you need it"),
    days: int = typer.Option(30, min=1, max=366, help="how long access lasts once approved"),
    name: Optional[str] = typer.Option(None, help="agreement name (default: <consumer>.<provider>.<service>)"),
    output: Output = OutputOpt,
) -> None:
    """Apply for access to one Service port of another department (it decides)."""
    from pydantic import ValidationError

    try:
        req = agreement.AgreementRequest.model_validate({
            "consumer": consumer, "provider": provider, "purpose": purpose,
            "service": {"namespace": namespace, "name": service, "port": port},
            "expires": dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=days),
        })
    except ValidationError as e:
        raise UserError(api.validation_message(e)) from None
    name = name or f"{consumer}.{provider}.{service}"
    created = _call(_agreements(ctx).request, name, req)
    if output == Output.json:
        emit_json(created)
        return
    out.print(f"agreement [bold]{name}[/] requested: Pending until {provider}'s owners approve "
              f"(`yunshang share approve {name}`)")


@share_app.command("list")
def list_(ctx: typer.Context, tenant: Optional[str] = typer.Option(None, help="only agreements of this tenant"),
          output: Output = OutputOpt) -> None:
    """Agreements (both sides) with their phase and expiry."""
    rows = [_row(a) for a in _call(_agreements(ctx).list, tenant)]
    if output == Output.json:
        emit_json(rows)
        return
    if not rows:
        out.print("no agreements")
        return
    from rich.table import Table

    t = Table("NAME", "PHASE", "CONSUMER", "PROVIDER", "SERVICE", "EXPIRES", "DECISION DUE")
    for r in rows:
        due = ("[red]OVERDUE[/] " if r["overdue"] else "") + (r["due"] or "-")
        t.add_row(r["name"], r["phase"], r["consumer"], r["provider"], r["service"], r["expires"], due)
    out.print(t)


@share_app.command()
def show(ctx: typer.Context, name: str, output: Output = OutputOpt) -> None:
    """One agreement: terms, decision, the NetworkPolicies that open the path."""
    a = _call(_agreements(ctx).get, name)
    if output == Output.json:
        emit_json(a)
        return
    r, st = _row(a), a.get("status") or {}
    out.print(f"[bold]{name}[/]  {r['consumer']} -> {r['provider']} {r['service']}")
    out.print(f"  phase    : {r['phase']} {r['message']}")
    out.print(f"  purpose  : {a['spec']['purpose']}")
    d = a["spec"].get("decision")
    late = " [red]OVERDUE[/]" if r["overdue"] else ""
    out.print("  decision : " + (f"{d['decision']} by {d['by']} {d.get('reason', '')}" if d else
                                 f"none yet, due {r['due'] or '-'}{late}"))
    out.print("  policies : " + (", ".join(st.get("policies", [])) or "none"))


@share_app.command()
def approve(ctx: typer.Context, name: str, reason: str = typer.Option("", help="optional note")) -> None:
    """Approve (the provider's owners only): the path opens."""
    _call(_agreements(ctx).decide, name, "Approved", reason)
    out.print(f"agreement [bold]{name}[/] approved")


@share_app.command()
def reject(ctx: typer.Context, name: str, reason: str = typer.Option(..., help="why (required)")) -> None:
    """Reject (the provider's owners only)."""
    _call(_agreements(ctx).decide, name, "Rejected", reason)
    out.print(f"agreement [bold]{name}[/] rejected")


@share_app.command()
def revoke(ctx: typer.Context, name: str, reason: str = typer.Option("", help="why")) -> None:
    """End an agreement now (either side's owners, or the platform bureau): the path closes."""
    _call(_agreements(ctx).revoke, name, reason)
    out.print(f"agreement [bold]{name}[/] revoked")
