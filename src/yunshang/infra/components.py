"""Pulumi components of the shared platform.  Each is a thin shell over yunshang's own
manifest functions (the same objects `yunshang dev up` installs and the tests check), declared
as pulumi-kubernetes resources through the stack's one provider."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pulumi

from .. import platform, policies
from ..catalog import Entry
from ..models.tenant import API_VERSION
from ..tenancy import MONITORING_NAMESPACE, SYSTEM_NAMESPACE
from . import monitoring_stack
from .config import MonitoringMode, OperatorMode, StackConfig
from .kube import declare, resource_name

# What stays in the cluster when Pulumi lets go of it (`pulumi destroy`, a renamed resource, a
# file removed from the catalog): the CRDs, whose deletion would take every Tenant,
# ShareAgreement and AuditRecord with it, and the departments themselves.  Deleting those is a
# person's explicit act (`yunshang tenant delete`, `kubectl delete crd`), see the README.
RETAINED_KINDS = {"CustomResourceDefinition", "Tenant"}


class _Group(pulumi.ComponentResource):
    """A named set of Kubernetes objects, each a typed resource of the stack's provider (passed
    down from the component's options: `providers={"kubernetes": ...}`)."""

    objects: dict[str, pulumi.CustomResource]

    def __init__(self, token: str, name: str, manifests: Sequence[dict[str, Any]], cfg: StackConfig,
                 opts: pulumi.ResourceOptions | None = None, annotations: dict[str, str] | None = None):
        super().__init__(token, name, None, opts)
        self.objects = {}
        for m in manifests:
            self.objects[resource_name(m)] = declare(m, pulumi.ResourceOptions(
                parent=self, retain_on_delete=m["kind"] in RETAINED_KINDS or None), annotations, cfg.stack)
        self.register_outputs({"objects": sorted(self.objects)})


class PlatformNamespaces(_Group):
    """The platform's own namespaces (system, monitoring, views).  The one that holds the audit
    chain's anchor (stack config yunshang:auditAnchor, yunshang-system by default) stays when
    Pulumi lets go of it (`pulumi destroy`): deleting it would delete the anchor, and with it the
    evidence of how long the chain was."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        pulumi.ComponentResource.__init__(self, "yunshang:platform:Namespaces", name, None, opts)
        anchored = cfg.audit_anchor.partition("/")[0]
        self.objects = {}
        for m in platform.system_namespaces():
            self.objects[resource_name(m)] = declare(m, pulumi.ResourceOptions(
                parent=self, retain_on_delete=m["metadata"]["name"] == anchored or None), stack=cfg.stack)
        self.register_outputs({"objects": sorted(self.objects)})
        self.names = [m["metadata"]["name"] for m in platform.system_namespaces()]


class CustomResourceDefinitions(_Group):
    """The platform's CRDs (generated from the models)."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:CRDs", name, platform.crds(), cfg, opts)


