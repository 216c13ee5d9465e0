"""Grafana dashboards as code: `python -m yunshang.dashboards` writes monitoring/dashboards/*.json.

Every panel's query is run against a real Prometheus by the tests (a query error fails them).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "monitoring" / "dashboards"


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12


@dataclasses.dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    tenant_variable: bool = False


T = '{tenant=~"$tenant"}'
TR = '{tenant=~"$tenant",resource="%s"}'

DASHBOARDS = (
    Dashboard("yunshang-overview", "yunshang / platform overview", (
        Panel("Tenants by phase", (("sum by (phase) (yunshang_tenant_phase == 1)", "{{phase}}"),), kind="stat", width=8),
        Panel("Namespaces", (("sum(yunshang_tenant_namespaces)", "namespaces"),), kind="stat", width=4),
        Panel("Quarantined tenants", (("sum(yunshang_tenant_quarantined)", "quarantined"),), kind="stat", width=4),
        Panel("Operator up", (('up{job="yunshang-operator"}', "{{instance}}"),), kind="stat", width=8),
        Panel("Reconciles per second", (("sum by (result) (rate(yunshang_operator_reconcile_total[5m]))", "{{result}}"),),
              unit="ops"),
        Panel("Reconcile duration p95", (
            ("histogram_quantile(0.95, sum by (le) (rate(yunshang_operator_reconcile_duration_seconds_bucket[5m])))",
             "p95"),), unit="s"),
        Panel("Operator writes to the API server", (
            ("sum by (verb, kind) (rate(yunshang_operator_api_writes_total[5m]))", "{{verb}} {{kind}}"),), unit="ops"),
        Panel("API server requests", (("sum by (verb) (rate(apiserver_request_total[5m]))", "{{verb}}"),), unit="reqps"),
        Panel("CPU quota used, platform-wide", (
            ('sum(yunshang_tenant_resource_usage{resource="cpu"})', "used"),
            ('sum(yunshang_tenant_resource_limit{resource="cpu"})', "quota"),
            ('sum(yunshang_tenant_resource_ceiling{resource="cpu"})', "ceiling"),
        )),
        Panel("Tenants by level", (("count by (level) (yunshang_tenant_phase == 1)", "{{level}}"),), kind="stat"),
    )),
    Dashboard("yunshang-tenant-usage", "yunshang / tenant usage vs quota vs ceiling", tuple(
        Panel(f"{res}: used, quota, ceiling, floor", (
            (f"yunshang_tenant_resource_usage{TR % res}", "{{tenant}} used"),
            (f"yunshang_tenant_resource_limit{TR % res}", "{{tenant}} quota"),
            (f"yunshang_tenant_resource_ceiling{TR % res}", "{{tenant}} ceiling"),
            (f"yunshang_tenant_resource_floor{TR % res}", "{{tenant}} floor"),
        ), unit=unit)
        for res, unit in (("cpu", "short"), ("memory", "bytes"), ("pods", "short"), ("storage", "bytes"))
    ) + (
        Panel("Utilisation of quota", (
            (f"yunshang:tenant_resource_utilisation:ratio{T}", "{{tenant}} {{resource}}"),), unit="percentunit",
            width=24),
        # what the pods really use (the kubelets' resource metrics: pods on real nodes)
        Panel("CPU really used by the tenant's pods (real nodes)", (
            (f"yunshang:tenant_cpu_used:cores{T}", "{{tenant}} used"),
            (f'yunshang_tenant_resource_limit{TR % "cpu"}', "{{tenant}} quota"),), unit="short"),
        Panel("Memory really used by the tenant's pods (real nodes)", (
            (f"yunshang:tenant_memory_used:bytes{T}", "{{tenant}} working set"),
            (f'yunshang_tenant_resource_limit{TR % "memory"}', "{{tenant}} quota"),), unit="bytes"),
    ), tenant_variable=True),
    Dashboard("yunshang-security", "yunshang / security events", (
        Panel("Refused requests by tenant (5m)", (
            ("yunshang:tenant_denied_requests:increase5m", "{{tenant}} {{reason}}"),)),
        Panel("Pod Security denials (API server)", (
            ("yunshang:apiserver_pod_security_denials:rate5m", "denials/s"),), unit="ops"),
        Panel("RBAC denials, all departments (writes and reads)", (
            ("yunshang:authorization_denials:rate5m", "denials/s"),), unit="ops"),
        Panel("Quarantines", (("sum by (tenant, alert) (increase(yunshang_quarantines_total[1h]))", "{{tenant}} {{alert}}"),)),
        Panel("Quarantined now", (("yunshang_tenant_quarantined == 1", "{{tenant}}"),), kind="table", width=24),
    )),
    Dashboard("yunshang-elastic", "yunshang / elastic quota", (
        Panel("Elastic changes (1h)", (
            ("sum by (tenant, resource, direction) (increase(yunshang_elastic_quota_changes_total[1h]))",
             "{{tenant}} {{resource}} {{direction}}"),), width=24),
        Panel("CPU quota within floor and ceiling (elastic tenants)", (
            ('yunshang_tenant_resource_limit{resource="cpu"} and on (tenant) yunshang_tenant_elastic_enabled == 1',
             "{{tenant}} quota"),
            ('yunshang_tenant_resource_ceiling{resource="cpu"} and on (tenant) yunshang_tenant_elastic_enabled == 1',
             "{{tenant}} ceiling"),
            ('yunshang_tenant_resource_floor{resource="cpu"} and on (tenant) yunshang_tenant_elastic_enabled == 1',
             "{{tenant}} floor"),
        ), width=24),
    )),
    # 绩效考评: the figures of `yunshang report performance` that Prometheus keeps a history of
    Dashboard("yunshang-performance", "yunshang / performance (绩效考评, 好差评)", (
        Panel("Time to decide, p90 (7d), by party", (
            ("histogram_quantile(0.9, sum by (le, kind, party) "
             "(increase(yunshang_decision_duration_seconds_bucket[7d])))", "{{kind}} {{party}}"),), unit="s"),
        Panel("Time to decide, median (7d), by party", (
            ("histogram_quantile(0.5, sum by (le, kind, party) "
             "(increase(yunshang_decision_duration_seconds_bucket[7d])))", "{{kind}} {{party}}"),), unit="s"),
        Panel("Decisions pending, by party", (
            ("count by (kind, party) (yunshang_decision_deadline_timestamp_seconds)", "{{kind}} {{party}}"),),
            kind="table", width=8),
        Panel("Decisions overdue (限时办结), by party", (
            ("count by (kind, party) (yunshang_decision_deadline_timestamp_seconds < time())", "{{kind}} {{party}}"),),
            kind="table", width=8),
        Panel("Consumers' rating (好差评), by provider", (
            ("yunshang_provider_rating_sum / yunshang_provider_rating_count", "{{provider}}"),), kind="table", width=8),
        Panel("CPU quota utilisation, by tenant", (
            ('sum by (tenant) (yunshang_tenant_resource_usage{resource="cpu"}) / '
             'sum by (tenant) (yunshang_tenant_resource_limit{resource="cpu"})', "{{tenant}}"),), unit="percentunit"),
        Panel("Quarantines (30d), by tenant", (
            ("sum by (tenant) (increase(yunshang_quarantines_total[30d]))", "{{tenant}}"),), kind="table"),
        Panel("Active agreements offered (as provider) and consumed (as consumer)", (
            ("count by (provider) (yunshang_agreement_expiry_timestamp_seconds)", "offered by {{provider}}"),
            ("count by (consumer) (yunshang_agreement_expiry_timestamp_seconds)", "consumed by {{consumer}}"),
        ), kind="table"),
        Panel("Decisions made (7d), by party", (
            ("sum by (kind, party) (increase(yunshang_decision_duration_seconds_count[7d]))", "{{kind}} {{party}}"),),
            kind="table"),
    )),
)


def all_queries(d: Dashboard) -> list[str]:
    return [e for p in d.panels for e, _ in p.exprs]


def render(d: Dashboard) -> dict:
    panels, x, y, row_h = [], 0, 0, 8
    for i, p in enumerate(d.panels, start=1):
        if x + p.width > 24:
            x, y = 0, y + row_h
        panels.append({
            "id": i,
            "type": p.kind,
            "title": p.title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": row_h, "w": p.width, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
            "targets": [
                {"refId": chr(ord("A") + j), "expr": e, "legendFormat": legend,
                 "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                for j, (e, legend) in enumerate(p.exprs)
            ],
        })
        x += p.width
    templating = [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
    if d.tenant_variable:
        templating.append({
            "name": "tenant", "type": "query", "label": "Tenant", "multi": True, "includeAll": True,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": "label_values(yunshang_tenant_phase, tenant)", "refId": "tenants"},
            "refresh": 2, "allValue": ".*",
        })
    return {
        "uid": d.uid,
        "title": d.title,
        "tags": ["yunshang"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": templating},
        "panels": panels,
    }


def files() -> dict[str, str]:
    return {f"{d.uid}.json": json.dumps(render(d), indent=2, ensure_ascii=False) + "\n" for d in DASHBOARDS}


def main(argv: list[str]) -> int:
    from .generated import write_or_check

    return write_or_check({OUT / name: text for name, text in files().items()}, argv, "python -m yunshang.dashboards")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
