"""The tenant operator (kopf): thin handlers over yunshang.tenancy's pure functions.

Every trigger (tenant created/changed/resumed, a periodic resync, any event on an owned
child) ends in ``reconcile(name)``, which compares desired objects with the live ones kept
in kopf indices (no reads) and writes only what differs: an idle resync writes nothing.
"""
from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import threading
from typing import Any

import kopf
from kubernetes import client, config
from pydantic import ValidationError

from .. import auditing, tenancy
from ..models.tenant import GROUP, Decision, Phase, TenantSpec, VERSION
from . import kube, metrics
from ..models.audit import ObjectRef
from .audit import AuditLog

TENANTS = (GROUP, VERSION, "tenants")
CHILD_RESOURCES = [
    ("", "v1", "namespaces"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("networking.k8s.io", "v1", "networkpolicies"),
]
OWNED = {tenancy.LABEL_TENANT: kopf.PRESENT}
RESYNC_SECONDS = float(os.environ.get("YUNSHANG_RESYNC_SECONDS", "60"))
# reviewDate: an alert this many days before; past it by this many days, the tenant is suspended
REVIEW_WARN_DAYS = int(os.environ.get("YUNSHANG_REVIEW_WARN_DAYS", "30"))
REVIEW_GRACE_DAYS = int(os.environ.get("YUNSHANG_REVIEW_GRACE_DAYS", "14"))

log = logging.getLogger("yunshang.operator")
_api: client.ApiClient | None = None
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
# What this process applied last, until the watch streams catch up (kopf indices lag our writes):
_applied: dict[str, dict[tuple[str, str, str], dict]] = {}  # tenant -> key -> object we applied
_ns_owner: dict[str, str] = {}  # namespace -> tenant, for the audit webhook


def api() -> client.ApiClient:
    global _api
    if _api is None:
        try:
            config.load_incluster_config()
            _api = client.ApiClient()
        except config.ConfigException:
            _api = config.new_client_from_config()
        # the audit trail skips requests with this agent: the operator records its own actions
        _api.user_agent = f"{auditing.OPERATOR_AGENT}/0.1"
    return _api


AUDIT = AuditLog(api)


def _lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


def _plain(body: Any) -> dict:
    """A kopf Body (a live view) as a plain, detached dict."""
    return copy.deepcopy(dict(body))


# ---------------------------------------------------------------------------- setup

@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled")
    settings.posting.level = logging.WARNING  # Events are posted explicitly, for transitions
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.execution.max_workers = int(os.environ.get("YUNSHANG_WORKERS", "16"))
    # with --peering: a replica that stops renewing for this long is taken over by the next one
    settings.peering.lifetime = int(os.environ.get("YUNSHANG_PEERING_LIFETIME", "60"))
    api()


# ---------------------------------------------------------------------------- indices

@kopf.index(*TENANTS)
def tenant_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict]:
    return {name: _plain(body)}


@kopf.index(*TENANTS)
def children_index(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str] | None:
    """parent -> its child tenants: siblings and waiting children without scanning every tenant."""
    parent = (spec or {}).get("parent")
    return {parent: name} if parent else None


class _Parents:
    """tenant -> its parent, looked up in the tenant index (for cycle detection)."""

    def __init__(self, tenants: Any):
        self.tenants = tenants

    def get(self, name: str) -> str | None:
        return ((_one(self.tenants.get(name)) or {}).get("spec") or {}).get("parent")


def _child_key(body: kopf.Body) -> dict:
    return {body["metadata"]["labels"][tenancy.LABEL_TENANT]: _plain(body)}


for _g, _v, _plural in CHILD_RESOURCES:
    kopf.index(_g, _v, _plural, labels=OWNED, id=f"children_{_plural}")(lambda body, **_: _child_key(body))


def _one(store: Any) -> dict | None:
    for v in store or []:
        return v
    return None


