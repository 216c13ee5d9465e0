"""The tenant: one department's governed slice of the shared platform.

`TenantRequest` is what a department asks for (CLI input, the catalog in tenants/).
`TenantSpec` is what is stored in the cluster: the request plus what only the platform
bureau may set (the approval, suspension).  The CRD schema is generated from these models
(`yunshang.models.crd`); every field's docstring becomes its CRD description.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from .quantity import Quantity, to_decimal

from .names import API_VERSION, GROUP, VERSION  # noqa: F401  (re-exported)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TENANT_NAME_MAX = 30  # leaves room for "-<namespace suffix>" within 63 characters
NAMESPACE_MAX = 63

# identities (who may do what is enforced by RBAC + ValidatingAdmissionPolicy, see policies.py)
ADMIN_GROUP = "yunshang:platform-admins"
DEPARTMENTS_GROUP = "yunshang:departments"
DEPT_GROUP_PREFIX = "yunshang:dept:"  # + tenant name: the department's own identity


def dept_group(tenant: str) -> str:
    return DEPT_GROUP_PREFIX + tenant


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        str_strip_whitespace=True,
    )


def _dns_label(v: str) -> str:
    if not DNS_LABEL.fullmatch(v):
        raise ValueError(
            f"{v!r} must be lower-case letters, digits and '-', starting and ending with a letter or digit"
        )
    return v


DnsLabel = Annotated[str, Field(min_length=1, max_length=NAMESPACE_MAX), AfterValidator(_dns_label)]
# A namespace suffix has no '-': <tenant>-<suffix> then splits one way only, so no two tenants can ever
# name the same namespace (tenant xq's suffix "w-main" would be tenant xq-w's namespace "main").  The API
# server enforces it (the CRD rule below; tenants stored before it keep theirs: CRD validation ratchets);
# parsing stays lenient so that such a stored tenant is still read, and the operator refuses to take over
# a namespace that carries another tenant's mark.
SUFFIX = re.compile(r"^[a-z0-9]+$")
NamespaceSuffix = Annotated[str, Field(min_length=1, max_length=NAMESPACE_MAX), AfterValidator(_dns_label)]
SUFFIX_RULE = {"rule": "self.all(s, !s.contains('-'))",
               "message": ("namespace suffixes are lower-case letters and digits only (no '-'), so that "
                           "<tenant>-<suffix> can never be another tenant's namespace")}
# Tenant names that would make platform or Kubernetes namespaces (kube-system, yunshang-system, ...)
RESERVED_NAMES = ("default", "system")
RESERVED_PREFIXES = ("kube", "yunshang", "openshift")


def reserved_problem(name: str) -> str | None:
    """Why a tenant may not be called ``name`` (its namespaces would be the platform's), or None."""
    if name in RESERVED_NAMES:
        return f"tenant name {name!r} is reserved; choose another name"
    for p in RESERVED_PREFIXES:
        if name == p or name.startswith(p + "-"):
            return f"tenant name {name!r} is reserved: names '{p}' and '{p}-...' make the platform's own namespaces; choose another name"
    return None


def suffix_problem(tenant: str, suffix: str) -> str | None:
    """Why ``suffix`` may not be one of ``tenant``'s namespace suffixes (it could name another tenant's)."""
    if SUFFIX.fullmatch(suffix):
        return None
    head, _, tail = suffix.rpartition("-")
    return (f"tenant {tenant}: namespace suffix {suffix!r} may contain only lower-case letters and digits: "
            f"{tenant}-{suffix} could be tenant {tenant}-{head}'s namespace {tail!r}; use e.g. {suffix.replace('-', '')!r}"
            if head and tail else
            f"tenant {tenant}: namespace suffix {suffix!r} may contain only lower-case letters and digits")


RESERVED_RULE = {
    "rule": (" && ".join(f"self.metadata.name != '{n}'" for n in RESERVED_NAMES) + " && " +
             " && ".join(f"self.metadata.name != '{p}' && !self.metadata.name.startsWith('{p}-')"
                         for p in RESERVED_PREFIXES)),
    "message": ("tenant names default, system, kube, yunshang, openshift and names starting with kube-, yunshang- "
                "or openshift- are reserved for the platform's own namespaces"),
}
TenantName = Annotated[str, Field(min_length=2, max_length=TENANT_NAME_MAX), AfterValidator(_dns_label)]


class Level(str, enum.Enum):
    """Administrative level (五级): a city tenant sits under a province, a county under a city, a
    township (乡镇) under a county, a village (村) under a township."""

    province = "province"
    city = "city"
    county = "county"
    township = "township"
    village = "village"


LEVELS = list(Level)  # top to bottom
PARENT_LEVEL = {child: parent for parent, child in zip(LEVELS, LEVELS[1:])}
CHILD_LEVEL = {parent: child for child, parent in PARENT_LEVEL.items()}


class Classification(str, enum.Enum):
    """Data classification of what the tenant holds (decides what it may share, and with whom)."""

    public = "public"
    internal = "internal"
    sensitive = "sensitive"
    secret = "secret"


class Department(Model):
    code: str = Field(min_length=2, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    """The department's official code, e.g. 520000-DSJ."""
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
    """The department's full name, in any script, e.g. 贵州省大数据发展管理局."""


class Owner(Model):
    kind: Literal["User", "Group"] = "User"
    """User or Group, as the API server authenticates it."""
    name: str = Field(min_length=1, max_length=253, pattern=r"^[^\s]+$")
    """User or group name; owners are admins inside the tenant's namespaces only."""


class Quota(Model):
    """Resources for the whole tenant; split evenly over its namespaces' ResourceQuotas."""

    cpu: Quantity = "2"
    """CPU requests, e.g. 4 or 500m."""
    memory: Quantity = "4Gi"
    """Memory requests, e.g. 8Gi."""
    storage: Quantity = "10Gi"
    """Persistent volume requests, e.g. 100Gi."""
    pods: int = Field(default=20, ge=0, le=100_000)
    """Number of pods."""
    services: int = Field(default=10, ge=0, le=100_000)
    """Number of services."""
    configmaps: int = Field(default=50, ge=0, le=100_000)
    """Number of config maps."""
    secrets: int = Field(default=50, ge=0, le=100_000)
    """Number of secrets."""
    persistentvolumeclaims: int = Field(default=10, ge=0, le=100_000)
    """Number of persistent volume claims."""

    def amounts(self) -> dict[str, Decimal]:
        """Every resource as an exact number (quantities parsed)."""
        return {
            k: to_decimal(v) if isinstance(v, str) else Decimal(v)
            for k, v in self.model_dump().items()
        }

    def fits_within(self, other: "Quota") -> list[str]:
        """Names of the resources where this quota exceeds ``other``."""
        mine, theirs = self.amounts(), other.amounts()
        return [k for k in mine if mine[k] > theirs[k]]


class QuotaBound(Model):
    """A bound on the quota; a resource left out is bounded by the quota itself."""

    cpu: Quantity | None = None
    memory: Quantity | None = None
    storage: Quantity | None = None
    pods: int | None = Field(default=None, ge=0, le=100_000)
    services: int | None = Field(default=None, ge=0, le=100_000)
    configmaps: int | None = Field(default=None, ge=0, le=100_000)
    secrets: int | None = Field(default=None, ge=0, le=100_000)
    persistentvolumeclaims: int | None = Field(default=None, ge=0, le=100_000)

    def over(self, quota: Quota) -> Quota:
        return Quota.model_validate({**quota.model_dump(), **self.model_dump(exclude_none=True)})


class ElasticSignal(str, enum.Enum):
    requests = "requests"
    usage = "usage"


class Elastic(Model):
    enabled: bool = False
    """Let monitoring grow and shrink the quota between floor and ceiling."""
    signal: ElasticSignal = ElasticSignal.requests
    """What the quota is measured against: `requests`, what the tenant's pods ask for (the quota's
    own used/hard, every node); `usage`, what they really use (the kubelets' measurements, real
    nodes only: a pod burning CPU under its limit makes the quota grow, an idle one lets it shrink)."""
    floor: QuotaBound | None = None
    """The least the quota may shrink to (default: the requested quota)."""
    ceiling: QuotaBound | None = None
    """The most the quota may grow to, as approved (default: the requested quota)."""


class ServiceType(str, enum.Enum):
    NodePort = "NodePort"
    LoadBalancer = "LoadBalancer"


# an image registry (host[:port]) or a path under one, e.g. registry.gz.gov.local or registry.gz.gov.local/police
Registry = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")]


def _ip(v: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address (e.g. 10.20.0.15)") from None


IPAddress = Annotated[str, Field(min_length=2, max_length=45), AfterValidator(_ip)]
# a host name, or *.<domain> (every host under it)
Hostname = Annotated[str, Field(min_length=1, max_length=253,
                                pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")]


class Allowed(Model):
    """What the tenant may use beyond the basics; the API server refuses anything else."""

    registries: list[Registry] = Field(default_factory=list, max_length=32)
    """Image registries the tenant's pods may pull from, as the image's prefix (empty: the platform's default)."""
    storage_classes: list[DnsLabel] = Field(default_factory=list, max_length=32)
    """Storage classes the tenant's PVCs may name (a PVC naming none gets the cluster's default)."""
    ingress_classes: list[DnsLabel] = Field(default_factory=list, max_length=32)
    """Ingress classes the tenant's Ingresses may name."""
    service_types: list[ServiceType] = Field(default_factory=list, max_length=2)
    """Service types beyond ClusterIP the tenant may create (NodePort, LoadBalancer; default: none)."""
    external_ips: list[IPAddress] = Field(default_factory=list, max_length=16, alias="externalIPs")
    """Addresses the tenant's Services may claim as spec.externalIPs (default: none; an external IP
    intercepts the traffic for that address cluster-wide)."""
    hostnames: list[Hostname] = Field(default_factory=list, max_length=32)
    """Hostnames the tenant's Ingresses may serve: a host, or *.<domain> for every host under it
    (default: <tenant>.<suffix> and *.<tenant>.<suffix> for each of the platform's suffixes).  No two
    tenants may be allowed the same host: the operator holds a tenant whose hostnames overlap
    another's (the older keeps them)."""


class Contact(Model):
    """Someone who must act on the tenant's alerts: Alertmanager posts them to this webhook."""

    name: DnsLabel
    """A short name for the contact, e.g. oncall or security-officer."""
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")
    """Webhook URL (Alertmanager's webhook format), e.g. https://im.gz.gov.local/hooks/police-oncall."""


class DeletionPolicy(str, enum.Enum):
    """What happens to the tenant's namespaces (and their data) when the tenant is deleted."""

    Retain = "Retain"
    Delete = "Delete"


class TenantRequest(Model):
    """What a department asks for; the platform bureau approves it before anything exists."""

    department: Department
    """The department this tenant belongs to."""
    level: Level
    """province, city, county, township or village; a village tenant has exactly one namespace."""
    parent: TenantName | None = None
    """The tenant this one's quota is carved out of: a city's is a province, a county's a city, a
    township's a county, a village's a township (required for every level but province)."""
    owners: list[Owner] = Field(min_length=1, max_length=32)
    """Who administers the tenant's namespaces."""
    purpose: str = Field(min_length=1, max_length=512)
    """What the tenant is for, in plain words."""
    project: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    """Reference of the approved IT project (立项), e.g. GZ-IT-2026-0042."""
    classification: Classification = Classification.internal
    """Data classification of the tenant's data."""
    namespaces: list[NamespaceSuffix] = Field(default_factory=lambda: ["main"], min_length=1, max_length=16,
                                              json_schema_extra={"x-kubernetes-validations": [SUFFIX_RULE]})
    """Namespace suffixes, lower-case letters and digits; each becomes the namespace <tenant>-<suffix>."""
    quota: Quota = Field(default_factory=Quota)
    """Resources requested for the whole tenant."""
    elastic: Elastic = Field(default_factory=Elastic)
    """Elastic quota bounds (approved with the request)."""
    allowed: Allowed = Field(default_factory=Allowed)
    """Registries, storage classes and ingress classes the tenant may use."""
    review_date: dt.date | None = None
    """When the tenant is due for review: an alert comes some days before; past it and a grace period
    the tenant is suspended (data kept) until the platform bureau sets a new date."""
    contacts: list[Contact] = Field(default_factory=list, max_length=8)
    """Who receives the tenant's alerts (the platform's ops team receives them too)."""
    deletion_policy: DeletionPolicy = DeletionPolicy.Retain
    """Retain keeps the namespaces and their data when the tenant is deleted; Delete removes them."""

    @model_validator(mode="after")
    def _consistent(self) -> "TenantRequest":
        if self.level == Level.province and self.parent:
            raise ValueError("a province tenant has no parent")
        if self.level != Level.province and not self.parent:
            raise ValueError(f"a {self.level.value} tenant needs a parent ({PARENT_LEVEL[self.level].value} tenant)")
        if len(set(self.namespaces)) != len(self.namespaces):
            raise ValueError("namespaces must be unique")
        if self.level == Level.village and len(self.namespaces) != 1:
            raise ValueError("a village tenant has exactly one namespace")
        if over := self.floor().fits_within(self.quota):
            raise ValueError(f"elastic.floor is above the quota for {', '.join(over)}")
        if under := self.quota.fits_within(self.ceiling()):
            raise ValueError(f"quota is above elastic.ceiling for {', '.join(under)}")
        return self

    def ceiling(self) -> Quota:
        """The approved ceiling: the quota, raised where elastic.ceiling says."""
        return self.elastic.ceiling.over(self.quota) if self.elastic.ceiling else self.quota

    def floor(self) -> Quota:
        """The floor: the quota, lowered where elastic.floor says."""
        return self.elastic.floor.over(self.quota) if self.elastic.floor else self.quota


class Decision(str, enum.Enum):
    Approved = "Approved"
    Rejected = "Rejected"


class Approval(Model):
    """Set by the platform bureau only (enforced by the API server)."""

    decision: Decision
    """Approved or Rejected."""
    by: str = Field(min_length=1, max_length=253)
    """Who decided (must be the requesting user: checked by the admission policy)."""
    reason: str = Field(default="", max_length=1024)
    """Why (required for a rejection)."""
    at: dt.datetime | None = None
    """When the decision was made."""

    @model_validator(mode="after")
    def _reason(self) -> "Approval":
        if self.decision == Decision.Rejected and not self.reason:
            raise ValueError("a rejection needs a reason")
        return self


class SignOff(Model):
    """One reviewer role's decision on one round of a tenant's request (parallel sign-off, 并联审批).
    Appended by a member of that role's group only; never changed or removed (the API server
    enforces both)."""

    role: DnsLabel
    """The reviewer role, e.g. platform, security or finance (group yunshang:reviewer:<role>)."""
    decision: Decision
    """Approved or Rejected."""
    by: str = Field(min_length=1, max_length=253)
    """Who decided (must be the requesting user: checked by the admission policy)."""
    at: dt.datetime | None = None
    """When."""
    reason: str = Field(default="", max_length=1024)
    """Why (required for a rejection)."""
    round: int = Field(default=1, ge=1, le=1000)
    """The round of the request this decides (spec.requestRound when it was recorded)."""
    quota: Quota
    """The quota asked for in that round (spec.quota when it was recorded)."""

    @model_validator(mode="after")
    def _reason(self) -> "SignOff":
        if self.decision == Decision.Rejected and not self.reason:
            raise ValueError("a rejection needs a reason")
        return self


SIGNOFFS_MAX = 48


class Quarantine(Model):
    """Set by the platform's automatic response (an alert) or the bureau; cleared by `tenant resume`."""

    reason: str = Field(min_length=1, max_length=1024)
    """Why, e.g. the alert's summary."""
    alert: str = Field(default="", max_length=253)
    """The alert that caused it, if any."""
    at: dt.datetime | None = None
    """When the tenant was quarantined."""


class TenantSpec(TenantRequest):
    approval: Approval | None = None
    """Approved outside parallel sign-off: before it existed, or when the git-reviewed catalog is
    created by the platform; read as every role's approval of round 1 (nobody can add or change it)."""
    request_round: int = Field(default=1, ge=1, le=1000)
    """Which request the sign-offs answer: 1 is the tenant's request; a department asking for
    more quota than approved raises it by one (a new round of sign-off)."""
    signoffs: list[SignOff] = Field(default_factory=list, max_length=SIGNOFFS_MAX)
    """Each reviewer role's decision per round, append-only (see `yunshang tenant approve`)."""
    suspended: bool = False
    """A suspended tenant keeps its data but cannot run new pods (platform bureau only)."""
    suspend_reason: str = Field(default="", max_length=1024)
    """Why the tenant was suspended."""
    quarantine: Quarantine | None = None
    """Quarantined: no new pods, no traffic but the platform's own, data kept (platform only)."""


class Phase(str, enum.Enum):
    Pending = "Pending"
    Approved = "Approved"
    Provisioning = "Provisioning"
    Ready = "Ready"
    Suspended = "Suspended"
    Rejected = "Rejected"
    Terminating = "Terminating"
    Conflict = "Conflict"
    """Held: a namespace or hostname it would take belongs to another tenant (nothing is taken over)."""


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: dt.datetime | None = None


class NamespaceUsage(Model):
    name: str
    hard: dict[str, str] = Field(default_factory=dict)
    used: dict[str, str] = Field(default_factory=dict)


class RoleStatus(Model):
    role: str
    decision: Literal["Pending", "Approved", "Rejected"]
    """Pending, Approved or Rejected."""
    by: str = ""
    at: dt.datetime | None = None
    reason: str = ""
    deadline: dt.datetime | None = None
    """When a pending decision is due (stack config yunshang:signoff.tenantDays)."""
    overdue: bool = False


class SignOffStatus(Model):
    round: int
    """The round being decided."""
    state: Literal["Pending", "Approved", "Rejected"]
    """Pending, Approved or Rejected (of that round)."""
    opened: dt.datetime | None = None
    """When the round was opened (its decisions are due from then)."""
    approved_round: int | None = None
    """The newest round every role approved."""
    roles: list[RoleStatus] = Field(default_factory=list)


class TenantStatus(Model):
    phase: Phase = Phase.Pending
    """Where the tenant is in its life."""
    message: str = ""
    """A one-line explanation of the phase."""
    observed_generation: int = 0
    """The spec generation the operator last acted on."""
    conditions: list[Condition] = Field(default_factory=list)
    namespaces: list[NamespaceUsage] = Field(default_factory=list)
    """Per namespace: quota hard and used."""
    namespace_count: int = 0
    signoff: SignOffStatus | None = None
    """Each reviewer role's decision on the current round, with deadlines."""


class Tenant(Model):
    api_version: Literal["platform.yunshang.io/v1alpha1"] = API_VERSION
    kind: Literal["Tenant"] = "Tenant"
    metadata: dict
    spec: TenantSpec
    status: TenantStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata["name"]


def namespace_names(tenant: str, spec: TenantRequest) -> list[str]:
    return [f"{tenant}-{s}" for s in spec.namespaces]


def check_tenant_name(name: str, spec: TenantRequest | None = None) -> str:
    """Validate a new tenant's name: its shape, not reserved, its namespaces its own alone and
    within 63 characters."""
    if not 2 <= len(name) <= TENANT_NAME_MAX or not DNS_LABEL.fullmatch(name):
        raise ValueError(
            f"tenant name {name!r} must be 2-{TENANT_NAME_MAX} lower-case letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    if problem := reserved_problem(name):
        raise ValueError(problem)
    for suffix in spec.namespaces if spec else []:
        if problem := suffix_problem(name, suffix):
            raise ValueError(problem)
    for ns in namespace_names(name, spec) if spec else []:
        if len(ns) > NAMESPACE_MAX:
            raise ValueError(f"namespace {ns!r} is longer than {NAMESPACE_MAX} characters")
    return name
