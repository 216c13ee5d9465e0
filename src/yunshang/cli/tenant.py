"""`yunshang tenant`: request, approve and govern department tenants."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import Output, OutputOpt, UsageProblem, UserError, emit_json, out, read_manifest, refuse

# The models, the Kubernetes client and rich's tables are imported by the commands that use
# them: `yunshang --help` and `tenant list` need none of them (bench/cli_latency.py).

tenant_app = typer.Typer(
    help="Department tenants: a department requests one, the platform bureau approves it, the "
    "operator provisions namespaces, quota, RBAC and isolation and keeps them so.",
    no_args_is_help=True,
)


def target(ctx: typer.Context):
    """The Target the root callback built (--kubeconfig/$KUBECONFIG, --context)."""
    from ..target import Target

    return ctx.find_root().obj or Target()


def _client(ctx: typer.Context):
    from ..client import ClientError, Tenants

    t = target(ctx)
    try:
        return Tenants(t.kubeconfig, t.context, named=t.named)
    except ClientError as e:
        raise UserError(str(e)) from None


def _call(fn, *args, _names: dict[str, str] | None = None, _prefix: str = "", _where: str = "", **kwargs):
    """A client call; its refusals one line each, a field named by the option that gave it (``_names``,
    field path -> option), else as ``_prefix`` + its path after ``_where`` (e.g. the file)."""
    from ..client import ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as e:
        if getattr(e, "problems", None) and _names is not None:
            refuse(e.problems, _names, prefix=_prefix, where=_where, usage=False)
        raise UserError(str(e)) from None


def _name_problem(name: str) -> str | None:
    """Which rule a new tenant's name breaks, exactly (check_tenant_name then says the rest)."""
    from ..models.tenant import TENANT_NAME_MAX

    rule = (f"a tenant name is 2-{TENANT_NAME_MAX} lower-case letters, digits and '-', starting and ending with a "
            "letter or digit (e.g. gz-health)")
    if not 2 <= len(name) <= TENANT_NAME_MAX:
        return f"is {len(name)} characters long; {rule}"
    if upper := sorted({c for c in name if c.isupper()}):
        return f"has upper-case letters ({', '.join(upper)}); {rule}"
    if other := sorted({c for c in name if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "-")}):
        return f"has {', '.join(repr(c) for c in other)}, which a tenant name may not hold; {rule}"
    for end, at in ((name[0], "starts"), (name[-1], "ends")):
        if end == "-":
            return f"{at} with '-'; {rule}"
    return None


# the options of `tenant request`, by the field of the request each gives
REQUEST_OPTIONS = {
    "department": "--department-code and --department-name", "department.code": "--department-code",
    "department.name": "--department-name", "level": "--level",
    "parent": "--parent", "owners": "--owner", "purpose": "--purpose", "project": "--project",
    "classification": "--classification", "namespaces": "--namespace", "quota.cpu": "--cpu",
    "quota.memory": "--memory", "quota.storage": "--storage", "quota.pods": "--pods",
}
ABOVE = {"city": "province", "county": "city", "township": "county", "village": "township"}


def _summary(t: dict[str, Any]) -> dict[str, Any]:
    spec, st = t["spec"], t.get("status") or {}
    return {
        "name": t["metadata"]["name"],
        "phase": st.get("phase", "Pending"),
        "level": spec.get("level"),
        "parent": spec.get("parent"),
        "department": spec.get("department", {}).get("name"),
        "namespaces": st.get("namespaceCount", 0),
        "cpu": str(spec.get("quota", {}).get("cpu", "")),
        "memory": str(spec.get("quota", {}).get("memory", "")),
        "message": st.get("message", ""),
    }


PHASE_STYLE = {"Ready": "green", "Pending": "yellow", "Approved": "yellow", "Provisioning": "cyan",
               "Suspended": "red", "Rejected": "red", "Terminating": "magenta", "Conflict": "red"}


