"""Prometheus metrics the operator exports (prometheus-client).

Named like Capsule's (capsule_tenant_resource_usage / _limit) so that an operator who knows
those recognises them: yunshang_tenant_resource_{usage,limit,ceiling,floor}{tenant,resource}.
"""
from __future__ import annotations

import threading
from decimal import Decimal

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from ...models.quantity import to_decimal
from ...models.tenant import Phase, TenantSpec
from ...tenancy import QUOTA_KEYS

API_WRITES = Counter(
    "yunshang_operator_api_writes", "Write calls the operator made to the API server", ["verb", "kind"]
)


def count_write(verb: str, kind: str) -> None:
    """yunshang.kube's ``on_write`` hook on the operator's client."""
    API_WRITES.labels(verb, kind).inc()


DENIAL_REASONS = ("podsecurity", "rbac", "rbac-read", "policy")
_RES = tuple(QUOTA_KEYS)  # the resources of the four quota series, in this order


class TenantSeries:
    """Every per-tenant series, kept as one compact row per tenant and turned into samples only when
    Prometheus scrapes.  (A labelled child of prometheus-client holds a lock, a value object and its
    labels: the 45 series of a tenant cost 29 KB, 570 MB at 20,000 tenants; a row costs about 1.5 KB.)

    yunshang_tenant_resource_{usage,limit,ceiling,floor}{tenant,resource} (named like Capsule's),
    yunshang_tenant_phase{tenant,phase,level,parent} (one series per tenant, its current phase),
    yunshang_tenant_{namespaces,quarantined,elastic_enabled}{tenant},
    yunshang_tenant_review_{days_left,due,lapsed}{tenant} (tenants with a review date),
    yunshang_tenant_denied_requests_total{tenant,reason} (0 from the start, so the first refusal is
    an increase)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple] = {}
        self.denied: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def set(self, name: str, row: tuple) -> None:
        self.rows[name] = row

    def drop(self, name: str) -> None:
        self.rows.pop(name, None)
        with self._lock:
            for reason in DENIAL_REASONS:
                self.denied.pop((name, reason), None)

    def count_denied(self, tenant: str, reason: str) -> None:
        with self._lock:
            self.denied[(tenant, reason)] = self.denied.get((tenant, reason), 0.0) + 1

    def usage(self, name: str, resource: str) -> float:
        row = self.rows.get(name)
        return row[0][_RES.index(resource)] if row else 0.0

    def describe(self):
        return []  # no collect at registration: the families exist once a tenant does

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        quota = [GaugeMetricFamily(f"yunshang_tenant_resource_{k}", h, labels=["tenant", "resource"]) for k, h in (
            ("usage", "Resources in use by a tenant (sum over its namespaces)"),
            ("limit", "A tenant's quota (sum over its namespaces)"),
            ("ceiling", "A tenant's approved elastic ceiling"),
            ("floor", "A tenant's approved elastic floor"))]
        phase = GaugeMetricFamily("yunshang_tenant_phase", "1 for the tenant's current phase",
                                  labels=["tenant", "phase", "level", "parent"])
        namespaces = GaugeMetricFamily("yunshang_tenant_namespaces", "Namespaces a tenant owns", labels=["tenant"])
        quarantined = GaugeMetricFamily("yunshang_tenant_quarantined", "1 if the tenant is quarantined",
                                        labels=["tenant"])
        elastic = GaugeMetricFamily("yunshang_tenant_elastic_enabled", "1 if the tenant's quota is elastic",
                                    labels=["tenant"])
        review = [GaugeMetricFamily(f"yunshang_tenant_review_{k}", h, labels=["tenant"]) for k, h in (
            ("days_left", "Days until the tenant's reviewDate (negative: past)"),
            ("due", "1 within the warning window before the reviewDate, or past it"),
            ("lapsed", "1 when past reviewDate and grace: the tenant is suspended"))]
        denied = CounterMetricFamily(
            "yunshang_tenant_denied_requests",
            "Requests the API server refused, counted against the department that made them (its audit webhook)",
            labels=["tenant", "reason"])
        with self._lock:
            counts = dict(self.denied)
        n = len(_RES)
        for name, row in list(self.rows.items()):
            values, (ph, level, parent), ns, quar, ela, rev = row
            for i, fam in enumerate(quota):
                for j, res in enumerate(_RES):
                    fam.add_metric([name, res], values[i * n + j])
            phase.add_metric([name, ph, level, parent], 1)
            namespaces.add_metric([name], ns)
            quarantined.add_metric([name], quar)
            elastic.add_metric([name], ela)
            if rev is not None:
                for fam, v in zip(review, rev):
                    fam.add_metric([name], v)
            for reason in DENIAL_REASONS:
                denied.add_metric([name, reason], counts.get((name, reason), 0.0))
        yield from quota
        yield from (phase, namespaces, quarantined, elastic, *review, denied)


TENANTS = TenantSeries()
REGISTRY.register(TENANTS)
ELASTIC_ROUNDS = Counter("yunshang_elastic_rounds", "Elastic quota rounds the operator completed (over every elastic tenant)")
ELASTIC_CHANGES = Counter("yunshang_elastic_quota_changes", "Elastic quota changes", ["tenant", "resource", "direction"])
AUTHORIZATIONS = Counter("yunshang_need_to_know_decisions",
                         "Department requests the need-to-know authorization webhook answered, by decision",
                         ["decision"])
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
    """Set every series of one tenant from its spec and the namespaces' quota status."""
    used: dict[str, Decimal] = {}
    hard: dict[str, Decimal] = {}
    for ns in usage:
        for k, v in _amounts(ns.get("used") or {}).items():
            used[k] = used.get(k, Decimal(0)) + v
        for k, v in _amounts(ns.get("hard") or {}).items():
            hard[k] = hard.get(k, Decimal(0)) + v
    quota, ceiling, floor = spec.quota.amounts(), spec.ceiling().amounts(), spec.floor().amounts()
    values = tuple([float(used.get(r, 0)) for r in _RES] + [float(hard.get(r, quota[r])) for r in _RES]
                   + [float(ceiling[r]) for r in _RES] + [float(floor[r]) for r in _RES])
    rev = None
    if review is not None and review.days_left is not None:
        rev = (float(review.days_left), 1.0 if review.due else 0.0, 1.0 if review.lapsed else 0.0)
    TENANTS.set(name, (values, (phase.value, spec.level.value, spec.parent or ""), float(len(usage)),
                       1.0 if quarantined else 0.0, 1.0 if spec.elastic.enabled else 0.0, rev))


def forget(name: str) -> None:
    """Drop a deleted tenant's series."""
    TENANTS.drop(name)
    for labels in [k for k in list(DECISION_DEADLINE._metrics) if k[0] == "tenant" and k[1] == name]:
        DECISION_DEADLINE.remove(*labels)
