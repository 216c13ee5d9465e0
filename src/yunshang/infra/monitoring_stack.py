"""Prometheus and Alertmanager run by the platform program (stack config
``yunshang:monitoring.mode: deploy``), for clusters without their own: pure functions of the stack's
settings, declared by the Monitoring component.

Prometheus (one replica, its samples in an emptyDir) loads the rules ConfigMap the program keeps
(``yunshang-prometheus-rules``, the files of monitoring/rules), scrapes every operator replica (pods
of yunshang-system), the API server and each node's kubelet (resource metrics and cAdvisor, as its
ServiceAccount: nodes/metrics), and sends alerts to Alertmanager's Service.  Alertmanager reads the
configuration the operator keeps in Secret ``yunshang-alertmanager`` (ops, reviewers, every
tenant's contacts, the operator's own webhook) and is reloaded by the operator when it changes.
Both are placed like the operator (``yunshang:operator`` imagePullPolicy, nodeSelector, tolerations),
run as nobody on a read-only root."""
from __future__ import annotations

from typing import Any

import yaml

from .. import policies
from ..tenancy import MONITORING_NAMESPACE, SYSTEM_NAMESPACE
from .config import StackConfig

PROMETHEUS, ALERTMANAGER = "yunshang-prometheus", "yunshang-alertmanager"
PROMETHEUS_PORT, ALERTMANAGER_PORT, WEBHOOK_PORT = 9090, 9093, 8443
NOBODY = 65534
TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
OPERATOR_CLIENT_DIR = "/etc/yunshang/operator-webhook"  # in Alertmanager: the operator's CA and token


