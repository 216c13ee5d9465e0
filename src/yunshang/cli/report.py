"""`yunshang report costs`: monthly showback per department, and the saving against own servers."""
from __future__ import annotations

import csv
import dataclasses
import enum
import sys

import typer

from ..lazy import OnFirstUse
from .common import UserError, emit_json, out
from .tenant import _call, _client

showback = OnFirstUse("yunshang.showback")
stackcfg = OnFirstUse("yunshang.infra.config")

report_app = typer.Typer(help="Reports for the platform bureau and finance.", no_args_is_help=True)


class Format(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"


@report_app.command()
def costs(
    ctx: typer.Context,
    stack: str = typer.Option("local", "--stack", "-s", help="whose price tables (stacks/Pulumi.<stack>.yaml)"),
    output: Format = typer.Option(Format.table, "--output", "-o", help="table for people, csv or json for finance"),
) -> None:
    """Each department's monthly cost (requested and used capacity) and what running the same
    requested capacity on its own servers would cost, with the saving."""
    try:
        cfg = stackcfg.from_stack_file(stack, stackcfg.PROJECT_ROOT)
    except stackcfg.ConfigError as e:
        raise UserError(str(e)) from None
    from ..client import approved

    tenants = [t for t in _call(_client(ctx).list) if approved(t)]
    rows = showback.report([showback.usage_of(t) for t in tenants], cfg.pricing, cfg.own_server_pricing)
    dicts = [{k: (str(v) if not isinstance(v, str) else v) for k, v in dataclasses.asdict(r).items()} for r in rows]
    if output == Format.json:
        emit_json(dicts)
        return
    if output == Format.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(dicts[0]) if dicts else ["tenant"])
        w.writeheader()
        w.writerows(dicts)
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