class Governance(_Group):
    """RBAC for departments, the bureau and the operator, and the admission policies: approval,
    consent, the append-only audit trail, what tenants may use, the platform's own objects."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Governance", name, governance_manifests(cfg), cfg, opts)


def governance_manifests(cfg: StackConfig) -> list[dict[str, Any]]:
    return policies.governance(cfg.audit_anchor, cfg.signoff.roles, cfg.default_registries, cfg.default_host_suffixes)


def priority_classes() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": "yunshang-platform-critical"}, "value": 100000,
         "description": "yunshang's own components: scheduled before any tenant workload"},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": "yunshang-tenant-default"}, "value": 1000, "globalDefault": False,
         "description": "default for department workloads"},
    ]


class PriorityClasses(_Group):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:PriorityClasses", name, priority_classes(), cfg, opts)


def operator_manifests(cfg: StackConfig) -> list[dict[str, Any]]:
    objs = [platform.operator_account()]
    if cfg.operator.mode != OperatorMode.deployment:
        return objs
    labels = {"app.kubernetes.io/name": "yunshang-operator", "app.kubernetes.io/part-of": "yunshang"}
    objs.append({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "yunshang-operator", "namespace": SYSTEM_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": cfg.operator.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": policies.OPERATOR_SA,
                    "priorityClassName": "yunshang-platform-critical",
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    **({"nodeSelector": cfg.operator.node_selector} if cfg.operator.node_selector else {}),
                    **({"tolerations": cfg.operator.tolerations} if cfg.operator.tolerations else {}),
                    "volumes": [{"name": "alerting", "configMap": {"name": ALERTING_CONFIGMAP}},
                                *([{"name": "webhook", "secret": {"secretName": cfg.operator.webhook_secret}}]
                                  if cfg.operator.webhook_secret else [])],
                    "containers": [{
                        "name": "operator",
                        "image": cfg.operator.image,
                        "imagePullPolicy": cfg.operator.image_pull_policy,
                        "args": ["python", "-m", "yunshang.operator", "--lease", policies.OPERATOR_LEASE,
                                 "--health-port", str(HEALTH), "--health-address", "0.0.0.0",
                                 "--metrics-port", str(METRICS), "--metrics-address", "0.0.0.0"],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                *_operator_wiring_env(cfg),
                                {"name": "YUNSHANG_AUDIT_ANCHOR", "value": cfg.audit_anchor},
                                {"name": "YUNSHANG_HOST_SUFFIXES", "value": ",".join(cfg.default_host_suffixes)},
                                *({"name": k, "value": v} for k, v in cfg.signoff.env().items()),
                                {"name": "YUNSHANG_ALERTING_BASE", "value": "/etc/yunshang/alerting/base.json"},
                                {"name": "YUNSHANG_ALERTMANAGER_SECRET",
                                 "value": f"{MONITORING_NAMESPACE}/{ALERTMANAGER_SECRET}"}],
                        "volumeMounts": [{"name": "alerting", "mountPath": "/etc/yunshang/alerting", "readOnly": True},
                                         *([{"name": "webhook", "mountPath": WEBHOOK_DIR, "readOnly": True}]
                                           if cfg.operator.webhook_secret else [])],
                        "ports": [{"name": "metrics", "containerPort": METRICS}, {"name": "health", "containerPort": HEALTH},
                                  *([{"name": "webhook", "containerPort": monitoring_stack.WEBHOOK_PORT}]
                                    if cfg.operator.webhook_secret else [])],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH}},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    })
    objs.append(monitoring_stack.operator_metrics_service())
    if cfg.operator.webhook_secret:
        objs.append(monitoring_stack.webhook_service())
    return objs


WEBHOOK_DIR = "/etc/yunshang/webhook"
HEALTH, METRICS = monitoring_stack.HEALTH_PORT, monitoring_stack.METRICS_PORT


def _operator_wiring_env(cfg: StackConfig) -> list[dict[str, Any]]:
    """What ties the operator's Deployment to the monitoring the program deploys and to its webhooks' Service."""
    env = []
    if cfg.monitoring.mode == MonitoringMode.deploy:
        env += [{"name": "YUNSHANG_PROMETHEUS_URL", "value": monitoring_stack.prometheus_url()},
                {"name": "YUNSHANG_ALERTMANAGER_URL", "value": monitoring_stack.alertmanager_url()}]
    if cfg.operator.webhook_secret:
        env += [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "YUNSHANG_WEBHOOK_PORT", "value": str(monitoring_stack.WEBHOOK_PORT)},
                {"name": "YUNSHANG_WEBHOOK_ADDRESS", "value": "0.0.0.0"},
                {"name": "YUNSHANG_WEBHOOK_TOKEN_FILE", "value": f"{WEBHOOK_DIR}/token"},
                {"name": "YUNSHANG_WEBHOOK_TLS_CERT", "value": f"{WEBHOOK_DIR}/tls.crt"},
                {"name": "YUNSHANG_WEBHOOK_TLS_KEY", "value": f"{WEBHOOK_DIR}/tls.key"},
                {"name": "YUNSHANG_WEBHOOK_SERVICE", "value": f"{SYSTEM_NAMESPACE}/{policies.OPERATOR_WEBHOOK_SERVICE}"}]
    return env


class Operator(_Group):
    """The operator's ServiceAccount and (deployment mode) its Deployment."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Operator", name, operator_manifests(cfg), cfg, opts)


def catalog_manifests(entries: Sequence[Entry], cfg: StackConfig) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        spec = e.request.model_dump(mode="json", by_alias=True, exclude_none=True)
        if cfg.approve_catalog:
            spec["approval"] = {"decision": "Approved", "by": f"git:{cfg.catalog}/{e.path.name}",
                                "reason": "reviewed and merged into the department catalog"}
        out.append({"apiVersion": API_VERSION, "kind": "Tenant",
                    "metadata": {"name": e.name, "labels": {"platform.yunshang.io/source": "catalog"}},
                    "spec": spec})
    return out


# an approved catalog tenant is created when the operator has made it Ready (the provider waits)
READY = {"pulumi.com/waitFor": "jsonpath={.status.phase}=Ready"}