@tenant_app.command("request")
def request(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="tenant name (lower-case, 2-30 chars); taken from the file if omitted"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="a Tenant manifest, e.g. tenants/gz-bigdata.yaml"),
    department_code: Optional[str] = typer.Option(None, help="official department code, e.g. 520000-DSJ"),
    department_name: Optional[str] = typer.Option(None, help="department name, e.g. 贵州省大数据发展管理局"),
    level: Optional[str] = typer.Option(None, help="province, city, county, township or village (五级): a city "
                                                   "tenant sits under a province tenant (--parent), a county under a "
                                                   "city, a township under a county, a village under a township "
                                                   "(a village has one namespace)"),
    parent: Optional[str] = typer.Option(None, help="the tenant one level up whose quota this one is carved out of "
                                                    "(every level but province), e.g. gz-zunyi"),
    owner: list[str] = typer.Option([], help="owner user (or group:NAME); repeat for several"),
    purpose: Optional[str] = typer.Option(None, help="what the tenant is for"),
    project: Optional[str] = typer.Option(None, help="approved IT project reference"),
    classification: Optional[str] = typer.Option(None, help="public, internal, sensitive or secret"),
    namespace: list[str] = typer.Option([], help="namespace suffix, lower-case letters and digits; repeat for several, "
                                                 "each once (default: main)"),
    cpu: Optional[str] = typer.Option(None, help="CPU quota, e.g. 4 or 500m (more than 0; split over the namespaces)"),
    memory: Optional[str] = typer.Option(None, help="memory quota, e.g. 8Gi (more than 0)"),
    storage: Optional[str] = typer.Option(None, help="storage quota, e.g. 100Gi (0: no persistent volumes)"),
    pods: Optional[int] = typer.Option(None, help="how many pods may run at once (more than 0)"),
    output: Output = OutputOpt,
) -> None:
    """Ask for a tenant (it stays Pending until the platform bureau approves it).

    From a catalog file:  yunshang tenant request -f tenants/gz-bigdata.yaml

    From flags:  yunshang tenant request gz-health --department-code 520000-WJW
    --department-name 贵州省卫生健康委员会 --level province --owner wang.fang
    --purpose "hospital records" --project GZ-IT-2026-0107 --cpu 4 --memory 8Gi

    Every value is checked before anything is written: a wrong one is named with what is allowed
    (exit 2 for the command line, 1 for the file or what the cluster says, e.g. a parent of the
    wrong level).
    """
    from pydantic import ValidationError

    from ..client import Tenants
    from ..models.tenant import TenantRequest, check_tenant_name, suffix_problem

    # the command line alone first
    values = {"department.code": department_code, "department.name": department_name, "level": level,
              "parent": parent, "owners": owner, "purpose": purpose, "project": project,
              "classification": classification, "namespaces": namespace, "quota.cpu": cpu, "quota.memory": memory,
              "quota.storage": storage, "quota.pods": pods}
    given = {k: REQUEST_OPTIONS[k] for k, v in values.items() if v not in (None, [])}
    if name is not None and (problem := _name_problem(name)):
        raise UsageProblem(f"tenant name {name!r} {problem}")
    if twice := sorted({n for n in namespace if namespace.count(n) > 1}):
        raise UsageProblem(f"--namespace {twice[0]!r} is given twice: each suffix names one namespace "
                           "(<tenant>-<suffix>), give it once")
    if level == "province" and parent:
        raise UsageProblem(f"--parent {parent!r}: a province tenant has no parent; leave out --parent, or ask for "
                           "another level under its parent, e.g. --level city --parent gz-province")
    if level == "village" and len(namespace) > 1:
        raise UsageProblem(f"--namespace is given {len(namespace)} times: a village tenant has exactly one namespace "
                           "(its township's tenant can hold more); give one, or none for main")
    if level in ABOVE and not parent and not file:
        raise UsageProblem(f"--level {level} needs --parent: the {ABOVE[level]} tenant it is carved out of")
    data: dict[str, Any] = {}
    where = ""
    if file:
        doc = read_manifest(file, "Tenant")
        data, where = dict(doc["spec"]), str(file)
        if name is None:
            name = str(doc["metadata"]["name"])
            if problem := _name_problem(name):
                raise UserError(f"{file}: metadata.name {name!r} {problem}")
    if not name:
        raise UsageProblem("give the tenant's NAME or --file; see `yunshang tenant request --help`")
    names = given if file else REQUEST_OPTIONS  # without a file every field is an option's
    flags = {
        "level": level, "parent": parent, "purpose": purpose, "project": project,
        "classification": classification,
    }
    data.update({k: v for k, v in flags.items() if v is not None})
    if department_code or department_name:
        data["department"] = {**(data.get("department") if isinstance(data.get("department"), dict) else {}),
                              **({"code": department_code} if department_code else {}),
                              **({"name": department_name} if department_name else {})}
    if owner:
        data["owners"] = [{"kind": "Group", "name": o[6:]} if o.startswith("group:") else {"kind": "User", "name": o}
                          for o in owner]
    if namespace:
        data["namespaces"] = namespace
    quota = {k: v for k, v in {"cpu": cpu, "memory": memory, "storage": storage, "pods": pods}.items() if v is not None}
    if quota:
        data["quota"] = {**(data.get("quota") if isinstance(data.get("quota"), dict) else {}), **quota}
    try:
        req = TenantRequest.model_validate(data)
    except ValidationError as e:
        refuse(e, names, prefix="spec.", where=where)
    suffixes = [Tenants.problem(("namespaces", i), n, problem.removeprefix(f"tenant {name}: namespace suffix {n!r} "))
                for i, n in enumerate(req.namespaces) if (problem := suffix_problem(name, n))]
    if suffixes:
        refuse(suffixes, names, prefix="spec.", where=where)
    try:
        check_tenant_name(name, req)
    except ValueError as e:
        raise (UserError(f"{file}: {e}") if file else UsageProblem(str(e))) from None
    if problems := Tenants.quota_problems(req):
        refuse(problems, names, prefix="spec.", where=where)
    created = _call(_client(ctx).request, name, req, _names=names, _prefix="spec.", _where=where)
    if output == Output.json:
        emit_json(created)
        return
    out.print(f"tenant [bold]{name}[/] requested: Pending until every reviewer role signs it off "
              f"(`yunshang tenant show {name}` shows who has)")


