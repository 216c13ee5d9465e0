"""What every command shares: output format, one-line errors, no tracebacks for users."""
from __future__ import annotations

import datetime as dt
import enum
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Output(str, enum.Enum):
    table = "table"
    json = "json"


OutputOpt = typer.Option(Output.table, "--output", "-o", help="table for people, json for scripts")


class UserError(Exception):
    """An error the user can fix: each line of it printed as "error: ...", exit code 1 (refused
    after reading a file or the cluster)."""

    exit_code = 1


class UsageProblem(UserError):
    """The command line itself is wrong (a bad value, a missing, unknown or excluded option): exit
    code 2, as click's own usage errors.  Found before any file or the cluster is read."""

    exit_code = 2


def parse_time(flag: str, text: str, example: str = "2026-11-24 or 2026-11-24T08:00:00Z") -> dt.datetime:
    """A --since/--expires value: an ISO date or time, UTC unless it says otherwise."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageProblem(f"{flag} {text!r}: not an ISO date or time (e.g. {example})") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def exclusive(**given: Any) -> None:
    """Options that exclude each other (``given``: option name -> its value, None when not given)."""
    named = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, [], ())]
    if len(named) > 1:
        raise UsageProblem(f"{', '.join(named[:-1])} and {named[-1]} exclude each other: give only one")


# ------------------------------------------------------------------ input problems, named
# One helper turns pydantic's errors (the models', and typer's own coercion of option values, which
# is pydantic too) and the client's refusals (the same shape: loc, input, msg) into one line each:
# the option the user typed, or the field of the file, the value, and what is allowed.

_EXAMPLE_TIME = "must be an ISO date or time (e.g. 2027-03-01)"
_ALLOWED = {
    "int_parsing": "must be a whole number", "int_type": "must be a whole number",
    "int_from_float": "must be a whole number", "float_parsing": "must be a number",
    "float_type": "must be a number", "decimal_parsing": "must be a number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be text", "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)", "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "datetime_parsing": _EXAMPLE_TIME, "datetime_from_date_parsing": _EXAMPLE_TIME, "datetime_type": _EXAMPLE_TIME,
    "date_parsing": "must be an ISO date (e.g. 2027-03-01)", "date_type": "must be an ISO date (e.g. 2027-03-01)",
    "date_from_datetime_parsing": "must be an ISO date (e.g. 2027-03-01)",
    "missing": "is required", "extra_forbidden": "is not a known field (a typo?)",
}
# the models' patterns, in words (a pattern not here is shown as it is)
_PATTERNS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$":
        "lower-case letters, digits, '-' and '.', each part between dots starting and ending with a letter or "
        "digit (e.g. gz-bigdata.population)",
    r"^[A-Za-z0-9][A-Za-z0-9-]*$": "letters, digits and '-', starting with a letter or digit (e.g. 520000-DSJ)",
    r"^[^\x00-\x1f\x7f-\x9f]+$": "any text without control characters (e.g. 贵州省大数据发展管理局)",
    r"^[^\s]+$": "one word, without spaces (e.g. li.wei)",
    r"^[A-Za-z0-9][A-Za-z0-9._/-]*$":
        "letters, digits and . _ / -, starting with a letter or digit (e.g. GZ-IT-2026-0042)",
    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$":
        "a registry host[:port] and path, lower-case (e.g. registry.gz.gov.local/police)",
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$":
        "a host name, or *.<domain> (e.g. portal.gz.gov.cn)",
    r"^https?://[^\s]+$": "an http(s):// URL without spaces",
}
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


def _allowed(e: Mapping[str, Any]) -> str:
    """What is allowed, in words (pydantic's type of error and its context; never a class name)."""
    t, c = e.get("type", ""), e.get("ctx") or {}
    if t in _ALLOWED:
        return _ALLOWED[t]
    msg = str(e.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    choices = c.get("expected") if t in ("enum", "literal_error") else None
    if choices is None and (m := re.search(r"is not one of ('[^']*'(, '[^']*')*)\.?$", msg)):  # typer's choices
        choices = m.group(1)
    if choices is not None:  # "'a', 'b' or 'c'"
        return "must be one of " + ", ".join(x.strip(" '\"") for x in re.split(r",| or ", str(choices)) if x.strip())
    if t in _BOUNDS and _BOUNDS[t][0] in c:
        return f"must be {_BOUNDS[t][1]} {c[_BOUNDS[t][0]]}"
    if t == "string_too_short":
        return "must not be empty" if c.get("min_length", 1) == 1 else f"must be at least {c['min_length']} characters"
    if t == "string_too_long":
        return f"must be at most {c.get('max_length')} characters"
    if t == "too_short":
        return f"needs at least {c.get('min_length')}"
    if t == "too_long":
        return f"takes at most {c.get('max_length')}"
    if t == "string_pattern_mismatch":
        pattern = str(c.get("pattern"))
        return f"must be {_PATTERNS[pattern]}" if pattern in _PATTERNS else f"must match {pattern}"
    if msg.endswith(" is negative"):  # a quantity's own words, which do not say what is allowed
        return f"{msg}: must be 0 or more (e.g. 4, 500m, 8Gi)"
    return re.sub(r"^Input should be ", "must be ", msg)


def _shown(v: Any) -> str | None:
    """The value as the user gave it; None for what is not one value (a mapping, a list)."""
    if v is None or isinstance(v, (bool, dict, list, tuple)):
        return None
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dt.datetime):
        utc = v.astimezone(dt.timezone.utc) if v.tzinfo else v
        return utc.date().isoformat() if utc.time() == dt.time() else utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(v, dt.date):
        return v.isoformat()
    text = str(v)
    return text if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text) else repr(text)


