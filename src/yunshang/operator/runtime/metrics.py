"""Prometheus metrics the operator exports (prometheus-client).

Named like Capsule's (capsule_tenant_resource_usage / _limit) so that an operator who knows
those recognises them: yunshang_tenant_resource_{usage,limit,ceiling,floor}{tenant,resource}.
"""
from __future__ import annotations

from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram

from ...models.quantity import to_decimal
from ...models.tenant import Phase, TenantSpec
from ...tenancy import QUOTA_KEYS

API_WRITES = Counter(
    "yunshang_operator_api_writes", "Write calls the operator made to the API server", ["verb", "kind"]
)


def count_write(verb: str, kind: str) -> None:
    """yunshang.kube's ``on_write`` hook on the operator's client."""
    API_WRITES.labels(verb, kind).inc()

RESOURCE = ["tenant", "resource"]

USAGE = Gauge("yunshang_tenant_resource_usage", "Resources in use by a tenant (sum over its namespaces)", RESOURCE)
LIMIT = Gauge("yunshang_tenant_resource_limit", "A tenant's quota (sum over its namespaces)", RESOURCE)
CEILING = Gauge("yunshang_tenant_resource_ceiling", "A tenant's approved elastic ceiling", RESOURCE)
FLOOR = Gauge("yunshang_tenant_resource_floor", "A tenant's approved elastic floor", RESOURCE)
PHASE = Gauge("yunshang_tenant_phase", "1 for the tenant's current phase", ["tenant", "phase", "level", "parent"])
_PHASE_SERIES: dict[str, tuple[str, str, str, str]] = {}  # the tenant's one phase series, to replace it
NAMESPACES = Gauge("yunshang_tenant_namespaces", "Namespaces a tenant owns", ["tenant"])
QUARANTINED = Gauge("yunshang_tenant_quarantined", "1 if the tenant is quarantined", ["tenant"])
ELASTIC = Gauge("yunshang_tenant_elastic_enabled", "1 if the tenant's quota is elastic", ["tenant"])
REVIEW_DAYS_LEFT = Gauge("yunshang_tenant_review_days_left", "Days until the tenant's reviewDate (negative: past)",
                         ["tenant"])
REVIEW_DUE = Gauge("yunshang_tenant_review_due", "1 within the warning window before the reviewDate, or past it",
                   ["tenant"])
REVIEW_LAPSED = Gauge("yunshang_tenant_review_lapsed", "1 when past reviewDate and grace: the tenant is suspended",
                      ["tenant"])