@tenant_app.command("list")
def list_(ctx: typer.Context, output: Output = OutputOpt,
          tree: bool = typer.Option(False, "--tree", help="the hierarchy (province, city, county, township, village) "
                                    "as an indented tree: each tenant's level and phase, and its CPU and memory "
                                    "used / carved out for its children / left, e.g. `yunshang tenant list --tree`; "
                                    "with -o json the same nested (name, level, phase, used, carved, left, "
                                    "children)")) -> None:
    """All tenants with their phase, level, parent and quota.

    With --tree, the hierarchy: under each tenant its children.  USED is what its namespaces'
    quotas hold (requests); CARVED what its approved children take from it (each child's ceiling:
    its quota, raised by elastic.ceiling); LEFT its own ceiling minus CARVED, what a new child may
    still have (negative: more is carved than it has).  A tenant whose parent is not there (deleted,
    or not yours to see) is shown at the top, marked as an orphan.

    yunshang tenant list --tree -o json
    """
    if tree:  # yunshang.tree builds it; used is read live from the quotas where the caller may list them
        from rich import box
        from rich.markup import escape
        from rich.table import Table

        from .. import tree as tr
        from ..client import ClientError

        c = _client(ctx)
        tenants = _call(c.list)
        try:
            usage = {name: used for name, (used, _hard) in c.usage().items()}
        except ClientError:  # a department may not list every quota: its tenants' status says what it can
            usage = None
        forest = tr.build(tenants, usage)
        if output == Output.json:
            emit_json([n.as_dict() for n in forest])
            return
        if not forest:
            out.print("no tenants yet: request one with `yunshang tenant request --help`")
            return
        table = Table("TENANT", "LEVEL", "PHASE", "CPU\nused/carved/left", "MEMORY\nused/carved/left",
                      box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        for i, col in enumerate(table.columns):
            col.overflow, col.no_wrap, col.justify = ("fold", False, "left") if i == 0 else \
                ("ellipsis", True, "right" if i >= 3 else "left")
        for depth, n in tr.walk(forest):
            style = PHASE_STYLE.get(n.phase, "")
            name = "  " * depth + escape(n.name)
            if n.orphan:  # on a line of its own under the name
                name += f"\n{'  ' * depth}[red]orphan: parent {escape(n.orphan)} not found[/]"
            amounts = ["/".join(tr.quantity_text(k, getattr(n, part)[k]) for part in ("used", "carved", "left"))
                       for k in tr.RESOURCES]
            table.add_row(name, n.level or "-", f"[{style}]{n.phase}[/]" if style else n.phase, *amounts)
        out.print(table)
        return
    items = [_summary(t) for t in _call(_client(ctx).list)]
    if output == Output.json:
        emit_json(items)
        return
    if not items:
        out.print("no tenants yet: request one with `yunshang tenant request --help`")
        return
    from rich.table import Table

    table = Table("NAME", "PHASE", "LEVEL", "PARENT", "DEPARTMENT", "NS", "CPU", "MEMORY")
    for s in sorted(items, key=lambda s: s["name"]):
        style = PHASE_STYLE.get(s["phase"], "")
        table.add_row(s["name"], f"[{style}]{s['phase']}[/]" if style else s["phase"], s["level"],
                      s["parent"] or "-", s["department"], str(s["namespaces"]), s["cpu"], s["memory"])
    out.print(table)


def _show_signoff(spec: dict[str, Any], st: dict[str, Any]) -> None:
    """Each role's decision: the open round's from the status (with deadlines), else the approved round's."""
    so = st.get("signoff")
    if so:
        out.print(f"  sign-off   : round {so.get('round', 1)} {so.get('state', 'Pending')}"
                  + (f" (round {so['approvedRound']} approved)" if so.get("approvedRound") else ""))
        for r in so.get("roles") or []:
            if r.get("decision") == "Pending":
                late = "[red]OVERDUE[/] " if r.get("overdue") else ""
                out.print(f"    {r['role']:<10} {late}pending, due {r.get('deadline') or '-'}")
            else:
                colour = "green" if r["decision"] == "Approved" else "red"
                note = f": {r['reason']}" if r.get("reason") else ""
                out.print(f"    {r['role']:<10} [{colour}]{r['decision']}[/] by {r.get('by')} at {r.get('at')}{note}")
        return
    rounds = sorted({int(d.get("round") or 1) for d in spec.get("signoffs") or []})
    if rounds:
        last = rounds[-1]
        out.print(f"  sign-off   : round {last}")
        for d in spec["signoffs"]:
            if int(d.get("round") or 1) == last:
                note = f": {d['reason']}" if d.get("reason") else ""
                out.print(f"    {d['role']:<10} {d['decision']} by {d['by']} at {d.get('at')}{note}")
    elif spec.get("approval"):
        a = spec["approval"]
        out.print(f"  approval   : {a['decision']} by {a['by']} {a.get('reason', '')}")
    else:
        out.print("  sign-off   : none yet")


@tenant_app.command()
def show(ctx: typer.Context, name: str, output: Output = OutputOpt) -> None:
    """One tenant: spec, approval, status, conditions, per-namespace usage and recent events."""
    c = _client(ctx)
    t = _call(c.get, name)
    if output == Output.json:
        emit_json(t)
        return
    spec, st = t["spec"], t.get("status") or {}
    s = _summary(t)
    out.print(f"[bold]{name}[/]  {spec['department']['name']} ({spec['department']['code']})")
    out.print(f"  phase      : [{PHASE_STYLE.get(s['phase'], '')}]{s['phase']}[/] {st.get('message', '')}")
    out.print(f"  level      : {spec['level']}" + (f" under {spec['parent']}" if spec.get("parent") else ""))
    out.print(f"  purpose    : {spec['purpose']} (project {spec['project']}, {spec.get('classification', '')})")
    owners = ", ".join(f"{o.get('kind', 'User')}:{o['name']}" for o in spec.get("owners", []))
    out.print(f"  owners     : {owners}")
    _show_signoff(spec, st)
    if spec.get("suspended"):
        out.print(f"  suspended  : [red]{spec.get('suspendReason', '')}[/]")
    if spec.get("quarantine"):
        q = spec["quarantine"]
        out.print(f"  quarantine : [red]{q.get('reason', '')}[/] ({q.get('alert') or 'manual'}, {q.get('at', '')}); "
                  f"an admin lifts it with `yunshang tenant resume {name}`")
    q = spec.get("quota", {})
    out.print("  quota      : " + ", ".join(f"{k}={v}" for k, v in q.items()))
    quotas = c.quotas(name, spec) if st.get("phase") in ("Ready", "Suspended") else []
    if quotas:
        from rich.table import Table

        table = Table("NAMESPACE", "CPU used/hard", "MEMORY used/hard", "PODS used/hard")
        for ns in quotas:
            h, u = ns.get("hard", {}), ns.get("used", {})
            table.add_row(ns["name"], *(f"{u.get(k, '0')}/{h.get(k, '-')}"
                                        for k in ("requests.cpu", "requests.memory", "pods")))
        out.print(table)
    events = sorted(c.events(name), key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))[-8:]
    for e in events:
        out.print(f"  [dim]{e.get('lastTimestamp') or e.get('eventTime')}[/] {e.get('reason')}: {e.get('message')}")


