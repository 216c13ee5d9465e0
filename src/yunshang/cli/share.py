"""`yunshang share`: consent-based data sharing between departments."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import typer

from ..lazy import OnFirstUse
from .common import Output, OutputOpt, UsageProblem, UserError, emit_json, exclusive, out, parse_time, refuse
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


def _checked(adapter_type: Any, value: Any, option: str) -> Any:
    """One option's value through its type in the models (the same rules as the objects')."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(adapter_type).validate_python(value)
    except ValidationError as e:
        refuse(e, {"": option})


def _provider_first(ctx: typer.Context, e: Any, provider: str, names: dict[str, str]) -> None:
    """A namespace that is not the provider's may just mean there is no such provider: say that first."""
    if any(tuple(x["loc"]) == ("service", "namespace") for x in e.errors()):
        if problems := _call(_agreements(ctx).tenant_problems, provider=provider):
            refuse(problems, names, usage=False)


# the options of `share request` and `share offer`, by the field each gives
TARGET_OPTIONS = {"provider": "--provider", "service.namespace": "--namespace", "service.name": "--service",
                  "service.port": "--port"}


def _my_tenant(ctx: typer.Context) -> str:
    """The caller's department tenant, from its group yunshang:dept:<tenant>, when it has exactly one."""
    mine = _call(_client(ctx).departments)
    if len(mine) != 1:
        raise UserError("pass --consumer (your tenant): " + ("you belong to several: " + ", ".join(mine) if mine
                                                             else "your identity names no department"))
    return mine[0]


@share_app.command("request")
def request(
    ctx: typer.Context,
    offer: Optional[str] = typer.Option(None, help="apply for an offer of the catalogue (`yunshang share catalog`): "
                                                   "provider, service and the longest term come from it"),
    consumer: Optional[str] = typer.Option(None, help="your tenant (default: your department's, from your identity)"),
    provider: Optional[str] = typer.Option(None, help="the tenant that owns the Service (without --offer)"),
    namespace: Optional[str] = typer.Option(None, help="the provider's namespace of the Service, <provider>-<suffix> "
                                                       "(without --offer)"),
    service: Optional[str] = typer.Option(None, help="the Service's name (without --offer)"),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="the Service port, one the Service has "
                                                                   "(without --offer)"),
    purpose: str = typer.Option(..., help="why you need it"),
    expires: Optional[str] = typer.Option(None, help="when access ends, e.g. 2027-03-01: in the future, at most 366 "
                                                     "days from now (or the offer's longest term); not with --days"),
    days: Optional[int] = typer.Option(None, min=1, max=366, help="how long access lasts, from now (default: the "
                                                                 "offer's longest term, else 30); not with --expires"),
    name: Optional[str] = typer.Option(None, help="agreement name (default: <consumer>.<provider>.<service>)"),
    output: Output = OutputOpt,
) -> None:
    """Apply for access to one Service port of another department (it decides, unless its offer
    needs no approval). From the catalogue:

    yunshang share request --offer gz-bigdata.population --purpose 'case lookups' --expires 2027-03-01

    Without it: --provider, --namespace, --service and --port, each checked before anything is
    written (as far as your identity may read them: a department cannot see another's Services,
    and the operator refuses an agreement for one that does not exist).
    """
    from pydantic import ValidationError

    exclusive(expires=expires, days=days)
    if offer:
        if given := [f"--{k}" for k, v in (("provider", provider), ("namespace", namespace), ("service", service),
                                           ("port", port)) if v is not None]:
            raise UsageProblem(f"--offer gives the provider and its Service: leave out {', '.join(given)} "
                               "(or leave out --offer to apply without the catalogue)")
        _checked(agreement.OfferName, offer, "--offer")
    else:
        missing = [f"--{k}" for k, v in (("provider", provider), ("namespace", namespace), ("service", service),
                                         ("port", port)) if v is None]
        if missing:
            raise UsageProblem(f"give --offer, or {', '.join(missing)}; see `yunshang share request --help`")
    if name is not None:
        _checked(agreement.DnsLabelOrDotted, name, "--name")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    until = (parse_time("--expires", expires, "2027-03-01 or 2027-03-01T12:00:00Z") if expires else None)
    names = {"consumer": "--consumer", "purpose": "--purpose", "expires": "--expires" if expires else "--days",
             "offer": "--offer", **({} if offer else TARGET_OPTIONS)}
    if not consumer:
        names.pop("consumer")
    o = None
    if offer:
        o = _call(_agreements(ctx).offer, offer)["spec"]
        if o.get("withdrawn"):
            raise UserError(f"offer {offer} was withdrawn: it takes no new requests (`yunshang share catalog`)")
        provider, svc = o["provider"], o["service"]
        namespace, service, port = svc["namespace"], svc["name"], svc["port"]
    until = until or now + dt.timedelta(days=days or (o["maxDays"] if o else 30))
    if o and until > now + dt.timedelta(days=o["maxDays"]):
        raise UserError(f"offer {offer} grants at most {o['maxDays']} days: choose --expires before "
                        f"{(now + dt.timedelta(days=o['maxDays'])).date().isoformat()}")
    consumer = consumer or _my_tenant(ctx)
    try:  # "now": a new request ends in the future, within the limit
        req = agreement.AgreementRequest.model_validate({
            "consumer": consumer, "provider": provider, "purpose": purpose, "offer": offer,
            "service": {"namespace": namespace, "name": service, "port": port}, "expires": until,
        }, context={"now": now})
    except ValidationError as e:
        if not offer:
            _provider_first(ctx, e, provider, names)
        refuse(e, names, where=f"offer {offer}" if offer else "")
    name = name or f"{consumer}.{provider}.{service}"
    created = _call(_agreements(ctx).request, name, req, _names=names, _where=f"offer {offer}" if offer else "")
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


