"""Automatic response and the records of what people did: Alertmanager's alerts quarantine a
tenant, the API server's audit events go into the audit trail, both through the operator's
webhooks (webhooks.py), served only when the settings give them a port."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from .. import auditing, views
from ..models.audit import ObjectRef
from ..models.tenant import DEPT_GROUP_PREFIX
from . import webhooks
from .. import kube
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.operator")
SA_PREFIX = "system:serviceaccount:"


def setup(rt: Runtime, parties: Callable[[str], tuple[str, ...]]) -> None:
    """The webhooks (only if a port is configured), served from the start until the runtime stops."""
    st = rt.settings
    if not st.webhook_port:
        return
    app = webhooks.make_app(st.webhook_token, lambda tenant, reason, alert: quarantine(rt, tenant, reason, alert),
                            lambda user, groups: owned_by(rt, user, groups), DEPT_GROUP_PREFIX,
                            lambda events: record_audit_events(rt, events, parties),
                            lambda spec: views.authorize(spec, parties))
    runner = []

    async def serve() -> None:
        runner.append(await webhooks.serve(app, st.webhook_address, st.webhook_port, st.webhook_tls_cert,
                                           st.webhook_tls_key))

    async def stop() -> None:
        for r in runner:
            await r.cleanup()

    rt.on_start(lambda: rt.spawn(serve()))
    rt.on_stop(stop)


def owned_by(r, user: str, groups: list[str]) -> list[str]:
    """The tenants whose owners name this user or one of its groups (from the reconciler's cache); for
    a pod's identity (system:serviceaccount:<namespace>:<name>), the tenant whose namespace it is in."""
    out = []
    if user.startswith(SA_PREFIX):
        ns = user[len(SA_PREFIX):].partition(":")[0]
        return sorted(name for name, rec in list(r.cache.tenants.items())
                      if ns in {f"{name}-{suffix}" for suffix in rec.spec.get("namespaces") or ()})
    for name, rec in list(r.cache.tenants.items()):
        for o in rec.spec.get("owners") or ():
            if (o.get("kind", "User") == "User" and o.get("name") == user) or \
                    (o.get("kind") == "Group" and o.get("name") in groups):
                out.append(name)
                break
    return sorted(out)


def record_audit_events(r, events: list[dict], parties: Callable[[str], tuple[str, ...]]) -> int:
    """Append what the API server's audit events say people did to tenants and agreements
    (``parties(name)``: an agreement's consumer and provider, as the operator saw them)."""
    n = 0
    for ev in events:
        for entry in auditing.classify(ev):
            tenants = entry.tenants or list(parties(entry.object.name))
            who = (ev.get("impersonatedUser") or ev.get("user") or {}).get("username", "unknown")
            when = ev.get("stageTimestamp") or ev.get("requestReceivedTimestamp")
            at = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
            r.audit.append(who, entry.action, entry.object, tenants, entry.details, at)
            n += 1
    return n


# ---------------------------------------------------------------------------- automatic response

def quarantine(r, tenant: str, reason: str, alert: str) -> bool:
    """Quarantine a tenant (idempotent); False if it does not exist or already is."""
    body = kube.get(r.api, "Tenant", tenant)
    if body is None or (body.get("spec") or {}).get("quarantine"):
        return False
    kube.patch(r.api, "Tenant", tenant, {"spec": {"quarantine": {
        "reason": reason, "alert": alert, "at": webhooks.now()}}})
    kube.event(r.api, body, "Warning", "Quarantined", f"{alert}: {reason}")
    r.audit.append("yunshang-operator", "TenantQuarantined", ObjectRef(kind="Tenant", name=tenant), [tenant],
                   {"reason": reason, "alert": alert})
    log.warning("quarantined tenant %s: %s (%s)", tenant, reason, alert)
    return True
