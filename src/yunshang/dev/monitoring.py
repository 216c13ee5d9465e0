"""Prometheus and Alertmanager for the local platform: configuration rendered from the same
rules (monitoring/rules/) that `pulumi up` deploys, and the two processes on loopback."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from .. import alerting
from ..models.tenant import Contact

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "monitoring"
CONSOLE_LIBRARIES = MONITORING / "console_libraries"  # our own, self-contained (no external scripts)


@dataclasses.dataclass
class Settings:
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    group_wait: str = "5s"
    group_interval: str = "30s"
    repeat_interval: str = "4h"
    ops: list[Contact] = dataclasses.field(default_factory=list)  # the ops team's webhooks (stack config)

    def alerting_base(self, webhook_port: int, token_file: Path, ca_file: Path) -> alerting.Base:
        """What the local platform decides; tenants add their contacts (the operator keeps the file)."""
        return alerting.Base(
            ops=self.ops,
            operator=alerting.OperatorWebhook(url=f"https://127.0.0.1:{webhook_port}/alerts",
                                              token_file=str(token_file), ca_file=str(ca_file)),
            timing=alerting.Timing(group_wait=self.group_wait, group_interval=self.group_interval,
                                   repeat_interval=self.repeat_interval))


def rule_files() -> list[str]:
    return [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))]


def kubelet_jobs(kubelets: list[str], pki: Path) -> list[dict]:
    """What pods really use, from each real node's kubelet (TLS from the local CA, Prometheus's own
    client certificate, allowed nodes/metrics): its resource metrics and cAdvisor's per container."""
    tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "prometheus.crt"),
           "key_file": str(pki / "prometheus.key")}
    return [
        {"job_name": "kubelet-resource", "scheme": "https", "tls_config": tls, "metrics_path": "/metrics/resource",
         "static_configs": [{"targets": kubelets}]},
        {"job_name": "kubelet-cadvisor", "scheme": "https", "tls_config": tls, "metrics_path": "/metrics/cadvisor",
         "static_configs": [{"targets": kubelets}],
         "metric_relabel_configs": [{"source_labels": ["__name__"], "action": "keep",
                                     "regex": "container_cpu_usage_seconds_total|container_memory_working_set_bytes"
                                              "|container_network_(receive|transmit)_bytes_total"}]},
    ]


def prometheus_config(*, operator_metrics: int, apiserver: int, alertmanager: int, pki: Path,
                      settings: Settings = Settings(), extra_operator_targets: list[str] | None = None,
                      kubelets: list[str] | None = None) -> dict:
    return {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
            "external_labels": {"platform": "yunshang-local"},
        },
        "rule_files": rule_files(),
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}]},
        "scrape_configs": [
            {
                "job_name": "yunshang-operator",
                "static_configs": [{"targets": [f"127.0.0.1:{operator_metrics}", *(extra_operator_targets or [])]}],
            },
            {
                "job_name": "kube-apiserver",
                "scheme": "https",
                "tls_config": {
                    "ca_file": str(pki / "ca.crt"),
                    "cert_file": str(pki / "prometheus.crt"),
                    "key_file": str(pki / "prometheus.key"),
                },
                "static_configs": [{"targets": [f"127.0.0.1:{apiserver}"]}],
                # keep what rules and dashboards use; the full set is large
                "metric_relabel_configs": [{
                    "source_labels": ["__name__"],
                    "regex": "pod_security_.*|apiserver_authorization_decisions_total|apiserver_request_total"
                             "|apiserver_admission_.*_rejections_total|up",
                    "action": "keep",
                }],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": ["127.0.0.1:{prometheus_port}"]}]},
            *(kubelet_jobs(kubelets, pki) if kubelets else []),
        ],
    }


def write_configs(state: Path, *, prometheus_port: int, **kw) -> tuple[Path, Path]:
    settings = kw.pop("settings", Settings())
    webhook_port, token_file = kw.pop("webhook_port"), kw.pop("token_file")
    prom = prometheus_config(settings=settings, **kw)
    for job in prom["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [t.replace("{prometheus_port}", str(prometheus_port)) for t in sc["targets"]]
    p = state / "prometheus.yml"
    p.write_text(yaml.safe_dump(prom, sort_keys=False))
    base = settings.alerting_base(webhook_port, token_file, kw["pki"] / "ca.crt")
    (state / "alerting-base.json").write_text(base.model_dump_json(by_alias=True))
    a = state / "alertmanager.yml"  # the operator adds the tenants' contacts within seconds and keeps it so
    a.write_text(yaml.safe_dump(alerting.render(base, {}), sort_keys=False))
    return p, a


def prometheus_argv(binary: Path, config: Path, data: Path, port: int) -> list[str]:
    return [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.console.templates={MONITORING / 'consoles'}",
        f"--web.console.libraries={CONSOLE_LIBRARIES}",
        "--storage.tsdb.retention.time=7d",
        "--log.level=warn",
    ]


def alertmanager_argv(binary: Path, config: Path, data: Path, port: int) -> list[str]:
    return [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port (it would listen on every interface)
        "--log.level=warn",
    ]