def service_url(name: str, namespace: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://{name}.{namespace}.svc:{port}"


def prometheus_url() -> str:
    return service_url(PROMETHEUS, MONITORING_NAMESPACE, PROMETHEUS_PORT)


def alertmanager_url() -> str:
    return service_url(ALERTMANAGER, MONITORING_NAMESPACE, ALERTMANAGER_PORT)


def operator_webhook_url() -> str:
    return service_url(policies.OPERATOR_WEBHOOK_SERVICE, SYSTEM_NAMESPACE, WEBHOOK_PORT, "https") + "/alerts"


OPERATOR_METRICS = "yunshang-operator-metrics"  # headless: one DNS record per replica
HEALTH_PORT, METRICS_PORT = 8080, 9090  # the operator's /healthz and /sd/kubelets; its /metrics


def _kubelet_job(name: str, path: str, keep: str | None = None) -> dict[str, Any]:
    """A kubelet's endpoint, every node's: the operator's replicas list them (/sd/kubelets, from their
    watch of the Nodes); Prometheus asks as its ServiceAccount (nodes/metrics)."""
    job: dict[str, Any] = {
        "job_name": name, "scheme": "https", "metrics_path": path,
        "http_sd_configs": [{"url": f"http://{OPERATOR_METRICS}.{SYSTEM_NAMESPACE}.svc:{HEALTH_PORT}/sd/kubelets",
                             "refresh_interval": "30s"}],
        "tls_config": {"ca_file": CA}, "authorization": {"credentials_file": TOKEN}}
    if keep:
        job["metric_relabel_configs"] = [{"source_labels": ["__name__"], "action": "keep", "regex": keep}]
    return job


def prometheus_config(cfg: StackConfig) -> dict[str, Any]:
    """The same jobs as the local platform's (yunshang.dev.monitoring).  Debian's Prometheus has no
    Kubernetes service discovery: the operator's replicas are found by DNS (a headless Service), the
    kubelets through the operator, the API server by its Service's name."""
    interval = cfg.monitoring.scrape_interval
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "external_labels": {"platform": f"yunshang-{cfg.cluster}"}},
        "rule_files": ["/etc/prometheus/rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"{ALERTMANAGER}.{MONITORING_NAMESPACE}.svc:{ALERTMANAGER_PORT}"]}]}]},
        "scrape_configs": [
            {"job_name": "yunshang-operator",  # every replica: the leader and the standbys
             "dns_sd_configs": [{"names": [f"{OPERATOR_METRICS}.{SYSTEM_NAMESPACE}.svc"], "type": "A",
                                 "port": METRICS_PORT, "refresh_interval": interval}]},
            {"job_name": "kube-apiserver", "scheme": "https",
             "static_configs": [{"targets": ["kubernetes.default.svc:443"]}],
             "tls_config": {"ca_file": CA}, "authorization": {"credentials_file": TOKEN},
             "metric_relabel_configs": [{
                 "source_labels": ["__name__"], "action": "keep",
                 "regex": "pod_security_.*|apiserver_authorization_decisions_total|apiserver_request_total"
                          "|apiserver_admission_.*_rejections_total|up"}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{PROMETHEUS_PORT}"]}]},
            _kubelet_job("kubelet-resource", "/metrics/resource"),
            _kubelet_job("kubelet-cadvisor", "/metrics/cadvisor",
                         "container_cpu_usage_seconds_total|container_memory_working_set_bytes"
                         "|container_network_(receive|transmit)_bytes_total"),
        ],
    }


def _placed(cfg: StackConfig, spec: dict[str, Any]) -> dict[str, Any]:
    op = cfg.operator
    return {**spec, **({"nodeSelector": op.node_selector} if op.node_selector else {}),
            **({"tolerations": op.tolerations} if op.tolerations else {})}


def _container(name: str, image: str, pull: str, args: list[str], port: int, mounts: list[dict]) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": pull, "args": args,
            "ports": [{"name": "http", "containerPort": port}], "volumeMounts": mounts,
            "readinessProbe": {"httpGet": {"path": "/-/ready", "port": port}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "runAsUser": NOBODY, "capabilities": {"drop": ["ALL"]}}}


def _deployment(name: str, cfg: StackConfig, pod: dict[str, Any], sa: str | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "yunshang"}
    spec = _placed(cfg, {**({"serviceAccountName": sa} if sa else {"automountServiceAccountToken": False}),
                         "securityContext": {"runAsNonRoot": True, "runAsUser": NOBODY,
                                             "seccompProfile": {"type": "RuntimeDefault"}},
                         **pod})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": MONITORING_NAMESPACE, "labels": labels},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def _service(name: str, namespace: str, port: int, selector: dict[str, str] | None, port_name: str = "http") -> dict:
    spec: dict[str, Any] = {"ports": [{"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}]}
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "yunshang"}},
            "spec": spec}


def deployed(cfg: StackConfig) -> list[dict[str, Any]]:
    """Prometheus and Alertmanager in yunshang-monitoring (deploy mode), with what they need."""
    mon, pull = cfg.monitoring, cfg.operator.image_pull_policy
    labels = {"app.kubernetes.io/part-of": "yunshang"}
    rbac = "rbac.authorization.k8s.io"
    prom_pod = {
        "volumes": [{"name": "config", "configMap": {"name": f"{PROMETHEUS}-config"}},
                    {"name": "rules", "configMap": {"name": "yunshang-prometheus-rules"}},
                    {"name": "data", "emptyDir": {}}],
        "containers": [_container("prometheus", mon.prometheus_image, pull, [
            "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={mon.retention}", f"--web.listen-address=:{PROMETHEUS_PORT}",
            "--web.enable-lifecycle", "--log.level=warn"], PROMETHEUS_PORT,
            [{"name": "config", "mountPath": "/etc/prometheus", "readOnly": True},
             {"name": "rules", "mountPath": "/etc/prometheus/rules", "readOnly": True},
             {"name": "data", "mountPath": "/prometheus"}])]}
    am_mounts = [{"name": "config", "mountPath": "/etc/alertmanager", "readOnly": True},
                 {"name": "data", "mountPath": "/alertmanager"}]
    am_volumes = [{"name": "config", "secret": {"secretName": ALERTMANAGER}}, {"name": "data", "emptyDir": {}}]
    if cfg.operator.webhook_secret:  # the operator's CA and token, for its /alerts
        am_volumes.append({"name": "operator-webhook", "secret": {
            "secretName": cfg.operator.webhook_secret, "items": [{"key": "ca.crt", "path": "ca.crt"},
                                                                 {"key": "token", "path": "token"}]}})
        am_mounts.append({"name": "operator-webhook", "mountPath": OPERATOR_CLIENT_DIR, "readOnly": True})
    am_pod = {"volumes": am_volumes, "containers": [_container("alertmanager", mon.alertmanager_image, pull, [
        "--config.file=/etc/alertmanager/alertmanager.yaml", "--storage.path=/alertmanager",
        f"--web.listen-address=:{ALERTMANAGER_PORT}", "--cluster.listen-address=", "--log.level=warn"],
        ALERTMANAGER_PORT, am_mounts)]}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": PROMETHEUS, "namespace": MONITORING_NAMESPACE,
                                                                    "labels": labels}},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": {"name": "yunshang:prometheus", "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                   {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]},
        {"apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "yunshang:prometheus", "labels": labels},
         "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "yunshang:prometheus"},
         "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": MONITORING_NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{PROMETHEUS}-config", "namespace": MONITORING_NAMESPACE,
                                                               "labels": labels},
         "data": {"prometheus.yml": yaml.safe_dump(prometheus_config(cfg), sort_keys=False)}},
        _deployment(PROMETHEUS, cfg, prom_pod, sa=PROMETHEUS),
        _service(PROMETHEUS, MONITORING_NAMESPACE, PROMETHEUS_PORT, {"app.kubernetes.io/name": PROMETHEUS}),
        _deployment(ALERTMANAGER, cfg, am_pod),
        _service(ALERTMANAGER, MONITORING_NAMESPACE, ALERTMANAGER_PORT, {"app.kubernetes.io/name": ALERTMANAGER}),
    ]


def operator_metrics_service() -> dict[str, Any]:
    """Every operator replica by name (headless: one DNS record each): Prometheus scrapes each one's
    /metrics and asks any of them where the kubelets are."""
    svc = _service(OPERATOR_METRICS, SYSTEM_NAMESPACE, METRICS_PORT,
                   {"app.kubernetes.io/name": "yunshang-operator"}, "metrics")
    svc["spec"]["clusterIP"] = "None"
    svc["spec"]["ports"].append({"name": "health", "port": HEALTH_PORT, "targetPort": HEALTH_PORT, "protocol": "TCP"})
    return svc


def webhook_service() -> dict[str, Any]:
    """The operator's webhooks behind one Service with no selector: the leader keeps its EndpointSlice
    (yunshang.operator.webhook_endpoint)."""
    return _service(policies.OPERATOR_WEBHOOK_SERVICE, SYSTEM_NAMESPACE, WEBHOOK_PORT, None, "webhook")
