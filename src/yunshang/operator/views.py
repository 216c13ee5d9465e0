"""Need-to-know in the operator (yunshang.views says what and why): each department's view, and the
authorization webhook's answers.

A view is rewritten only when what it shows changed: the audit records (watched; each one goes to
the departments it names, the newest `views.AUDIT_KEPT` of each kept as the view's JSON), the
agreements a department is a party to, its tenant appearing, or the view itself changed or gone
(its ConfigMap watched, kept as a fingerprint of its data, labels and owner).  A round looks at the departments marked
since the last one, and every ``view_seconds`` at all of them (a dict lookup each): the cost of a
round follows what changed, not the number of departments.
"""
from __future__ import annotations

import collections
import logging
from typing import Callable, Iterable

from .. import kube, views
from .runtime.cache import digest
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.operator")
LEGACY_KINDS = ("ClusterRoleBinding", "ClusterRole", "RoleBinding", "Role")  # the per-department RBAC of before


def fingerprint(view: dict) -> str:
    """What a view must keep: its data, its labels and its owner (a change of anything else, e.g. an
    annotation, is not ours to undo)."""
    md = view.get("metadata") or {}
    return digest({"data": view.get("data") or {}, "labels": md.get("labels") or {},
                   "owners": sorted(o.get("uid", "") for o in md.get("ownerReferences") or ())})


class Views:
    def __init__(self, rt: Runtime, agreements: Callable[[], Iterable[dict]]):
        self.rt, self.agreements = rt, agreements
        # tenant -> its newest records: (seq, name, record_json)
        self.records: dict[str, collections.deque] = {}
        self.seen_records: set[str] = set()
        self.live: dict[str, str] = {}  # view name -> its fingerprint
        self.shown: dict[str, str] = {}  # tenant -> the fingerprint last written or found in line
        self.party_digest: dict[str, str] = {}  # tenant -> digest of its agreements as last rendered
        self.dirty: set[str] = set()
        self.legacy_checked = False

    def setup(self) -> "Views":
        rt = self.rt
        rt.watch("AuditRecord", self.record_event)
        rt.watch("ConfigMap", self.view_event, label_selector=views.LABEL_VIEW, namespace=views.VIEWS_NAMESPACE)
        rt.every("department views", self.sync, rt.settings.view_seconds, wake=rt.views_stale, settle=True)
        return self

    # ------------------------------------------------------------------ events (on the loop)
    def record_event(self, etype: str, body: dict) -> None:
        name = (body.get("metadata") or {}).get("name", "")
        if etype == "DELETED" or name in self.seen_records:
            return
        self.seen_records.add(name)
        spec = body.get("spec") or {}
        line = views.record_json(spec)
        for t in set(spec.get("tenants") or ()):
            q = self.records.get(t)
            if q is None:
                q = self.records[t] = collections.deque(maxlen=views.AUDIT_KEPT)
            seq = int(spec.get("seq") or 0)
            if q and seq < q[-1][0]:  # out of order (a relist): keep them sorted
                items = sorted([*q, (seq, name, line)])
                q.clear()
                q.extend(items[-views.AUDIT_KEPT:])
            else:
                q.append((seq, name, line))
            self.dirty.add(t)
        if spec.get("tenants"):
            self.rt.views_changed()

    def view_event(self, etype: str, body: dict) -> None:
        md = body.get("metadata") or {}
        name = md.get("name", "")
        if etype == "DELETED":
            self.live.pop(name, None)
        else:
            self.live[name] = fingerprint(body)
        tenant = (md.get("labels") or {}).get(views.LABEL_VIEW)
        if tenant and self.shown.get(tenant) != self.live.get(name):
            self.dirty.add(tenant)  # someone else's change, or gone: repair
            self.rt.views_changed()

    # ------------------------------------------------------------------ a round (in a thread)
    def sync(self) -> int:
        """Bring the marked views (and any not in line) in line; how many were written."""
        if not self.legacy_checked:
            try:
                self.legacy_checked = self._remove_legacy()
            except Exception as e:  # noqa: BLE001  (the views matter more: the next round tries again)
                log.warning("removing the per-department roles of the earlier need-to-know: %s", kube.why(e))
        by_party: dict[str, list[dict]] = {}
        for a in self.agreements():
            for party in set(views.parties(a)):
                by_party.setdefault(party, []).append(a)
        rendered: dict[str, str] = {}
        for party in by_party.keys() | self.party_digest.keys():
            text = views.agreements_json(by_party.get(party, []))
            rendered[party] = text
            d = digest({"a": text})
            if self.party_digest.get(party) != d:
                self.party_digest[party] = d
                self.dirty.add(party)
        dirty, self.dirty = self.dirty, set()
        written = 0
        for name, rec in list(self.rt.cache.tenants.items()):
            if rec.deleting or not rec.uid:
                continue
            vname = views.view_name(name)
            if name not in dirty and name in self.shown and self.live.get(vname) == self.shown[name]:
                continue
            q = self.records.get(name, ())
            obj = views.view(name, rec.uid, rendered.get(name) or views.agreements_json([]),
                             views.audit_json(line for _, _, line in tuple(q)))
            want = fingerprint(obj)
            if self.live.get(vname) != want:
                try:
                    kube.apply(self.rt.api, obj)
                except Exception:
                    self.dirty.add(name)  # the next round tries again
                    raise
                written += 1
                self.live[vname] = want
            self.shown[name] = want
        for gone in self.shown.keys() - self.rt.cache.tenants.keys():
            self.shown.pop(gone, None)
            self.party_digest.pop(gone, None)
            self.records.pop(gone, None)
        return written

    def _remove_legacy(self) -> bool:
        """Delete the per-department ClusterRoles, Roles and their bindings of the earlier shape
        (label platform.yunshang.io/view-of): the authorizer decides now.  True once done."""
        for kind in LEGACY_KINDS:
            ns = views.VIEWS_NAMESPACE if kube.KINDS[kind][2] else None
            for obj in kube.list_all(self.rt.api, kind, label_selector=views.LABEL_VIEW, namespace=ns):
                kube.delete(self.rt.api, kind, obj["metadata"]["name"], namespace=ns)
        return True


def setup(rt: Runtime, agreements: Callable[[], Iterable[dict]]) -> Views:
    return Views(rt, agreements).setup()
