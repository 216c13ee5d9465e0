"""The `yunshang` command's entry point: `yunshang token` (the credential plugin, run before every
request kubectl or the CLI makes as a signed-in person) answers without loading the CLI; every
other command is the Typer app (yunshang.cli)."""
from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["token"] and not {"-h", "--help"} & set(sys.argv[2:]):
        from .identity.credential import main as token

        sys.exit(token(sys.argv[2:]))
    from .cli import main as cli

    cli()
