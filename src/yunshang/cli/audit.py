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
    limit: int = typer.Option(100, min=0, help="the newest N records (0: all)"),
    output: Output = OutputOpt,
) -> None:
    """List audit records (newest last). `yunshang audit verify` checks the chain."""
    if ctx.invoked_subcommand:
        return
    t0 = parse_time("--since", since) if since else None  # a bad value is refused before the cluster is read
    records = _call(api.AuditTrail(_client(ctx)).records)
    if t0 is not None:
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
    prometheus: Optional[str] = typer.Option(
        None, envvar="YUNSHANG_PROMETHEUS_URL", show_envvar=True,
        help="the Prometheus that scrapes the operator, e.g. http://prometheus:9090: the chain's witness outside "
        "the cluster (the highest yunshang_audit_head_seq / _anchor_seq it ever recorded); when none is given or "
        "it does not answer, verify says so and checks without it"),
    output: Output = OutputOpt,
) -> None:
    """Recompute the hash chain and compare it with its anchor and with Prometheus' history of
    its head: exit 1 with one line per problem if a record was edited or removed, if records
    exist but their anchor does not (the operator anchors the empty chain before the first
    record), or if the chain is shorter than the anchor or than the head Prometheus recorded
    (records deleted, or the whole trail gone)."""
    from ..client import ClientError

    trail = api.AuditTrail(_client(ctx))
    records = _call(trail.records)
    kept = _call(trail.anchor, anchor)
    problems = chain.verify(records)
    head = records[-1] if records else None
    witness: dict = {"prometheus": prometheus or None, "consulted": False, "seq": None}
    if prometheus:
        try:
            witness.update(consulted=True, seq=trail.witness(prometheus))
        except ClientError as e:
            witness["note"] = f"outside witness not consulted: {e}; checked against the anchor only"
        else:
            if missing := chain.against_witness(head.seq if head else 0, witness["seq"], f"Prometheus at {prometheus}"):
                problems.insert(0, missing)
            witness["note"] = (f"outside witness: Prometheus at {prometheus} recorded at most #{witness['seq']}"
                               if witness["seq"] is not None else
                               f"outside witness: Prometheus at {prometheus} has no history of the audit head yet")
    else:
        witness["note"] = ("outside witness not consulted: no Prometheus given (--prometheus or "
                           "YUNSHANG_PROMETHEUS_URL); checked against the anchor only")
    if missing := chain.against_anchor(records, kept, anchor):
        problems.insert(0, missing)
    result = {"records": len(records), "intact": not problems, "problems": problems,
              "head": {"seq": head.seq, "hash": head.hash} if head else None,
              "anchor": kept.to_data() if kept else None, "witness": witness}
    if output == Output.json:
        emit_json(result)
    else:
        from rich.markup import escape

        if problems:
            for p in problems:
                out.print(f"[red]TAMPERED[/] {escape(p)}")
        else:
            out.print(f"{len(records)} records, chain intact; head #{head.seq if head else 0} "
                      f"{head.hash[:16] if head else ''}; "
                      + (f"anchor #{kept.seq} of {kept.to_data()['time']} in {anchor}" if kept else
                         f"no anchor in {anchor} yet (the operator writes it)"))
        out.print(witness["note"], markup=False)
    if problems:
        raise typer.Exit(1)