@share_app.command()
def rate(ctx: typer.Context, name: str, score: int = typer.Option(..., min=1, max=5, help="1 (very poor) to 5 (very good)"),
         comment: str = typer.Option("", help="what was good or bad")) -> None:
    """Rate the service an agreement gave you (好差评), once it has ended.

    The consumer's owners rate, once, after the agreement expired or was revoked; the ratings
    feed `yunshang report performance`."""
    _call(_agreements(ctx).rate, name, score, comment)
    out.print(f"agreement [bold]{name}[/] rated {score}/5")


# ------------------------------------------------------------------ the catalogue (目录)
def _offer_row(o: dict[str, Any]) -> dict[str, Any]:
    s = o["spec"]
    svc = s["service"]
    return {"offer": o["metadata"]["name"], "provider": s["provider"], "title": s["title"],
            "description": s.get("description", ""), "data": s.get("data", []),
            "classification": s["classification"], "maxDays": s["maxDays"],
            "approvalRequired": s.get("approvalRequired", True),
            "service": f"{svc['namespace']}/{svc['name']}:{svc['port']}",
            "withdrawn": (s.get("withdrawn") or {}).get("at")}


@share_app.command()
def catalog(
    ctx: typer.Context,
    provider: Optional[str] = typer.Option(None, help="only this provider's offers"),
    classification: Optional[str] = typer.Option(None, help="only offers of this classification (public, internal, "
                                                            "sensitive, secret)"),
    text: Optional[str] = typer.Option(None, help="only offers whose title, description or data mention this"),
    withdrawn: bool = typer.Option(False, "--withdrawn", help="include withdrawn offers"),
    output: Output = OutputOpt,
) -> None:
    """The catalogue of services departments offer to share (目录): what to ask for, and on which terms.

    yunshang share catalog --text 人口 --classification internal
    """
    if classification is not None:
        _checked(agreement.Classification, classification, "--classification")
    rows = [_offer_row(o) for o in _call(_agreements(ctx).offers)]
    published = len(rows)
    needle = (text or "").casefold()
    rows = [r for r in rows
            if (withdrawn or not r["withdrawn"]) and provider in (None, r["provider"])
            and classification in (None, r["classification"])
            and (not needle or needle in " ".join([r["title"], r["description"], *r["data"]]).casefold())]
    rows.sort(key=lambda r: (r["provider"], r["offer"]))
    if output == Output.json:
        emit_json(rows)
        return
    if not rows:
        asked = ", ".join(f"--{k} {v!r}" for k, v in (("provider", provider), ("classification", classification),
                                                       ("text", text)) if v)
        out.print(f"no offers match {asked} (of {published} in the catalogue: `yunshang share catalog`)" if asked else
                  "no offers yet: a provider publishes one with `yunshang share offer --help`", markup=False)
        return
    from rich.table import Table

    t = Table("OFFER", "PROVIDER", "TITLE", "DATA", "CLASS", "MAX DAYS", "APPROVAL", "SERVICE")
    for r in rows:
        title = r["title"] + (" [red](withdrawn)[/]" if r["withdrawn"] else "")
        t.add_row(r["offer"], r["provider"], title, ", ".join(r["data"]), r["classification"], str(r["maxDays"]),
                  "per consumer" if r["approvalRequired"] else "none", r["service"])
    out.print(t)


