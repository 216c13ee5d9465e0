"""The `yunshang` command line: one Typer sub-app per command group."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from . import auth
from .audit import audit_app
from .common import run_app
from .dev import dev_app
from .platform import platform_app
from .report import report_app
from .share import share_app
from .tenant import tenant_app

app = typer.Typer(
    name="yunshang",
    help="云上 yunshang: one shared, governed Kubernetes platform for every department.\n\n"
    "Start here: `make up` (or `yunshang dev up`), then `yunshang tenant request --help`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Optional[str] = typer.Option(
        None, "--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    ),
    context: Optional[str] = typer.Option(None, "--context", help="kubeconfig context (default: the current one)"),
) -> None:
    from ..target import Target

    source = ctx.get_parameter_source("kubeconfig")
    from_env = source is not None and source.name == "ENVIRONMENT"
    named = ("$KUBECONFIG" if from_env else "--kubeconfig") if kubeconfig else None  # for its messages
    ctx.obj = Target(kubeconfig.split(":")[0] if kubeconfig else None, context, named)


app.add_typer(dev_app, name="dev")
app.add_typer(tenant_app, name="tenant")
app.add_typer(platform_app, name="platform")
app.add_typer(share_app, name="share")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
for command in (auth.login, auth.logout, auth.whoami, auth.token):
    app.command(command.__name__)(command)


def main() -> None:
    sys.exit(run_app(app))