RoleOpt = typer.Option([], "--role", help="the reviewer role you sign for, e.g. security; repeat for several "
                     "(default: your only role, from your groups yunshang:reviewer:<role>)")


def _signed(name: str, roles: list[str], rnd: int, verb: str) -> None:
    what = "request" if rnd == 1 else f"quota request (round {rnd})"
    out.print(f"{', '.join(roles)} {verb} the {what} of tenant [bold]{name}[/]; every role decides on its own: "
              f"`yunshang tenant show {name}`")


@tenant_app.command()
def approve(ctx: typer.Context, name: str, role: list[str] = RoleOpt,
            all_roles: bool = typer.Option(False, "--all-roles", help="sign for every reviewer role you hold"),
            reason: str = typer.Option("", help="optional note")) -> None:
    """Record your role's approval (parallel sign-off, 并联审批): the tenant is approved when every
    required role has approved (stack config yunshang:signoff.roles), each on its own, in any order.

    yunshang tenant approve gz-health --role security
    """
    roles, rnd, _ = _call(_client(ctx).approve, name, reason, role, all_roles)
    _signed(name, roles, rnd, "approved")


@tenant_app.command()
def reject(ctx: typer.Context, name: str, reason: str = typer.Option(..., help="why (required)"),
           role: list[str] = RoleOpt) -> None:
    """Record your role's rejection, with a reason: one rejection rejects the request."""
    roles, rnd, _ = _call(_client(ctx).reject, name, reason, role)
    _signed(name, roles, rnd, "rejected")


