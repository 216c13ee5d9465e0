"""What every command shares: output format, one-line errors, no tracebacks for users."""
from __future__ import annotations

import datetime as dt
import enum
import json
import sys
from typing import Any

import typer
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


OutputOpt = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts")


class UserError(Exception):
    """An error the user can fix: printed as one line, exit code 1."""


def parse_time(flag: str, text: str, example: str = "2026-11-24 or 2026-11-24T08:00:00Z") -> dt.datetime:
    """A --since/--expires value: an ISO date or time, UTC unless it says otherwise."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{flag} {text!r} is not an ISO date or time (e.g. {example})") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_app(app: typer.Typer) -> int:
    """Run the app; known errors become one line on stderr, never a traceback."""
    try:
        rv = app(standalone_mode=False)
        if isinstance(rv, int):  # click returns the code of a typer.Exit when not standalone
            return rv
    except typer.Exit as e:
        return e.exit_code
    except Exception as e:  # noqa: BLE001  (sorted below: ours become one line, the rest the last guard's)
        if not _ours(e):
            return _last_guard(e)
        msg = str(e)
        first, _, rest = msg.partition("\n")
        err.print(f"[bold red]error:[/] {first}", highlight=False, soft_wrap=True)
        if rest:
            err.print(rest, highlight=False, markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


# errors a user can act on; a module not imported yet cannot have raised its own (and importing it
# here would cost `yunshang --help` the time bench/cli_latency.py measures)
KNOWN_ERRORS = (("yunshang.client", "ClientError"), ("yunshang.dev.controlplane", "StartError"),
                ("yunshang.dev.toolchain", "ToolMissing"))


def _ours(e: Exception) -> bool:
    if isinstance(e, UserError):
        return True
    return any(isinstance(e, getattr(sys.modules[m], cls)) for m, cls in KNOWN_ERRORS if m in sys.modules)


def _last_guard(e: Exception) -> int:
    """Anything else: one line, never locals or a traceback."""
    import click

    if isinstance(e, click.exceptions.ClickException):
        e.show()
        return e.exit_code
    if isinstance(e, click.exceptions.Abort):
        return 1
    err.print(f"[bold red]error:[/] {type(e).__name__}: {e}", highlight=False, soft_wrap=True)
    return 1
