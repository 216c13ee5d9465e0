"""The `yunshang` command line: one Typer sub-app per command group."""
from __future__ import annotations

import sys

import typer

from .common import run_app
from .dev import dev_app

app = typer.Typer(
    name="yunshang",
    help="云上 yunshang: one shared, governed Kubernetes platform for every department.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.add_typer(dev_app, name="dev")


def main() -> None:
    sys.exit(run_app(app))