@share_app.command()
def offer(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="the offer's id, e.g. gz-bigdata.population (at most 63 characters)"),
    provider: str = typer.Option(..., help="your tenant (the one that owns the Service)"),
    namespace: str = typer.Option(..., help="the namespace of the Service, one of the provider's: e.g. "
                                            "gz-bigdata-exchange"),
    service: str = typer.Option(..., help="the Service's name (it must exist)"),
    port: int = typer.Option(..., min=1, max=65535, help="the Service port offered (one the Service has)"),
    title: str = typer.Option(..., help="a short title, e.g. 人口基础信息查询"),
    description: str = typer.Option("", help="what it is and how to use it"),
    data: list[str] = typer.Option([], help="a data item it carries; repeat for several"),
    classification: str = typer.Option(..., help="public, internal, sensitive or secret"),
    max_days: int = typer.Option(90, min=1, max=366, help="the longest term an agreement may run"),
    approval: bool = typer.Option(True, "--approval/--no-approval",
                                  help="decide on each consumer (default) or let the offer be the consent"),
    output: Output = OutputOpt,
) -> None:
    """Publish an offer in the catalogue (a provider department's owners). The Service and its port
    are checked before anything is written."""
    from pydantic import ValidationError

    _checked(agreement.OfferName, name, "NAME")
    names = {**TARGET_OPTIONS, "title": "--title", "description": "--description", "data": "--data",
             "classification": "--classification", "maxDays": "--max-days"}
    try:
        spec = agreement.OfferSpec.model_validate({
            "provider": provider, "service": {"namespace": namespace, "name": service, "port": port},
            "title": title, "description": description, "data": data, "classification": classification,
            "maxDays": max_days, "approvalRequired": approval})
    except ValidationError as e:
        _provider_first(ctx, e, provider, names)
        refuse(e, names)
    created = _call(_agreements(ctx).publish, name, spec, _names=names)
    if output == Output.json:
        emit_json(created)
        return
    out.print(f"offer [bold]{name}[/] published; consumers apply with `yunshang share request --offer {name} "
              "--purpose ...`")


@share_app.command()
def withdraw(ctx: typer.Context, name: str,
             reason: str = typer.Option("", help="why"),
             revoke_existing: bool = typer.Option(False, "--revoke-existing",
                                                  help="also end the agreements made from it now (default: they run "
                                                       "to their end)")) -> None:
    """Withdraw an offer: it takes no new requests.

    Existing agreements made from it run to their end, or with --revoke-existing end now."""
    _call(_agreements(ctx).withdraw, name, reason, revoke_existing)
    out.print(f"offer [bold]{name}[/] withdrawn; " + ("its agreements are being revoked" if revoke_existing
                                                     else "its agreements run to their end"))
