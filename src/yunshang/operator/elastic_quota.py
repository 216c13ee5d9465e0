"""The elastic quota: from what Prometheus saw over the window, each elastic tenant's quota grows or
shrinks by one step, between its floor and ceiling, never during a cool-down (yunshang.elastic
decides; this asks and writes)."""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from .. import elastic, signoff
from ..models.audit import ObjectRef
from ..models.tenant import GROUP, TenantSpec
from .. import kube
from .runtime import metrics
from .runtime.manager import Runtime

ELASTIC_ANNOTATION = f"{GROUP}/elastic-last-change"
log = logging.getLogger("yunshang.operator")


def setup(rt: Runtime) -> None:
    """One global round every ``elastic_seconds`` over the tenants with elastic quota (only when the
    settings name a Prometheus to ask)."""
    if rt.settings.prometheus_url:
        rt.every("elastic quota", lambda: rounds(rt), rt.settings.elastic_seconds)


def rounds(r: Runtime) -> None:
    for name, rec in list(r.cache.tenants.items()):
        if (rec.spec.get("elastic") or {}).get("enabled") and not rec.deleting:
            try:
                elastic_quota(r, rec)
            except Exception as e:  # noqa: BLE001  (the next round retries)
                log.warning("elastic quota of %s: %s", name, kube.why(e))
    metrics.ELASTIC_ROUNDS.inc()


def elastic_quota(r: Runtime, rec) -> None:
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
        obs = elastic.observe(r.settings.prometheus_url, name, res, policy, signal)
        used = Decimal(str(metrics.TENANTS.usage(name, res)))
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
