"""Pulumi components of the shared platform.  Each is a thin shell over yunshang's own
manifest functions (the same objects `yunshang dev up` installs and the tests check)."""
from __future__ import annotations

from typing import Any, Sequence

import pulumi

from .. import platform, policies
from ..catalog import Entry
from ..models.tenant import API_VERSION
from ..tenancy import SYSTEM_NAMESPACE
from .config import OperatorMode, StackConfig
from .kube import KubeObject, object_id


def resource_name(obj: dict[str, Any]) -> str:
    """A stable Pulumi name for an object: kind, namespace and name."""
    md = obj["metadata"]
    return "-".join(p for p in (obj["kind"].lower(), md.get("namespace", ""), md["name"]) if p).replace(":", "-")


class _Group(pulumi.ComponentResource):
    """A named set of Kubernetes objects applied in order (each depends on the previous ones
    only where it must: custom resources on their CRDs)."""

    objects: dict[str, KubeObject]

    def __init__(self, token: str, name: str, manifests: Sequence[dict[str, Any]], cfg: StackConfig,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(token, name, None, opts)
        self.objects = {}
        for m in manifests:
            self.objects[object_id(m)] = KubeObject(
                resource_name(m), m, kubeconfig=cfg.kubeconfig_path(), context=cfg.context or None,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"objects": sorted(self.objects)})


class PlatformNamespaces(_Group):
    """The platform's own namespaces (system, monitoring)."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Namespaces", name, platform.system_namespaces(), cfg, opts)
        self.names = [m["metadata"]["name"] for m in platform.system_namespaces()]


class CustomResourceDefinitions(_Group):
    """Tenant CRD (generated from the model) and kopf's peering CRD."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:CRDs", name, platform.crds(), cfg, opts)


class Governance(_Group):
    """RBAC for departments, the bureau and the operator, and the approval admission policy."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Governance", name,
                         [*policies.rbac(), *policies.admission_policy(), *policies.agreement_policy(),
                          *policies.audit_policy()], cfg, opts)


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
    objs = [platform.operator_account(), platform.peering()]
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
                    "containers": [{
                        "name": "operator",
                        "image": cfg.operator.image,
                        "args": ["python", "-m", "yunshang.operator", "--peering", platform.PEERING,
                                 "--liveness", "http://0.0.0.0:8080/healthz", "--metrics-port", "9090",
                                 "--metrics-address", "0.0.0.0"],
                        "ports": [{"name": "metrics", "containerPort": 9090}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}},
                    }],
                },
            },
        },
    })
    return objs


class Operator(_Group):
    """The operator's ServiceAccount and peering object, and (deployment mode) its Deployment."""

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


class DepartmentCatalog(_Group):
    """tenants/*.yaml as Tenant objects (the same objects `yunshang tenant request` creates)."""

    def __init__(self, name: str, entries: Sequence[Entry], cfg: StackConfig,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:tenants:Catalog", name, catalog_manifests(entries, cfg), cfg, opts)
        self.tenants = [e.name for e in entries]


MONITORING_DIR = __import__("pathlib").Path(__file__).resolve().parents[3] / "monitoring"


def monitoring_manifests() -> list[dict[str, Any]]:
    """Rules and dashboards as ConfigMaps (no Prometheus Operator CRDs needed): the rules one is
    mounted by the cluster's Prometheus, the dashboards one is picked up by Grafana's sidecar
    (label grafana_dashboard=1)."""
    from ..tenancy import MONITORING_NAMESPACE

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
    ]


class Monitoring(_Group):
    """Prometheus rules and Grafana dashboards, the same files the local platform uses."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("yunshang:platform:Monitoring", name, monitoring_manifests(), cfg, opts)


def demo_manifests() -> list[dict[str, Any]]:
    """The province data-exchange API in gz-bigdata-exchange: something to share on the local platform."""
    ns, labels = "gz-bigdata-exchange", {"app": "api"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
             "containers": [{"name": "api", "image": "registry.gz.gov.local/exchange/api:1.4",
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
