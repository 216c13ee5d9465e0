"""Typed stack configuration (namespace `yunshang:` in stacks/Pulumi.<stack>.yaml).

A bad or missing value stops the run with one line naming the key and what is expected.
"""
from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..alerting import Base as AlertingBase
from ..identity.settings import IdentityConfig
from ..models.audit import DEFAULT_ANCHOR
from ..models.tenant import Hostname, Registry
from ..policies import DEFAULT_REGISTRIES
from ..tenancy import DEFAULT_HOST_SUFFIXES
from ..signoff import DEFAULT_ROLES
from ..showback import OWN_SERVERS_DEFAULT, PLATFORM_DEFAULT, PriceTable

NAMESPACE = "yunshang"
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the directory holding Pulumi.yaml


class OperatorMode(str, enum.Enum):
    process = "process"  # the operator runs as a local process (`yunshang dev up`): local stack
    deployment = "deployment"  # a Deployment in yunshang-system: real clusters


class OperatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: OperatorMode = OperatorMode.deployment
    """process (local platform) or deployment (a real cluster)."""
    image: str = Field(default="registry.local/yunshang/operator:0.1.0", min_length=1)
    """Container image of the operator (deployment mode)."""
    replicas: int = Field(default=2, ge=1, le=5)
    """Operator replicas; they elect a leader through a coordination.k8s.io Lease."""
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(default="IfNotPresent", alias="imagePullPolicy")
    """When the kubelet pulls the image (Never: it was imported into the nodes, as on the local real node)."""
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    """Labels of the nodes the operator may run on (e.g. the cluster's system nodes)."""
    tolerations: list[dict[str, str]] = Field(default_factory=list)
    """Taints of those nodes the operator tolerates (Kubernetes' toleration objects)."""
    webhook_secret: str = Field(default="", alias="webhookSecret", pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    """A Secret in yunshang-system (tls.crt, tls.key, token) the operator serves its webhooks with
    (Alertmanager's /alerts, the API server's /audit), behind Service yunshang-operator-webhook, which
    points at the leader.  '' = no webhooks (no automatic quarantine)."""


class MonitoringMode(str, enum.Enum):
    external = "external"  # the cluster's own Prometheus and Alertmanager mount the rules ConfigMap and the Secret
    deploy = "deploy"  # the program runs Prometheus and Alertmanager in yunshang-monitoring


Duration = Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h|d)$")]


class MonitoringConfig(BaseModel):
    """Where the platform's rules are evaluated and its alerts routed (stack config yunshang:monitoring)."""

    model_config = ConfigDict(extra="forbid")
    mode: MonitoringMode = MonitoringMode.external
    """external: the cluster's own (kube-prometheus-stack: mount ConfigMap yunshang-prometheus-rules and
    Secret yunshang-alertmanager); deploy: Prometheus and Alertmanager run in yunshang-monitoring."""
    prometheus_image: str = Field(default="registry.local/yunshang/prometheus:2.42.0", min_length=1,
                                  alias="prometheusImage")
    """Prometheus' image (deploy mode; `yunshang dev image --monitoring` builds it from Debian's package)."""
    alertmanager_image: str = Field(default="registry.local/yunshang/alertmanager:0.25.0", min_length=1,
                                    alias="alertmanagerImage")
    """Alertmanager's image (deploy mode)."""
    scrape_interval: Duration = Field(default="30s", alias="scrapeInterval")
    """How often Prometheus scrapes (and evaluates the rules)."""
    retention: Duration = "15d"
    """How long Prometheus keeps samples (its storage: an emptyDir; a restart starts afresh)."""


class SignOffConfig(BaseModel):
    """Parallel sign-off (并联审批) and its time limits (限时办结)."""

    model_config = ConfigDict(extra="forbid")
    roles: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)]] = Field(
        default_factory=lambda: list(DEFAULT_ROLES), min_length=1, max_length=8)
    """Reviewer roles that must all approve a tenant's request; members of group yunshang:reviewer:<role> decide."""
    tenant_days: float = Field(default=3, gt=0, le=365, alias="tenantDays")
    """Days each role has to decide on a tenant's request before it is overdue (and alerted)."""
    agreement_days: float = Field(default=5, gt=0, le=365, alias="agreementDays")
    """Days a provider has to decide on a sharing agreement before it is overdue (and alerted)."""

    def env(self) -> dict[str, str]:
        """The operator's environment for these settings (operator/settings.py reads it)."""
        return {"YUNSHANG_SIGNOFF_ROLES": ",".join(self.roles), "YUNSHANG_SIGNOFF_TENANT_DAYS": str(self.tenant_days),
                "YUNSHANG_SIGNOFF_AGREEMENT_DAYS": str(self.agreement_days)}


class StackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stack: str = ""
    """The Pulumi stack running (not a setting: the program fills it in; it marks what the stack manages)."""
    kubeconfig: str = ""
    """Path of the kubeconfig to deploy with ('' = the default kubeconfig)."""
    context: str = ""
    """kubeconfig context ('' = the current one)."""
    cluster: str = Field(default="default", min_length=1)
    """A stable name of the target cluster (the provider's clusterIdentifier).  Only a change of
    this name makes Pulumi treat the cluster as another one; how it is reached (kubeconfig path,
    a copy of it, the context name) never replaces anything."""
    catalog: str = "tenants"
    """Directory of the department catalog, relative to the project."""
    approve_catalog: bool = False
    """Tenants merged into the catalog are approved (git review is the bureau's approval)."""
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    """Prometheus and Alertmanager: the cluster's own, or deployed by the program (placed like the operator)."""
    environment: Literal["local", "production"] = "production"
    """Shown in outputs and labels."""
    default_registries: list[Registry] = Field(default_factory=lambda: list(DEFAULT_REGISTRIES), min_length=1)
    """Image registries of tenants that name none in spec.allowed.registries."""
    default_host_suffixes: list[Hostname] = Field(default_factory=lambda: list(DEFAULT_HOST_SUFFIXES), min_length=1)
    """Domains under which each tenant that names no spec.allowed.hostnames may serve <tenant>.<domain>
    and *.<tenant>.<domain> (Ingress hosts)."""
    audit_anchor: str = Field(default=DEFAULT_ANCHOR, pattern=r"^[a-z0-9-]+/[a-z0-9.-]+$")
    """namespace/name of the ConfigMap where the operator anchors the audit chain's head (outside the chain)."""
    signoff: SignOffConfig = Field(default_factory=SignOffConfig)
    """Who signs off a tenant's request and how long each has (yunshang:signoff)."""
    alerting: AlertingBase = Field(default_factory=AlertingBase)
    """Who receives alerts besides each tenant's own contacts: ops (webhooks) and timing."""
    demo: bool = False
    """Add a demo workload: the data-exchange API (Deployment + Service `api`) of gz-bigdata."""
    pricing: PriceTable = PLATFORM_DEFAULT
    """Monthly prices of the shared platform (showback: `yunshang report costs`)."""
    own_server_pricing: PriceTable = OWN_SERVERS_DEFAULT
    """Monthly prices of the same capacity on a department's own servers (the saving compared to)."""
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    """The province's identity provider the API server trusts, and how its groups map to the
    platform's (`yunshang platform authentication-config`; the local platform runs its own Keycloak)."""

    def kubeconfig_path(self) -> str:
        return str(Path(os.path.expanduser(self.kubeconfig))) if self.kubeconfig else ""


KEYS = {
    "kubeconfig": "kubeconfig",
    "context": "context",
    "cluster": "cluster",
    "catalog": "catalog",
    "approveCatalog": "approve_catalog",
    "operator": "operator",
    "monitoring": "monitoring",
    "environment": "environment",
    "defaultRegistries": "default_registries",
    "defaultHostSuffixes": "default_host_suffixes",
    "auditAnchor": "audit_anchor",
    "signoff": "signoff",
    "alerting": "alerting",
    "demo": "demo",
    "pricing": "pricing",
    "ownServerPricing": "own_server_pricing",
    "identity": "identity",
}


class ConfigError(ValueError):
    pass


def parse(raw: dict[str, Any]) -> StackConfig:
    """Config values (as strings or objects, keyed as in the stack file) -> StackConfig."""
    data: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KEYS:
            known = ", ".join(f"{NAMESPACE}:{k}" for k in KEYS)
            raise ConfigError(f"config {NAMESPACE}:{key} is not a setting (known: {known})")
        data[KEYS[key]] = value
    try:
        return StackConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        inverse = {v: k for k, v in KEYS.items()}
        path = [inverse.get(str(err["loc"][0]), str(err["loc"][0])), *map(str, err["loc"][1:])]
        raise ConfigError(
            f"config {NAMESPACE}:{'.'.join(path)}: {err['msg'].removeprefix('Value error, ')} "
            f"(got {err.get('input')!r})"
        ) from None


def from_pulumi() -> StackConfig:
    import json

    from pulumi.runtime import config as runtime_config

    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    for full, value in runtime_config.CONFIG.get().items():
        if not full.startswith(prefix):
            continue
        key = full[len(prefix):]
        if not isinstance(value, str):
            raw[key] = value
            continue
        if value[:1] in "{[":
            value = json.loads(value)
        elif value in ("true", "false"):
            value = value == "true"
        raw[key] = value
    return with_target(parse(raw), os.environ)


def with_target(cfg: StackConfig, env) -> StackConfig:
    """The stack's settings, with the Target the CLI chose (`yunshang --kubeconfig F --context C
    platform up`, `yunshang dev up --state-dir X`) over its kubeconfig and context: the program's
    environment at its start says so (yunshang.target)."""
    from ..target import CONTEXT_ENV, KUBECONFIG_ENV

    update = {k: env[e] for k, e in (("kubeconfig", KUBECONFIG_ENV), ("context", CONTEXT_ENV)) if e in env}
    return cfg.model_copy(update=update) if update else cfg


def from_stack_file(stack: str, root: Path) -> StackConfig:
    """The typed settings of stacks/Pulumi.<stack>.yaml, read without the engine (for the CLI)."""
    import yaml

    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise ConfigError(f"no stack {stack!r}: {path} does not exist")
    raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return parse({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith(f"{NAMESPACE}:")})
