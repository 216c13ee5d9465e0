"""The operator's automatic responses and records: quarantine on an alert, elastic quota from
Prometheus, the audit trail from the API server's audit events, and the webhook server that
receives both."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from decimal import Decimal
from typing import Any

import kopf

from .. import auditing, elastic, signoff
from ..models.audit import ObjectRef
from ..models.tenant import DEPT_GROUP_PREFIX, GROUP, TenantSpec
from . import kube, metrics, webhooks
from .handlers import reconciler, spawn

PROMETHEUS_URL = os.environ.get("YUNSHANG_PROMETHEUS_URL", "")
ELASTIC_ANNOTATION = f"{GROUP}/elastic-last-change"
log = logging.getLogger("yunshang.operator")


@kopf.on.startup()
async def webhook_server(memo: kopf.Memo, **_: Any) -> None:
    """Alertmanager's and the API server's audit webhooks (only if a port is configured)."""
    port = int(os.environ.get("YUNSHANG_WEBHOOK_PORT", "0"))
    if not port:
        return
    token = webhooks.token_from_env()
    if not token:
        raise kopf.PermanentError("YUNSHANG_WEBHOOK_PORT is set but no token (YUNSHANG_WEBHOOK_TOKEN[_FILE])")
    r = reconciler(memo)
    app = webhooks.make_app(token, lambda tenant, reason, alert: quarantine(r, tenant, reason, alert),
                            lambda user, groups: owned_by(r, user, groups), DEPT_GROUP_PREFIX,
                            lambda events: record_audit_events(r, events, memo))
    memo["webhooks"] = await webhooks.serve(
        app, os.environ.get("YUNSHANG_WEBHOOK_ADDRESS", "127.0.0.1"), port,
        os.environ.get("YUNSHANG_WEBHOOK_TLS_CERT", ""), os.environ.get("YUNSHANG_WEBHOOK_TLS_KEY", ""),
    )


@kopf.on.cleanup()
async def stop_webhooks(memo: kopf.Memo, **_: Any) -> None:
    runner = memo.get("webhooks")
    if runner is not None:
        await runner.cleanup()


def owned_by(r, user: str, groups: list[str]) -> list[str]:
    """The tenants whose owners name this user or one of its groups (from the reconciler's cache)."""
    out = []
    for name, rec in list(r.cache.tenants.items()):
        for o in rec.spec.get("owners") or ():
            if (o.get("kind", "User") == "User" and o.get("name") == user) or \
                    (o.get("kind") == "Group" and o.get("name") in groups):
                out.append(name)
                break
    return sorted(out)


def record_audit_events(r, events: list[dict], memo: kopf.Memo) -> int:
    """Append what the API server's audit events say people did to tenants and agreements."""
    from .sharing import parties

    n = 0
    for ev in events:
        for entry in auditing.classify(ev):
            tenants = entry.tenants or list(parties(memo, entry.object.name))
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


# ---------------------------------------------------------------------------- elastic quota

async def _elastic_loop(r) -> None:
    """One global round every YUNSHANG_ELASTIC_SECONDS over the tenants with elastic quota."""
    while True:
        await asyncio.sleep(r.settings.elastic_seconds)
        if not r.active():
            continue
        for name, rec in list(r.cache.tenants.items()):
            if (rec.spec.get("elastic") or {}).get("enabled") and not rec.deleting:
                try:
                    await asyncio.to_thread(elastic_quota, r, rec)
                except Exception as e:  # noqa: BLE001  (the next round retries)
                    log.warning("elastic quota of %s: %s", name, e)
        metrics.ELASTIC_ROUNDS.inc()


@kopf.on.startup()
async def start_elastic(memo: kopf.Memo, **_: Any) -> None:
    if PROMETHEUS_URL:
        spawn(memo, _elastic_loop(reconciler(memo)))


def elastic_quota(r, rec) -> None:
    """Grow or shrink the quota by one step from what Prometheus saw over the window."""
    name = rec.name
    spec = TenantSpec.model_validate(rec.spec)
    v = signoff.verdict(spec, r.settings.signoff_roles)
    if v.state != signoff.State.Approved or spec.suspended or spec.quarantine:
        return  # not while a quota request waits for sign-off either
    last = rec.annotations.get(ELASTIC_ANNOTATION)
    last_change = dt.datetime.fromisoformat(last.replace("Z", "+00:00")) if last else None
    now = dt.datetime.now(dt.timezone.utc)
    st = r.settings
    policy = elastic.Policy(window=st.elastic_window, resolution=st.elastic_resolution,
                            cooldown=dt.timedelta(seconds=st.elastic_cooldown_seconds),
                            min_samples=st.elastic_min_samples)
    signal = spec.elastic.signal.value
    current, floor, ceiling = spec.quota.amounts(), spec.floor().amounts(), spec.ceiling().amounts()
    changes = []
    for res in elastic.ELASTIC_RESOURCES:
        obs = elastic.observe(PROMETHEUS_URL, name, res, policy, signal)
        used = Decimal(str(metrics.USAGE.labels(name, res)._value.get()))  # noqa: SLF001
        change = elastic.decide(res, current[res], floor[res], ceiling[res], used, obs, last_change, now, policy,
                                signal)
        if change:
            changes.append(change)
    if not changes:
        return
    kube.patch(r.api, "Tenant", name, {
        "metadata": {"annotations": {ELASTIC_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        "spec": {"quota": {c.resource: c.quantity() for c in changes}},
    })
    rec.annotations[ELASTIC_ANNOTATION] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    for c in changes:
        metrics.ELASTIC_CHANGES.labels(name, c.resource, c.direction).inc()
        message = (f"elastic {c.direction} of {c.resource}: {c.old} -> {c.quantity()} because {c.reason}; "
                   f"floor {floor[c.resource]}, ceiling {ceiling[c.resource]}")
        kube.event(r.api, rec.body(), "Normal", "ElasticQuota", message)
        r.audit.append("yunshang-operator", "ElasticQuotaChanged", ObjectRef(kind="Tenant", name=name), [name], {
            "resource": c.resource, "old": str(c.old), "new": c.quantity(), "reason": c.reason, "signal": signal,
            "floor": str(floor[c.resource]), "ceiling": str(ceiling[c.resource])})
        log.info(message)