def _path(loc: Iterable[Any]) -> str:
    text = ""
    for p in loc:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text


def _option(dotted: str, names: Mapping[str, str]) -> str | None:
    """The option that gave a field: the longest key of ``names`` that is its path or a parent."""
    hits = [k for k in names if dotted == k or dotted.startswith(k + ".") or k == ""]
    return names[max(hits, key=len)] if hits else None


def describe(errors: Any, names: Mapping[str, str] | None = None, prefix: str = "") -> list[tuple[str, bool]]:
    """One line per error, each with whether an option of ``names`` gave the value.

    ``errors``: a pydantic ValidationError, or a list of errors of its shape ({"loc", "input", "msg",
    "type", "ctx"}, e.g. the client's refusals).  ``names``: field path (dotted) -> the option that
    gave it; a field no option gave is named ``prefix`` + its path (e.g. spec.quota.cpu)."""
    items = errors.errors(include_url=False) if hasattr(errors, "errors") else list(errors)
    lines = []
    for e in items:
        loc = tuple(e.get("loc") or ())
        option = _option(".".join(str(p) for p in loc), names or {})
        where = option or (prefix + _path(loc) if loc else prefix.rstrip(".") or "")
        what, raw = _allowed(e), e.get("input")
        shown = None if e.get("type") == "missing" else _shown(raw)
        if shown and isinstance(raw, str):  # a message that starts with the value says it once
            for echo in (repr(raw), raw):
                if what.startswith(echo + " "):
                    what = what[len(echo) + 1:]
                    break
        head = " ".join(x for x in (where, shown) if x)
        if what == "is required" and " and " in where:
            what = "are required"
        sep = " " if shown is None and what.startswith(("is ", "are ")) else ": "  # "--purpose is required"
        lines.append((f"{head}{sep}{what}" if head else what, option is not None))
    return lines


def refuse(errors: Any, names: Mapping[str, str] | None = None, prefix: str = "", where: str = "",
           usage: bool | None = None) -> NoReturn:
    """Raise ``errors`` (see `describe`) as one line each, a line that no option gave after ``where``
    (e.g. the file it came from).  Exit 2 (``usage`` None: when every line names an option the user
    typed), else 1."""
    described = describe(errors, names, prefix)
    lines = [f"{where}: {text}" if where and not by_option else text for text, by_option in described]
    if usage is None:
        usage = all(by_option for _, by_option in described)
    raise (UsageProblem if usage else UserError)("\n".join(lines))