class DepartmentCatalog(_Group):
    """tenants/*.yaml as Tenant objects (the same objects `yunshang tenant request` creates).
    Approved by the catalog (local stack), `up` waits until the operator has made them Ready."""

    def __init__(self, name: str, entries: Sequence[Entry], cfg: StackConfig,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:tenants:Catalog", name, catalog_manifests(entries, cfg), cfg, opts,
                         annotations=READY if cfg.approve_catalog else None)
        self.tenants = [e.name for e in entries]


MONITORING_DIR = Path(__file__).resolve().parents[3] / "monitoring"


ALERTING_CONFIGMAP = "yunshang-alerting"
ALERTMANAGER_SECRET = "yunshang-alertmanager"


def monitoring_manifests(cfg: StackConfig | None = None) -> list[dict[str, Any]]:
    """Rules and dashboards as ConfigMaps (no Prometheus Operator CRDs needed): the rules one is
    mounted by the cluster's Prometheus, the dashboards one is picked up by Grafana's sidecar
    (label grafana_dashboard=1).  The alerting base (ops team, timing) for the operator, which
    keeps the Secret `yunshang-monitoring/yunshang-alertmanager` (key alertmanager.yaml, for the
    cluster's Alertmanager to mount) with every tenant's contacts."""
    cfg = cfg or StackConfig()
    rules = {p.name: p.read_text() for p in sorted((MONITORING_DIR / "rules").glob("*.yml"))}
    boards = {p.name: p.read_text() for p in sorted((MONITORING_DIR / "dashboards").glob("*.json"))}
    labels = {"app.kubernetes.io/part-of": "yunshang"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "yunshang-prometheus-rules", "namespace": MONITORING_NAMESPACE,
                      "labels": {**labels, "prometheus-rules": "yunshang"}}, "data": rules},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "yunshang-dashboards", "namespace": MONITORING_NAMESPACE,
                      "labels": {**labels, "grafana_dashboard": "1"}}, "data": boards},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": ALERTING_CONFIGMAP, "namespace": SYSTEM_NAMESPACE, "labels": labels},
         "data": {"base.json": alerting_base(cfg).model_dump_json(by_alias=True, exclude_none=True)}},
        *(monitoring_stack.deployed(cfg) if cfg.monitoring.mode == MonitoringMode.deploy else []),
    ]


def alerting_base(cfg: StackConfig):
    """The stack's alerting settings, with the operator's own webhook where it serves one."""
    if not cfg.operator.webhook_secret or cfg.alerting.operator is not None:
        return cfg.alerting
    from ..alerting import OperatorWebhook

    d = monitoring_stack.OPERATOR_CLIENT_DIR
    return cfg.alerting.model_copy(update={"operator": OperatorWebhook(
        url=monitoring_stack.operator_webhook_url(), token_file=f"{d}/token", ca_file=f"{d}/ca.crt")})


class Monitoring(_Group):
    """Prometheus rules and Grafana dashboards, the same files the local platform uses."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Monitoring", name, monitoring_manifests(cfg), cfg, opts)


DEMO_ANSWER = '{"service": "gz-bigdata exchange", "records": 3}'


def demo_manifests() -> list[dict[str, Any]]:
    """The province data-exchange API in gz-bigdata-exchange: something to share on the local platform.
    It really answers where the platform has a real node (the project's toolbox image, busybox httpd,
    preferred there; its taint tolerated), and runs as a fake on kwok's nodes elsewhere."""
    from ..dev import images, node

    ns, labels = "gz-bigdata-exchange", {"app": "api"}
    serve = (f"mkdir -p /tmp/www && printf '%s\\n' '{DEMO_ANSWER}' > /tmp/www/index.html && "
             "exec httpd -f -p 8080 -h /tmp/www")
    prefer_real = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {
        "matchExpressions": [{"key": node.NODE_LABEL, "operator": "In", "values": ["true"]}]}}]}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
             "tolerations": [node.TOLERATION], "affinity": prefer_real,
             "containers": [{"name": "api", "image": images.TOOLBOX, "imagePullPolicy": "IfNotPresent",
                             "command": ["/bin/sh", "-c", serve],
                             "ports": [{"containerPort": 8080}],
                             "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                           "limits": {"cpu": "1", "memory": "1Gi"}},
                             "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                 "runAsUser": 10001}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


class DemoWorkloads(_Group):
    """Example workloads for the local platform (config yunshang:demo)."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:demo:Workloads", name, demo_manifests(), cfg, opts)