def _rv(obj: dict | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion", 0))
    except ValueError:
        return 0


def _children(indices: dict[str, Any], tenant: str) -> dict[tuple[str, str, str], dict]:
    """The tenant's live children: the index, or what we applied if that is newer."""
    live = {}
    for _g, _v, plural in CHILD_RESOURCES:
        idx = indices.get(f"children_{plural}")
        if idx is None or tenant not in idx:
            continue
        for obj in idx[tenant]:
            live[tenancy.key_of(obj)] = obj
    for key, obj in list(_applied.get(tenant, {}).items()):
        if _rv(obj) > _rv(live.get(key)):
            live[key] = obj
    return live


# ---------------------------------------------------------------------------- reconcile

def reconcile(name: str, indices: dict[str, Any], logger: logging.Logger | None = None) -> None:
    logger = logger or log
    with _lock(name):
        body = _one(indices["tenant_index"].get(name))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        with metrics.RECONCILE_SECONDS.time():
            try:
                _reconcile(name, body, indices, logger)
            except Exception:
                metrics.RECONCILE_ERRORS.labels(name).inc()
                metrics.RECONCILES.labels("error").inc()
                raise
        metrics.RECONCILES.labels("ok").inc()


def _same_status(want: dict, have: dict) -> bool:
    return tenancy.is_subset(want, have) and len(want.get("conditions", [])) == len(have.get("conditions", []))


class StatusWriter:
    """Writes an object's status only when it differs from both the live status and what this
    process wrote last (kopf indices lag our own writes), and says when the phase changed."""

    def __init__(self, kind: str):
        self.kind = kind
        self.written: dict[str, dict] = {}

    def write(self, name: str, body: dict, status: dict[str, Any]) -> dict | None:
        """Patch if needed; return the previous status when the phase changed, else None."""
        current = body.get("status") or {}
        mine = self.written.get(name)
        if _same_status(status, current) or (mine is not None and _same_status(status, mine)):
            return None
        kube.patch(api(), self.kind, name, {"status": status}, sub="status")
        self.written[name] = status
        old = mine or current
        return old if old.get("phase") != status.get("phase") else None

    def forget(self, name: str) -> None:
        self.written.pop(name, None)


TENANT_STATUS = StatusWriter("Tenant")


def _status_patch(name: str, body: dict, status: dict[str, Any]) -> dict | None:
    """Write the status if it changed; on a phase transition post an Event and return the old status."""
    old = TENANT_STATUS.write(name, body, status)
    if old is not None:
        new = status.get("phase")
        kopf.event(body, type="Normal" if new not in ("Rejected",) else "Warning", reason=new,
                   message=status.get("message") or f"tenant is {new}")
    return old


def _condition(ctype: str, ok: bool, reason: str, message: str, body: dict) -> dict:
    prev = next((c for c in (body.get("status") or {}).get("conditions", []) if c.get("type") == ctype), None)
    status = "True" if ok else "False"
    when = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get("lastTransitionTime") \
        else dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": when}


def _usage(live: dict, ns_names: list[str]) -> list[dict]:
    out = []
    for ns in ns_names:
        q = live.get(("ResourceQuota", ns, tenancy.QUOTA_NAME)) or {}
        st = q.get("status") or {}
        out.append({"name": ns, "hard": dict(st.get("hard") or {}), "used": dict(st.get("used") or {})})
    return out


def _reconcile(name: str, body: dict, indices: dict[str, Any], logger) -> None:
    gen = body["metadata"].get("generation", 0)
    try:
        spec = TenantSpec.model_validate(body.get("spec") or {})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        _status_patch(name, body, {"phase": Phase.Pending.value, "message": f"invalid spec.{where}: {err['msg']}",
                                   "observedGeneration": gen})
        return
    if spec.approval is None or spec.approval.decision != Decision.Approved:
        phase = tenancy.phase_of(spec)
        msg = "waiting for the platform bureau's approval" if phase == Phase.Pending \
            else f"rejected: {spec.approval.reason}"
        _status_patch(name, body, {"phase": phase.value, "message": msg, "observedGeneration": gen})
        return

    tenants = indices["tenant_index"]
    blocked = None
    if spec.parent:
        parent_body = _one(tenants.get(spec.parent))
        parent = _spec_or_none(parent_body)
        siblings = {}
        for other_name in set(indices["children_index"].get(spec.parent) or []):
            other = _one(tenants.get(other_name))
            s = _spec_or_none(other)
            if other_name != name and s and s.parent == spec.parent and s.approval \
                    and s.approval.decision == Decision.Approved \
                    and not other["metadata"].get("deletionTimestamp"):
                siblings[other_name] = s
        if tenancy.parent_chain_has_cycle(name, _Parents(tenants)):
            blocked = "the chain of parents loops back to this tenant"
        else:
            blocked = tenancy.hierarchy_problem(name, spec, spec.parent, parent, siblings)
    if blocked:
        _status_patch(name, body, {
            "phase": Phase.Approved.value, "message": blocked, "observedGeneration": gen,
            "conditions": [_condition("Ready", False, "QuotaOverParent", blocked, body)],
        })
        return

    uid = body["metadata"]["uid"]
    review = tenancy.review_state(spec.review_date, dt.date.today(), REVIEW_WARN_DAYS, REVIEW_GRACE_DAYS)
    desired = tenancy.desired_objects(name, uid, spec, lapsed=review.lapsed)
    live = _children(indices, name)
    stale = [d for d in desired if not tenancy.in_sync(d, live.get(tenancy.key_of(d)))]
    first_time = not any(k[0] == "Namespace" for k in live)
    if stale and first_time:
        _status_patch(name, body, {"phase": Phase.Provisioning.value, "message": "creating namespaces, quota, RBAC and policies",
                                   "observedGeneration": gen})
    for obj in stale:
        was = live.get(tenancy.key_of(obj))
        _applied.setdefault(name, {})[tenancy.key_of(obj)] = kube.apply(api(), obj)
        if was is not None:
            logger.info("repaired drift of %s/%s %s", obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            kopf.event(body, type="Warning", reason="DriftRepaired",
                       message=f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']} restored")
    wanted = {tenancy.key_of(d) for d in desired}
    for key, obj in live.items():
        if key not in wanted:
            _remove_extra(name, spec, key, obj)

    ns_names = [f"{name}-{s}" for s in spec.namespaces]
    for ns in ns_names:
        _ns_owner[ns] = name
    phase = tenancy.phase_of(spec, provisioned=True, lapsed=review.lapsed)
    if spec.quarantine:
        msg = f"quarantined: {spec.quarantine.reason}"
    elif spec.suspended:
        msg = f"suspended: {spec.suspend_reason or 'by the platform bureau'}"
    elif review.lapsed:
        msg = tenancy.review_message(spec.review_date, REVIEW_GRACE_DAYS)
    else:
        msg = f"{len(ns_names)} namespace(s) provisioned"
    usage = _usage(live, ns_names)
    metrics.observe(name, spec, phase, usage, spec.quarantine is not None, review)
    old = _status_patch(name, body, {
        "phase": phase.value,
        "message": msg,
        "observedGeneration": gen,
        "namespaceCount": len(ns_names),
        "namespaces": usage,
        "conditions": [_condition("Ready", True, phase.value, msg, body)],
    })
    if old is not None:
        _record_review_transition(name, spec, review, old)


def _record_review_transition(name: str, spec: TenantSpec, review: tenancy.Review, old: dict) -> None:
    """The review lapsing (suspension by the platform itself) and its renewal go into the audit trail."""
    was_lapsed = (old.get("message") or "").startswith(tenancy.REVIEW_LAPSED_PREFIX)
    if review.lapsed and not was_lapsed:
        AUDIT.append("yunshang-operator", "TenantReviewLapsed", ObjectRef(kind="Tenant", name=name), [name],
                     {"reviewDate": spec.review_date.isoformat(), "graceDays": str(REVIEW_GRACE_DAYS),
                      "effect": "suspended (pods: 0), data kept"})
    elif was_lapsed and not review.lapsed:
        AUDIT.append("yunshang-operator", "TenantReviewRenewed", ObjectRef(kind="Tenant", name=name), [name],
                     {"reviewDate": spec.review_date.isoformat() if spec.review_date else ""})


def _spec_or_none(body: dict | None) -> TenantSpec | None:
    if not body:
        return None
    try:
        return TenantSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None


def _remove_extra(name: str, spec: TenantSpec, key: tuple[str, str, str], obj: dict) -> None:
    kind, ns, obj_name = key
    if kind == "Namespace" and spec.deletion_policy.value == "Retain":
        _retain_namespace(name, obj_name)
    else:
        kube.delete(api(), kind, obj_name, ns or None)


def _retain_namespace(tenant: str, ns: str) -> None:
    """Keep a namespace and its data, detached from the tenant (labelled where it came from)."""
    kube.patch(api(), "Namespace", ns, {"metadata": {
        "ownerReferences": None,
        "labels": {tenancy.LABEL_TENANT: None, tenancy.LABEL_RETAINED: tenant},
    }})


# ---------------------------------------------------------------------------- triggers

def _waiting_relatives(name: str, indices: dict[str, Any]) -> list[str]:
    """Tenants that may have been waiting on this one: its children, and its siblings
    (a sibling's quota change or deletion can free room under the parent)."""
    tenants, children = indices["tenant_index"], indices["children_index"]
    parent = _Parents(tenants).get(name)
    candidates = set(children.get(name) or []) | (set(children.get(parent) or []) if parent else set())
    out = []
    for other in sorted(candidates - {name}):
        phase = ((_one(tenants.get(other)) or {}).get("status") or {}).get("phase")
        if phase in (None, "Pending", "Approved"):
            out.append(other)
    return out


@kopf.on.resume(*TENANTS)
@kopf.on.create(*TENANTS)
@kopf.on.update(*TENANTS, field="spec")
def tenant_changed(name: str, logger: logging.Logger, **kwargs: Any) -> None:
    reconcile(name, kwargs, logger)
    for other in _waiting_relatives(name, kwargs):
        reconcile(other, kwargs, logger)


@kopf.timer(*TENANTS, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def resync(name: str, logger: logging.Logger, **kwargs: Any) -> None:
    reconcile(name, kwargs, logger)


def _child_event(event: dict, body: kopf.Body, logger: logging.Logger, **kwargs: Any) -> None:
    key = tenancy.key_of(body)
    tenant = body["metadata"].get("labels", {}).get(tenancy.LABEL_TENANT)
    mine = _applied.get(tenant or "", {})
    if event.get("type") == "DELETED" or _rv(body) >= _rv(mine.get(key)):
        mine.pop(key, None)  # the watch has caught up (or the object is gone)
    if tenant:
        reconcile(tenant, kwargs, logger)


for _g, _v, _plural in CHILD_RESOURCES:
    kopf.on.event(_g, _v, _plural, labels=OWNED, id=f"child_{_plural}")(_child_event)


@kopf.on.delete(*TENANTS)
def tenant_deleted(name: str, body: kopf.Body, spec: kopf.Spec, logger: logging.Logger, **kwargs: Any) -> None:
    """Finalizer: Delete removes the namespaces (and data); Retain detaches and keeps them."""
    live = _children(kwargs, name)
    namespaces = [k[2] for k in live if k[0] == "Namespace"]
    status = dict(body.get("status") or {})
    if status.get("phase") != Phase.Terminating.value:
        kube.patch(api(), "Tenant", name, {"status": {"phase": Phase.Terminating.value,
                                                      "message": f"removing {len(namespaces)} namespace(s)"}}, sub="status")
        kopf.event(_plain(body), type="Normal", reason="Terminating", message="tenant is being deleted")
    policy = (spec or {}).get("deletionPolicy", "Retain")
    for ns in namespaces:
        if policy == "Delete":
            kube.delete(api(), "Namespace", ns)
        else:
            _retain_namespace(name, ns)
    if policy == "Delete":
        remaining = [ns for ns in namespaces if kube.get(api(), "Namespace", ns) is not None]
        if remaining:
            raise kopf.TemporaryError(f"waiting for namespaces {', '.join(remaining)} to go", delay=2)
    for other in _waiting_relatives(name, kwargs):
        reconcile(other, kwargs, logger)
    from .sharing import end_agreements_of

    end_agreements_of(name, kwargs)
    with _locks_guard:
        _locks.pop(name, None)
    TENANT_STATUS.forget(name)
    _applied.pop(name, None)
    metrics.forget(name)
    for ns in [n for n, t in _ns_owner.items() if t == name]:
        _ns_owner.pop(ns, None)
