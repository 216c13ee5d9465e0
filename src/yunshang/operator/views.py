"""Need-to-know in the operator (yunshang.views says what and why): every few seconds, each
department's ClusterRole, view and the bindings that let it read them are brought in line with
its tenant, its agreements and the audit records that concern it; only what differs is written."""
from __future__ import annotations

from typing import Callable, Iterable

from .. import tenancy, views
from .. import kube
from .runtime.manager import Runtime

LIVE_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap")


def setup(rt: Runtime, agreements: Callable[[], Iterable[dict]]) -> None:
    """A round runs when a tenant, an agreement or an audit record appears or goes, and at the latest
    every ``view_seconds`` (repairing a view someone changed); each round lists the views and the
    records it compares (``agreements()``: the agreements as the operator's watch last saw them)."""
    rt.every("department views", lambda: sync(rt, agreements()), rt.settings.view_seconds, wake=rt.views_stale,
             settle=True)


def sync(r: Runtime, all_agreements: Iterable[dict]) -> int:
    """One round: returns how many objects were written."""
    live = {}
    for kind in LIVE_KINDS:
        ns = views.VIEWS_NAMESPACE if kube.KINDS[kind][2] else None
        for obj in kube.list_all(r.api, kind, label_selector=views.LABEL_VIEW, namespace=ns):
            md = obj["metadata"]
            live[(kind, md.get("namespace", ""), md["name"])] = obj
    # each agreement and record to the departments it concerns, once (not all of them per department)
    agreements: dict[str, list[dict]] = {}
    for a in all_agreements:
        for party in set(views.parties(a)):
            agreements.setdefault(party, []).append(a)
    audit: dict[str, list[dict]] = {}
    for o in kube.list_all(r.api, "AuditRecord"):
        for t in set(o["spec"].get("tenants") or []):
            audit.setdefault(t, []).append(o["spec"])
    written = 0
    for name, rec in list(r.cache.tenants.items()):
        if rec.deleting or not rec.uid:
            continue
        for obj in views.desired(name, rec.uid, agreements.get(name, []), audit.get(name, [])):
            md = obj["metadata"]
            if not tenancy.in_sync(obj, live.get((obj["kind"], md.get("namespace", ""), md["name"]))):
                kube.apply(r.api, obj)
                written += 1
    return written
