"""`yunshang audit`: read and verify the tamper-evident audit trail."""
from __future__ import annotations

from typing import Optional

import typer

from ..lazy import OnFirstUse
from ..models.names import DEFAULT_ANCHOR
from .common import Output, OutputOpt, emit_json, out, parse_time
from .tenant import _call, _client

api = OnFirstUse("yunshang.client")
chain = OnFirstUse("yunshang.models.audit")

audit_app = typer.Typer(
    help="The audit trail: every request, approval, rejection, quota change (manual or elastic), "
    "quarantine, agreement and revocation, hash-chained. Platform admins can read and verify it.",
    invoke_without_command=True,
)


@audit_app.callback()
def audit(
    ctx: typer.Context,
    tenant: Optional[str] = typer.Option(None, help="only records concerning this tenant"),
    action: Optional[str] = typer.Option(None, help="e.g. TenantApproved, QuotaChanged, AgreementRevoked"),
    actor: Optional[str] = typer.Option(None, help="only records by this user"),
    since: Optional[str] = typer.Option(None, help="ISO time, e.g. 2026-11-01 or 2026-11-24T08:00:00Z"),
    limit: int = typer.Option(100, help="the newest N records (0: all)"),
    output: Output = OutputOpt,
) -> None:
    """List audit records (newest last). `yunshang audit verify` checks the chain."""
    if ctx.invoked_subcommand:
        return
    records = _call(api.AuditTrail(_client(ctx)).records)
    if since:
        t0 = parse_time("--since", since)
        records = [r for r in records if r.time >= t0]
    records = [r for r in records if (not tenant or tenant in r.tenants) and (not action or r.action == action)
               and (not actor or r.actor == actor)]
    if limit:
        records = records[-limit:]
    if output == Output.json:
        emit_json([r.model_dump(mode="json", by_alias=True) for r in records])
        return
    from rich.table import Table

    table = Table("#", "TIME", "ACTOR", "ACTION", "OBJECT", "DETAILS")
    for r in records:
        details = ", ".join(f"{k}={v}" for k, v in r.details.items() if v)[:80]
        table.add_row(str(r.seq), r.time.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.action,
                      f"{r.object.kind}/{r.object.name}", details)
    out.print(table if records else "no audit records match")


@audit_app.command()
def verify(
    ctx: typer.Context,
    anchor: str = typer.Option(DEFAULT_ANCHOR, help="the ConfigMap (namespace/name) where the operator keeps the "
                               "chain's head, outside the chain (stack config yunshang:auditAnchor)"),
    output: Output = OutputOpt,
) -> None:
    """Recompute the hash chain and compare it with its anchor: exit 1 with one line per problem
    if a record was edited or removed, or if the chain is shorter than the anchor (records
    deleted, or the whole trail gone)."""
    trail = api.AuditTrail(_client(ctx))
    records = _call(trail.records)
    kept = _call(trail.anchor, anchor)
    problems = chain.verify(records)
    if missing := chain.against_anchor(records, kept):
        problems.insert(0, missing)
    head = records[-1] if records else None
    result = {"records": len(records), "intact": not problems, "problems": problems,
              "head": {"seq": head.seq, "hash": head.hash} if head else None,
              "anchor": kept.to_data() if kept else None}
    if output == Output.json:
        emit_json(result)
    elif problems:
        for p in problems:
            out.print(f"[red]TAMPERED[/] {p}")
    else:
        out.print(f"{len(records)} records, chain intact; head #{head.seq if head else 0} "
                  f"{head.hash[:16] if head else ''}; "
                  + (f"anchor #{kept.seq} of {kept.to_data()['time']} in {anchor}" if kept else
                     f"no anchor in {anchor} yet (the operator writes it)"))
    if problems:
        raise typer.Exit(1)