@tenant_app.command()
def suspend(ctx: typer.Context, name: str, reason: str = typer.Option("", help="why")) -> None:
    """Suspend: data stays, no new pods can run (platform bureau only)."""
    _call(_client(ctx).suspend, name, reason)
    out.print(f"tenant [bold]{name}[/] suspended; undo with `yunshang tenant resume {name}`")


@tenant_app.command()
def resume(ctx: typer.Context, name: str) -> None:
    """Resume a suspended or quarantined tenant (platform bureau only)."""
    _call(_client(ctx).resume, name)
    out.print(f"tenant [bold]{name}[/] resumed")


@tenant_app.command()
def quota(
    ctx: typer.Context,
    name: str,
    cpu: Optional[str] = typer.Option(None, help="e.g. 6 or 1500m (more than 0; split over the namespaces)"),
    memory: Optional[str] = typer.Option(None, help="e.g. 12Gi (more than 0)"),
    storage: Optional[str] = typer.Option(None, help="e.g. 200Gi (0: no persistent volumes)"),
    pods: Optional[int] = typer.Option(None, help="how many pods may run at once (more than 0)"),
    services: Optional[int] = typer.Option(None, help="how many Services (0: none)"),
) -> None:
    """Change a tenant's quota. The platform bureau adjusts it within the approved floor and ceiling;
    more than approved (or a department's change once reviewers have decided) is a new request that
    every reviewer role signs off again, the approved quota staying until then."""
    from pydantic import ValidationError

    from ..client import Tenants
    from ..models.tenant import Quota

    changes = {k: v for k, v in {"cpu": cpu, "memory": memory, "storage": storage, "pods": pods,
                                 "services": services}.items() if v is not None}
    if not changes:
        raise UsageProblem("nothing to change: pass --cpu, --memory, --storage, --pods or --services")
    names = {**{k: f"--{k}" for k in changes}, **{f"quota.{k}": f"--{k}" for k in changes}}
    try:  # the values alone first; split over the tenant's namespaces once it is read
        asked = Quota.model_validate(changes)
    except ValidationError as e:
        refuse(e, names)
    if problems := [p for p in Tenants.quota_problems(asked) if p["loc"][-1] in changes]:
        refuse(problems, names)
    t, rnd = _call(_client(ctx).set_quota, name, changes, _names=names)
    asked = ", ".join(f"{k}={v}" for k, v in t["spec"]["quota"].items())
    if rnd is None:
        out.print(f"tenant [bold]{name}[/] quota: {asked}")
    else:
        out.print(f"tenant [bold]{name}[/]: quota request (round {rnd}) {asked}; every reviewer role signs off again "
                  f"(`yunshang tenant show {name}`), the approved quota stays until then")


@tenant_app.command()
def delete(
    ctx: typer.Context,
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Delete a tenant. With deletionPolicy Retain (the default) its namespaces and data are kept."""
    c = _client(ctx)
    t = _call(c.get, name)
    policy = t["spec"].get("deletionPolicy", "Retain")
    what = "and DELETE its namespaces and data" if policy == "Delete" else "keeping its namespaces and data"
    if not yes and not typer.confirm(f"delete tenant {name} {what}?"):
        raise typer.Exit(1)
    _call(c.delete, name)
    out.print(f"tenant [bold]{name}[/] is being deleted ({what})")