DENIAL_REASONS = ("podsecurity", "rbac", "rbac-read", "policy")
DENIED = Counter(
    "yunshang_tenant_denied_requests",
    "Requests the API server refused, counted against the department that made them (its audit webhook)",
    ["tenant", "reason"],
)
ELASTIC_ROUNDS = Counter("yunshang_elastic_rounds", "Elastic quota rounds the operator completed (over every elastic tenant)")
ELASTIC_CHANGES = Counter("yunshang_elastic_quota_changes", "Elastic quota changes", ["tenant", "resource", "direction"])
QUARANTINES = Counter("yunshang_quarantines", "Tenants quarantined by an automatic response", ["tenant", "alert"])
RECONCILES = Counter("yunshang_operator_reconcile", "Reconciles by result", ["result"])
RECONCILE_ERRORS = Counter("yunshang_operator_reconcile_errors", "Reconciles that raised", ["tenant"])
RECONCILE_SECONDS = Histogram(
    "yunshang_operator_reconcile_duration_seconds", "Time spent in one reconcile",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUDIT_RECORDS = Gauge("yunshang_audit_records", "AuditRecord objects in the API server")
AUDIT_HEAD = Gauge("yunshang_audit_head_seq", "Highest sequence number of the audit chain in the API server")
AUDIT_ANCHOR = Gauge("yunshang_audit_anchor_seq", "Sequence number of the audit chain's anchor (kept outside it)")
AUDIT_ANCHOR_BROKEN = Gauge(
    "yunshang_audit_anchor_broken",
    "1 while the audit chain is shorter than or does not extend its last anchor, or ends below the head "
    "Prometheus recorded: the operator does not anchor it")
AUDIT_ANCHOR_MISSING = Gauge(
    "yunshang_audit_anchor_missing",
    "1 while the anchor ConfigMap is gone (or moved back) and the operator cannot prove the chain extends the "
    "anchor it remembers (or remembers none while records exist): it does not re-anchor")
AUDIT_ANCHOR_RESTORES = Counter(
    "yunshang_audit_anchor_restores",
    "Anchor ConfigMaps deleted or moved back, restored by the operator from the anchor it remembered")
AUDIT_ANCHOR_ROUNDS = Counter("yunshang_audit_anchor_rounds", "Audit anchor rounds the operator completed")
AGREEMENTS = Gauge("yunshang_agreement_expiry_timestamp_seconds", "When a sharing agreement expires",
                   ["agreement", "consumer", "provider"])

# time limits (限时办结): every pending decision has a deadline; Prometheus compares it with time()
DECISION_DEADLINE = Gauge(
    "yunshang_decision_deadline_timestamp_seconds",
    "When a pending decision is due: kind tenant (party = reviewer role) or agreement (party = provider tenant)",
    ["kind", "name", "party"])
DECISION_SECONDS = Histogram(
    "yunshang_decision_duration_seconds", "Time from a request (or round) to each decision on it",
    ["kind", "party"], buckets=(600, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 5 * 86400,
                                7 * 86400, 14 * 86400, 30 * 86400))

# 好差评: the consumers' ratings of each provider's agreements (sum / count = the average)
RATING_SUM = Gauge("yunshang_provider_rating_sum", "Sum of the ratings consumers gave a provider's agreements",
                   ["provider"])
RATING_COUNT = Gauge("yunshang_provider_rating_count", "Ratings consumers gave a provider's agreements", ["provider"])

RESOURCES = {v: k for k, v in QUOTA_KEYS.items()}  # requests.cpu -> cpu


def pending_decisions(kind: str, name: str, due: dict[str, float | None]) -> None:
    """The deadlines of one object's pending decisions (party -> epoch seconds); the rest are removed."""
    for party, when in due.items():
        if when is None:
            try:
                DECISION_DEADLINE.remove(kind, name, party)
            except KeyError:
                pass
        else:
            DECISION_DEADLINE.labels(kind, name, party).set(when)


def _amounts(values: dict[str, str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for key, v in values.items():
        name = RESOURCES.get(key)
        if name:
            out[name] = out.get(name, Decimal(0)) + to_decimal(v)
    return out


def observe(name: str, spec: TenantSpec, phase: Phase, usage: list[dict], quarantined: bool, review=None) -> None:
    """Set every gauge of one tenant from its spec and the namespaces' quota status."""
    used: dict[str, Decimal] = {}
    hard: dict[str, Decimal] = {}
    for ns in usage:
        for k, v in _amounts(ns.get("used") or {}).items():
            used[k] = used.get(k, Decimal(0)) + v
        for k, v in _amounts(ns.get("hard") or {}).items():
            hard[k] = hard.get(k, Decimal(0)) + v
    quota, ceiling, floor = spec.quota.amounts(), spec.ceiling().amounts(), spec.floor().amounts()
    for res in QUOTA_KEYS:
        USAGE.labels(name, res).set(float(used.get(res, 0)))
        LIMIT.labels(name, res).set(float(hard.get(res, quota[res])))
        CEILING.labels(name, res).set(float(ceiling[res]))
        FLOOR.labels(name, res).set(float(floor[res]))
    # one series per tenant, for its current phase (at 5,000 tenants seven would be 35,000)
    current = (name, phase.value, spec.level.value, spec.parent or "")
    previous = _PHASE_SERIES.get(name)
    if previous is not None and previous != current:
        PHASE.remove(*previous)
    PHASE.labels(*current).set(1)
    _PHASE_SERIES[name] = current
    for reason in DENIAL_REASONS:
        DENIED.labels(name, reason)  # start at 0, so the first refusal is an increase
    NAMESPACES.labels(name).set(len(usage))
    QUARANTINED.labels(name).set(1 if quarantined else 0)
    ELASTIC.labels(name).set(1 if spec.elastic.enabled else 0)
    if review is not None and review.days_left is not None:
        REVIEW_DAYS_LEFT.labels(name).set(review.days_left)
        REVIEW_DUE.labels(name).set(1 if review.due else 0)
        REVIEW_LAPSED.labels(name).set(1 if review.lapsed else 0)
    else:
        _drop(name, REVIEW_DAYS_LEFT, REVIEW_DUE, REVIEW_LAPSED)


def _drop(name: str, *gauges) -> None:
    for g in gauges:
        try:
            g.remove(name)
        except KeyError:
            pass


def forget(name: str) -> None:
    """Drop a deleted tenant's series."""
    for g in (USAGE, LIMIT, CEILING, FLOOR):
        for res in QUOTA_KEYS:
            try:
                g.remove(name, res)
            except KeyError:
                pass
    for reason in DENIAL_REASONS:
        try:
            DENIED.remove(name, reason)
        except KeyError:
            pass
    _drop(name, NAMESPACES, QUARANTINED, ELASTIC, REVIEW_DAYS_LEFT, REVIEW_DUE, REVIEW_LAPSED)
    for labels in [k for k in list(DECISION_DEADLINE._metrics) if k[0] == "tenant" and k[1] == name]:
        DECISION_DEADLINE.remove(*labels)
    previous = _PHASE_SERIES.pop(name, None)
    if previous is not None:
        PHASE.remove(*previous)
