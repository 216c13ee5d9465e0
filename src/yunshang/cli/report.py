"""`yunshang report costs`: monthly showback per department, and the saving against own servers;
`yunshang report performance`: how fast and how well each department and reviewer role serves."""
from __future__ import annotations

import csv
import dataclasses
import enum
import re
import sys
from typing import Optional

import typer

from ..lazy import OnFirstUse
from .common import UsageProblem, UserError, emit_json, out, parse_time
from .tenant import _call, _client

showback = OnFirstUse("yunshang.showback")
stackcfg = OnFirstUse("yunshang.infra.config")

report_app = typer.Typer(help="Reports for the platform bureau and finance.", no_args_is_help=True)


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _stack(stack: str):
    try:
        return stackcfg.from_stack_file(stack, stackcfg.PROJECT_ROOT)
    except stackcfg.ConfigError as e:
        raise UserError(str(e)) from None


def _machine(dicts: list[dict], output: Format, first: str) -> bool:
    """json or csv for scripts and finance: True if written (else the caller draws a table)."""
    if output == Format.json:
        emit_json(dicts)
        return True
    if output == Format.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(dicts[0]) if dicts else [first])
        w.writeheader()
        w.writerows(dicts)
        return True
    return False


@report_app.command()
def costs(
    ctx: typer.Context,
    stack: str = typer.Option("local", "--stack", "-s", help="whose price tables (stacks/Pulumi.<stack>.yaml)"),
    output: Format = typer.Option(Format.table, "--output", "-o", help="table for people, csv or json for finance"),
) -> None:
    """Each department's monthly cost (requested and used capacity) and what running the same
    requested capacity on its own servers would cost, with the saving."""
    cfg = _stack(stack)
    from ..client import approved

    tenants = [t for t in _call(_client(ctx).list) if approved(t)]
    rows = showback.report([showback.usage_of(t) for t in tenants], cfg.pricing, cfg.own_server_pricing)
    dicts = [{k: (str(v) if not isinstance(v, str) else v) for k, v in dataclasses.asdict(r).items()} for r in rows]
    if _machine(dicts, output, "tenant"):
        return
    cur = cfg.pricing.currency
    from rich.table import Table

    t = Table("TENANT", "DEPARTMENT", "CPU req/used", "MEM GiB req/used", f"COST/MONTH ({cur})", "OF WHICH USED",
              "OWN SERVERS", "SAVING")
    for r in rows:
        t.add_row(r.tenant, r.department, f"{r.cpu_requested}/{r.cpu_used}", f"{r.memory_gib_requested}/{r.memory_gib_used}",
                  str(r.cost_requested), str(r.cost_used), str(r.own_servers), f"[green]{r.saving}[/]")
    total = lambda f: sum((getattr(r, f) for r in rows), showback.Decimal(0))  # noqa: E731
    t.add_row("[bold]total[/]", "", "", "", str(total("cost_requested")), str(total("cost_used")),
              str(total("own_servers")), f"[bold green]{total('saving')}[/]")
    out.print(t)


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


@report_app.command()
def performance(
    ctx: typer.Context,
    stack: str = typer.Option("local", "--stack", "-s", help="whose sign-off roles and time limits "
                                                             "(stacks/Pulumi.<stack>.yaml, yunshang:signoff)"),
    since: str = typer.Option("", help="only what was requested, rated or quarantined from then on, e.g. 2026-11-01"),
    output: Format = typer.Option(Format.table, "--output", "-o", help="table for people, csv or json for finance"),
    prometheus: Optional[str] = typer.Option(
        None, envvar="YUNSHANG_PROMETHEUS_URL", show_envvar=True,
        help="the Prometheus that scrapes the kubelets, e.g. http://prometheus:9090: adds what each department's "
        "pods really used (averaged over --window) beside what its quota holds"),
    window: str = typer.Option("1h", help="with --prometheus: the window real use is averaged over, e.g. 30m, 1d"),
) -> None:
    """绩效考评: per department and reviewer role, how fast and how well it serves.

    Requests it made and their time to a decision; decisions it owed (as reviewer role or as
    provider), how many are pending and overdue, median and p90 time; quota utilisation (CPU and
    MEM: requested / really used, each over the quota; "used" needs --prometheus and pods on real
    nodes); offers, agreements offered and consumed; quarantines; the consumers' average rating
    (好差评). Platform admins (it reads the audit trail).
    """
    import datetime as dt

    from .. import performance as perf
    from ..client import Agreements, AuditTrail

    if prometheus and not re.fullmatch(r"[0-9]+[smhdw]", window):
        raise UsageProblem(f"--window {window!r} is not a duration: write e.g. 30m, 1h or 1d")
    cfg = _stack(stack)
    start = parse_time("--since", since, "2026-11-01") if since else None
    c = _client(ctx)
    shares = Agreements(c)
    audit = [{"action": r.action, "time": r.time, "tenants": r.tenants} for r in _call(AuditTrail(c).records)]
    real = None
    if prometheus:
        from ..elastic import measured

        try:
            real = measured(prometheus, window)
        except (OSError, RuntimeError) as e:
            raise UserError(f"Prometheus at {prometheus} did not answer ({e}): check --prometheus, or leave it "
                            "out for what the quotas hold only") from None
    rows = perf.report(_call(c.list), _call(shares.list), _call(shares.offers), audit, _call(c.usage),
                       roles=cfg.signoff.roles, tenant_days=cfg.signoff.tenant_days,
                       agreement_days=cfg.signoff.agreement_days, now=dt.datetime.now(dt.timezone.utc), since=start,
                       measured=real)
    if _machine([dataclasses.asdict(r) for r in rows], output, "party"):
        return
    from rich.table import Table

    t = Table("PARTY", "REQUESTS", "REQ MEDIAN/P90", "OWED", "PENDING", "OVERDUE", "DECIDED MEDIAN/P90",
              "CPU REQ/USED", "MEM REQ/USED", "OFFERS", "OFFERED", "CONSUMED", "QUARANTINES", "RATING")
    for r in rows:
        late = f"[red]{r.decisions_overdue}[/]" if r.decisions_overdue else "0"
        rating = f"{r.rating_avg:.1f} ({r.ratings})" if r.ratings else "-"
        t.add_row(r.party, str(r.requests_made), f"{_dur(r.request_median_s)}/{_dur(r.request_p90_s)}",
                  str(r.decisions_owed), str(r.decisions_pending), late,
                  f"{_dur(r.decision_median_s)}/{_dur(r.decision_p90_s)}",
                  f"{_pct(r.cpu_utilisation)}/{_pct(r.cpu_used)}", f"{_pct(r.memory_utilisation)}/{_pct(r.memory_used)}", str(r.offers), str(r.agreements_offered), str(r.agreements_consumed),
                  str(r.quarantines), rating)
    out.print(t)