def read_manifest(path: Path, kind: str, flag: str = "--file") -> dict[str, Any]:
    """One manifest of ``kind`` from a YAML file, or one line that says what the file is instead
    (yunshang.client.read_manifest, which the catalogue reads its files with too)."""
    from ..client import ClientError
    from ..client import read_manifest as read

    try:
        return read(path, kind, flag)
    except ClientError as e:
        raise UserError(str(e)) from None


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _say(line: str) -> None:
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)


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
        if isinstance(e, UserError):  # one problem per line
            for line in msg.splitlines() or [msg]:
                _say(line)
            return e.exit_code
        first, _, rest = msg.partition("\n")
        _say(first)
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


def usage_line(e: Exception) -> str:
    """A usage error of click (typer ships its own copy) as one line: the option or argument, the
    value, what is allowed, and where the help is."""
    from typer._click import exceptions as ce

    ctx = getattr(e, "ctx", None)
    helps = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    param = getattr(e, "param", None)
    if isinstance(e, ce.MissingParameter) and param is not None:
        kind = "option" if getattr(param, "param_type_name", "") == "option" else "argument"
        return f"missing {kind} {_param_name(param)}{helps}"
    if isinstance(e, ce.BadParameter) and param is not None:
        cause = e.__cause__
        if hasattr(cause, "errors"):  # typer coerces through pydantic: the value and the rule are there
            return describe(cause, {"": _param_name(param)})[0][0] + helps
        return f"{_param_name(param)}: {_sentence(e.message)}{helps}"
    if isinstance(e, ce.NoSuchOption):
        if _root_option(e.option_name, ctx):
            sub = " ".join(ctx.command_path.split()[1:])
            return (f"{e.option_name} is an option of yunshang itself: put it before the command "
                    f"(yunshang {e.option_name} VALUE {sub} ...)")
        near = f" (did you mean {' or '.join(sorted(e.possibilities))}?)" if e.possibilities else ""
        if not near and not e.option_name.startswith("--") and ctx is not None and any(
                getattr(p, "param_type_name", "") == "argument" for p in ctx.command.params):
            near = " (a NAME that starts with '-' is read as options: names start with a letter or digit)"
        return f"no such option {e.option_name}{near}{helps}"
    if isinstance(e, ce.BadOptionUsage):
        if "requires an argument" in e.message:
            return f"{e.option_name} needs a value{helps}"
        return f"{e.option_name}: {_sentence(e.message)}{helps}"
    if ctx is not None and e.message.startswith("No such command") and hasattr(ctx.command, "list_commands"):
        return f"{_sentence(e.message)}; the commands of `{ctx.command_path}` are " \
               f"{', '.join(ctx.command.list_commands(ctx))}"
    return f"{_sentence(e.message)}{helps}"


def _param_name(param: Any) -> str:
    """--long-option for an option, NAME for an argument."""
    opts = list(getattr(param, "opts", []))
    if getattr(param, "param_type_name", "") == "option" and opts:
        return next((o for o in opts if o.startswith("--")), opts[0])
    return str(getattr(param, "name", "value")).upper()


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _root_option(name: str, ctx: Any) -> bool:
    """Is ``name`` an option of the root command (given after a subcommand)?"""
    root = ctx.find_root() if ctx is not None else None
    return root is not None and root is not ctx and any(name in getattr(p, "opts", []) for p in root.command.params)


def _last_guard(e: Exception) -> int:
    """Anything else: one line, never locals, a traceback or a Python class name."""
    from typer._click import exceptions as ce

    if isinstance(e, ce.NoArgsIsHelpError):  # a group without a command: its help, exit 2, as click does
        e.show()
        return e.exit_code
    if isinstance(e, ce.UsageError):
        _say(usage_line(e))
        return e.exit_code
    if isinstance(e, ce.ClickException):
        _say(_sentence(e.format_message()))
        return e.exit_code
    if isinstance(e, typer.Abort):
        err.print("aborted")
        return 1
    _say(f"unexpected failure: {str(e).splitlines()[0] if str(e) else 'no details'} "
         "(a bug: please report it with the command you ran)")
    return 1
