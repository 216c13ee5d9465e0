"""`yunshang report costs`: monthly showback per department, and the saving against own servers;
`yunshang report performance`: how fast and how well each department and reviewer role serves."""
from __future__ import annotations

import csv
import dataclasses
import enum
import re
import sys
from typing import Any, Callable, Optional

import typer
from rich.markup import escape

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
    wide = "wide"


class By(str, enum.Enum):
    tenant = "tenant"
    level = "level"
    parent = "parent"


OUTPUT_HELP = ("table: the columns a reader needs first, fitting an 80-column terminal; wide: every column "
               "(as wide as it takes: widen the terminal or pipe through `less -S`); csv or json: every field, for "
               "finance and scripts. E.g. -o wide, -o csv > costs.csv")
BY_HELP = ("tenant: one row per tenant; level: one row per level (province, city, county, township, village), "
           "summing the tenants of that level; parent: one row per tenant that has children, summing its whole "
           "subtree (itself and every tenant below it). E.g. --by level. In the table a roll-up's name is followed "
           "by how many tenants it sums, e.g. city (12)")


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a report's table: its header, its cell for a row and, for a total row, its
    total over the rows (None: empty); ``narrow``: in the default table, not only with -o wide."""

    header: str
    cell: Callable[[Any], str]
    narrow: bool = False
    total: Optional[Callable[[list], str]] = None
    key: bool = False  # the name column: the one that folds when a name is long


def chosen(columns: list[Column], output: "Format") -> list[Column]:
    """The columns -o table shows (the narrow ones), or every one for -o wide."""
    return [c for c in columns if output == Format.wide or c.narrow]


def _name(r: Any, field: str) -> str:
    """A row's name, a roll-up's with how many tenants it sums."""
    name = escape(getattr(r, field) or "-")
    return f"{name} ({r.tenants})" if hasattr(r, "tenants") else name


KEY_HEADER = {By.level: "LEVEL", By.parent: "SUBTREE"}


def cost_columns(by: By, currency: str) -> list[Column]:
    dec = showback.Decimal
    total = (lambda f: (lambda rows: str(sum((getattr(r, f) for r in rows), dec(0)))))  # noqa: E731
    cols = [Column(KEY_HEADER.get(by, "TENANT"), lambda r: _name(r, "tenant"), True,
                   lambda rows: "[bold]total[/]", key=True),
            Column("DEPARTMENT", lambda r: escape(r.department)),
            Column("LEVEL", lambda r: r.level or "-", True),
            Column("CPU req/used", lambda r: f"{r.cpu_requested}/{r.cpu_used}"),
            Column("MEM GiB req/used", lambda r: f"{r.memory_gib_requested}/{r.memory_gib_used}"),
            Column(f"COST/MONTH ({currency})", lambda r: str(r.cost_requested), True, total("cost_requested")),
            Column("OF WHICH USED", lambda r: str(r.cost_used), False, total("cost_used")),
            Column("OWN SERVERS", lambda r: str(r.own_servers), True, total("own_servers")),
            Column("SAVING", lambda r: f"[green]{r.saving}[/]", True,
                   lambda rows: f"[bold green]{total('saving')(rows)}[/]")]
    return cols if by != By.level else [cols[0], *cols[3:]]  # a level has no department; its level is its name


def performance_columns(by: By) -> list[Column]:
    return [Column(KEY_HEADER.get(by, "PARTY"), lambda r: _name(r, "party"), True, key=True),
            Column("REQUESTS", lambda r: str(r.requests_made), True),
            Column("REQ MEDIAN/P90", lambda r: f"{_dur(r.request_median_s)}/{_dur(r.request_p90_s)}"),
            Column("OWED", lambda r: str(r.decisions_owed), True),
            Column("PENDING", lambda r: str(r.decisions_pending), True),
            Column("OVERDUE", lambda r: f"[red]{r.decisions_overdue}[/]" if r.decisions_overdue else "0", True),
            Column("DECIDED MEDIAN/P90", lambda r: f"{_dur(r.decision_median_s)}/{_dur(r.decision_p90_s)}", True),
            Column("CPU REQ/USED", lambda r: f"{_pct(r.cpu_utilisation)}/{_pct(r.cpu_used)}"),
            Column("MEM REQ/USED", lambda r: f"{_pct(r.memory_utilisation)}/{_pct(r.memory_used)}"),
            Column("OFFERS", lambda r: str(r.offers)),
            Column("OFFERED", lambda r: str(r.agreements_offered)),
            Column("CONSUMED", lambda r: str(r.agreements_consumed)),
            Column("QUARANTINES", lambda r: str(r.quarantines)),
            Column("RATING", lambda r: f"{r.rating_avg:.1f} ({r.ratings})" if r.ratings else "-", True)]


def draw(columns: list[Column], rows: list, output: "Format", totals: bool = False) -> None:
    """The table (thin: the columns say what is in it).  The default one fits the terminal, a long
    name folding in its own column; -o wide takes the width it needs, whatever the terminal's."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table

    cols = chosen(columns, output)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for c in cols:
        t.add_column(c.header, no_wrap=not c.key, overflow="fold" if c.key else "ellipsis",
                     justify="left" if c.key else "right")
    for r in rows:
        t.add_row(*(c.cell(r) for c in cols))
    if totals:
        t.add_row(*(c.total(rows) if c.total else "" for c in cols))
    if output != Format.wide:
        out.print(t)
        return
    natural, width = Measurement.get(out, out.options.update_width(10_000), t).maximum, out.width
    out.width = max(width, natural)  # the terminal folds what is wider than itself
    try:
        out.print(t)
    finally:
        out.width = width


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
    stack: str = typer.Option("local", "--stack", "-s", help="whose price tables (stacks/Pulumi.<stack>.yaml), "
                                                             "e.g. --stack prod"),
    by: By = typer.Option(By.tenant, "--by", help=BY_HELP),
    output: Format = typer.Option(Format.table, "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Each department's monthly cost (requested and used capacity) and what running the same
    requested capacity on its own servers would cost, with the saving.

    By default one row per approved tenant: TENANT, LEVEL, COST/MONTH, OWN SERVERS, SAVING, and the
    total; -o wide adds DEPARTMENT, the CPU and memory requested and used, and the cost of what is
    used.  --by level or --by parent sums money and quantities (a subtree counts a tenant in every
    subtree above it, so --by parent has no total).

    yunshang report costs --by level -s prod
    """
    cfg = _stack(stack)
    from ..client import approved
    from ..tree import parents_of

    tenants = [t for t in _call(_client(ctx).list) if approved(t)]
    c = _client(ctx)
    used = _call(c.usage)  # what the tenants' ResourceQuotas use (the operator keeps usage out of the status)
    rows = showback.report([showback.usage_of(t, used.get(t["metadata"]["name"], ({}, {}))[0]) for t in tenants],
                           cfg.pricing, cfg.own_server_pricing)
    if by == By.level:
        rows = showback.by_level(rows)
    elif by == By.parent:
        rows = showback.by_parent(rows, parents_of(tenants))
    dicts = [{k: (str(v) if not isinstance(v, str) else v) for k, v in dataclasses.asdict(r).items()} for r in rows]
    if _machine(dicts, output, "tenant"):
        return
    draw(cost_columns(by, cfg.pricing.currency), rows, output, totals=by != By.parent)


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
                                                             "(stacks/Pulumi.<stack>.yaml, yunshang:signoff), "
                                                             "e.g. --stack prod"),
    since: str = typer.Option("", help="only what was requested, rated or quarantined from then on, e.g. 2026-11-01"),
    by: By = typer.Option(By.tenant, "--by", help=BY_HELP + ". Reviewer roles (role:<name>) are no tenants: "
                          "level and parent leave them out"),
    output: Format = typer.Option(Format.table, "--output", "-o", help=OUTPUT_HELP),
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

    The default table shows PARTY, REQUESTS, OWED, PENDING, OVERDUE, DECIDED MEDIAN/P90 and RATING;
    -o wide every column.  A roll-up (--by level, --by parent) adds up the counts, takes the median
    and p90 over all its tenants' requests and decisions, utilisation as the sum used over the sum
    of the quotas, and the rating over all their ratings.

    yunshang report performance --since 2026-11-01 --by level
    """
    import datetime as dt

    from .. import performance as perf
    from ..client import Agreements, AuditTrail
    from ..tree import levels_of, parents_of

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
    tenants = _call(c.list)
    now = dt.datetime.now(dt.timezone.utc)
    facts = perf.facts(tenants, _call(shares.list), _call(shares.offers), audit, _call(c.usage),
                       roles=cfg.signoff.roles, tenant_days=cfg.signoff.tenant_days,
                       agreement_days=cfg.signoff.agreement_days, since=start, measured=real, now=now)
    if by == By.level:
        rows = perf.by_level(facts, levels_of(tenants), now)
    elif by == By.parent:
        rows = perf.by_parent(facts, parents_of(tenants), levels_of(tenants), now)
    else:
        rows = perf.rows(facts, now)
    if _machine([dataclasses.asdict(r) for r in rows], output, "party"):
        return
    draw(performance_columns(by), rows, output)
