"""The operator's automatic responses and records: quarantine on an alert, elastic quota from
Prometheus, the audit trail from the API server's audit events, and the webhook server that
receives both."""
from __future__ import annotations

import datetime as dt
import logging
import os
from decimal import Decimal
from typing import Any

import kopf

from .. import auditing, elastic
from ..models.audit import ObjectRef
from ..models.tenant import DEPT_GROUP_PREFIX, GROUP, Decision, TenantSpec
from . import kube, metrics, webhooks
from .handlers import AUDIT, TENANTS, _ns_owner, _plain, api

ELASTIC_SECONDS = float(os.environ.get("YUNSHANG_ELASTIC_SECONDS", "60"))
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
    app = webhooks.make_app(token, quarantine, _ns_owner.get, DEPT_GROUP_PREFIX, record_audit_events)
    memo["webhooks"] = await webhooks.serve(
        app, os.environ.get("YUNSHANG_WEBHOOK_ADDRESS", "127.0.0.1"), port,
        os.environ.get("YUNSHANG_WEBHOOK_TLS_CERT", ""), os.environ.get("YUNSHANG_WEBHOOK_TLS_KEY", ""),
    )


@kopf.on.cleanup()
async def stop_webhooks(memo: kopf.Memo, **_: Any) -> None:
    runner = memo.get("webhooks")
    if runner is not None:
        await runner.cleanup()


def record_audit_events(events: list[dict]) -> int:
    """Append what the API server's audit events say people did to tenants and agreements."""
    from .sharing import parties

    n = 0
    for ev in events:
        for entry in auditing.classify(ev):
            tenants = entry.tenants or list(parties(entry.object.name))
            who = (ev.get("impersonatedUser") or ev.get("user") or {}).get("username", "unknown")
            when = ev.get("stageTimestamp") or ev.get("requestReceivedTimestamp")
            at = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
            AUDIT.append(who, entry.action, entry.object, tenants, entry.details, at)
            n += 1
    return n


# ---------------------------------------------------------------------------- automatic response

def quarantine(tenant: str, reason: str, alert: str) -> bool:
    """Quarantine a tenant (idempotent); False if it does not exist or already is."""
    body = kube.get(api(), "Tenant", tenant)
    if body is None or (body.get("spec") or {}).get("quarantine"):
        return False
    kube.patch(api(), "Tenant", tenant, {"spec": {"quarantine": {
        "reason": reason, "alert": alert, "at": webhooks.now()}}})
    kube.event(api(), body, "Warning", "Quarantined", f"{alert}: {reason}")
    AUDIT.append("yunshang-operator", "TenantQuarantined", ObjectRef(kind="Tenant", name=tenant), [tenant],
                 {"reason": reason, "alert": alert})
    log.warning("quarantined tenant %s: %s (%s)", tenant, reason, alert)
    return True


# ---------------------------------------------------------------------------- elastic quota

def _elastic_enabled(spec: kopf.Spec, **_: Any) -> bool:
    return bool(PROMETHEUS_URL) and bool((spec.get("elastic") or {}).get("enabled"))


@kopf.timer(*TENANTS, interval=ELASTIC_SECONDS, initial_delay=ELASTIC_SECONDS / 2, when=_elastic_enabled)
def elastic_quota(name: str, body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
    """Grow or shrink the quota by one step from what Prometheus saw over the window."""
    spec = TenantSpec.model_validate(dict(body["spec"]))
    if spec.approval is None or spec.approval.decision != Decision.Approved or spec.suspended or spec.quarantine:
        return
    annotations = body["metadata"].get("annotations") or {}
    last = annotations.get(ELASTIC_ANNOTATION)
    last_change = dt.datetime.fromisoformat(last.replace("Z", "+00:00")) if last else None
    now = dt.datetime.now(dt.timezone.utc)
    policy = elastic.Policy(
        window=os.environ.get("YUNSHANG_ELASTIC_WINDOW", "30m"),
        cooldown=dt.timedelta(seconds=float(os.environ.get("YUNSHANG_ELASTIC_COOLDOWN", "900"))),
        min_samples=int(os.environ.get("YUNSHANG_ELASTIC_MIN_SAMPLES", "5")),
    )
    current, floor, ceiling = spec.quota.amounts(), spec.floor().amounts(), spec.ceiling().amounts()
    changes = []
    for res in elastic.ELASTIC_RESOURCES:
        obs = elastic.observe(PROMETHEUS_URL, name, res, policy)
        used = Decimal(str(metrics.USAGE.labels(name, res)._value.get()))  # noqa: SLF001
        change = elastic.decide(res, current[res], floor[res], ceiling[res], used, obs, last_change, now, policy)
        if change:
            changes.append(change)
    if not changes:
        return
    kube.patch(api(), "Tenant", name, {
        "metadata": {"annotations": {ELASTIC_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        "spec": {"quota": {c.resource: c.quantity() for c in changes}},
    })
    for c in changes:
        metrics.ELASTIC_CHANGES.labels(name, c.resource, c.direction).inc()
        message = (f"elastic {c.direction} of {c.resource}: {c.old} -> {c.quantity()} because {c.reason}; "
                   f"floor {floor[c.resource]}, ceiling {ceiling[c.resource]}")
        kopf.event(_plain(body), type="Normal", reason="ElasticQuota", message=message)
        AUDIT.append("yunshang-operator", "ElasticQuotaChanged", ObjectRef(kind="Tenant", name=name), [name], {
            "resource": c.resource, "old": str(c.old), "new": c.quantity(), "reason": c.reason,
            "floor": str(floor[c.resource]), "ceiling": str(ceiling[c.resource])})
        logger.info(message)
