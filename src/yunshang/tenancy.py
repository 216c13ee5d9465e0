"""What every part of the platform says about tenants: pure functions of a tenant's spec (no I/O
here): the quota split, the hierarchy, hostnames, the review, the phase, the comparison of a
desired object with a live one, the labels and names.  The objects a tenant owns are built by the
operator's steps (yunshang.operator.tenants.steps), each with `child_meta`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Callable, Iterable, Mapping

from .models.quantity import format_quantity
from .models.tenant import (
    API_VERSION,
    Decision,
    Level,
    PARENT_LEVEL,
    Phase,
    Quota,
    TenantSpec,
)

LABEL_TENANT = "platform.yunshang.io/tenant"
LABEL_RETAINED = "platform.yunshang.io/retained-from"
LABEL_LEVEL = "platform.yunshang.io/level"
LABEL_CLASSIFICATION = "platform.yunshang.io/classification"
LABEL_QUARANTINE = "platform.yunshang.io/quarantined"
MANAGED_BY_KEY, MANAGED_BY_VALUE = "app.kubernetes.io/managed-by", "yunshang"
MANAGED_BY = {MANAGED_BY_KEY: MANAGED_BY_VALUE}
# what a tenant may use, on each of its namespaces for the admission policy (policies.tenant_controls)
ANN_REGISTRIES = "platform.yunshang.io/allowed-registries"
ANN_STORAGE_CLASSES = "platform.yunshang.io/allowed-storage-classes"
ANN_INGRESS_CLASSES = "platform.yunshang.io/allowed-ingress-classes"
ANN_SERVICE_TYPES = "platform.yunshang.io/allowed-service-types"
ANN_EXTERNAL_IPS = "platform.yunshang.io/allowed-external-ips"
ANN_HOSTNAMES = "platform.yunshang.io/allowed-hostnames"
SYSTEM_NAMESPACE = "yunshang-system"
MONITORING_NAMESPACE = "yunshang-monitoring"

QUOTA_NAME = "tenant-quota"
LIMITRANGE_NAME = "tenant-defaults"
OWNERS_BINDING = "tenant-owners"

# quota field -> ResourceQuota key
QUOTA_KEYS = {
    "cpu": "requests.cpu",
    "memory": "requests.memory",
    "storage": "requests.storage",
    "pods": "pods",
    "services": "services",
    "configmaps": "configmaps",
    "secrets": "secrets",
    "persistentvolumeclaims": "persistentvolumeclaims",
}
BINARY = {"memory", "storage"}


# ---------------------------------------------------------------------------- quotas

def split_quota(quota: Quota, parts: int) -> dict[str, str]:
    """One namespace's share of the tenant quota (rounded down so the shares never exceed it)."""
    out = {}
    for field, amount in quota.amounts().items():
        if field in ("cpu",):
            share = (amount * 1000 / parts).to_integral_value(ROUND_FLOOR) / 1000
        else:
            share = (amount / parts).to_integral_value(ROUND_FLOOR)
        out[QUOTA_KEYS[field]] = format_quantity(share, binary=field in BINARY)
    return out


def quota_left(parent: Quota, children: Iterable[Quota]) -> dict[str, Decimal]:
    """What a parent has not yet carved out for its children."""
    left = parent.amounts()
    for child in children:
        for k, v in child.amounts().items():
            left[k] -= v
    return left


def describe_amounts(amounts: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{k} {format_quantity(max(v, Decimal(0)), binary=k in BINARY)}" for k, v in amounts.items())


def hierarchy_problem(
    name: str,
    spec: TenantSpec,
    parent_name: str | None,
    parent: TenantSpec | None,
    siblings: Mapping[str, TenantSpec],
    parent_approved: bool | None = None,
) -> str | None:
    """Why this tenant cannot be carved out of its parent, or None if it can.

    ``siblings`` are the parent's other approved children (this tenant excluded).
    The ceiling counts, not just the quota: elastic growth must fit too.
    ``parent_approved``: the parent's sign-off verdict (None: read its legacy approval).
    """
    if spec.level == Level.province:
        return None
    if parent is None:
        return f"parent tenant {parent_name!r} does not exist"
    if parent.level != PARENT_LEVEL[spec.level]:
        return (
            f"a {spec.level.value} tenant needs a {PARENT_LEVEL[spec.level].value} parent, "
            f"but {parent_name!r} is a {parent.level.value}"
        )
    if parent_approved is None:
        parent_approved = parent.approval is not None and parent.approval.decision == Decision.Approved
    if not parent_approved:
        return f"parent tenant {parent_name!r} is not approved yet"
    left = quota_left(parent.ceiling(), (s.ceiling() for n, s in siblings.items() if n != name))
    asked = spec.ceiling().amounts()
    over = {k: v for k, v in asked.items() if v > left[k]}
    if over:
        return (
            f"quota over parent {parent_name!r}: asked {describe_amounts(over)}; "
            f"left {describe_amounts({k: left[k] for k in over})}"
        )
    return None


def parent_chain_has_cycle(name: str, parents: Mapping[str, str | None]) -> bool:
    seen = {name}
    cur = parents.get(name)
    while cur:
        if cur in seen:
            return True
        seen.add(cur)
        cur = parents.get(cur)
    return False


# ---------------------------------------------------------------------------- hostnames

DEFAULT_HOST_SUFFIXES = ["apps.gz.gov.local"]  # stack config yunshang:defaultHostSuffixes


def default_hostnames(tenant: str, suffixes: Iterable[str]) -> list[str]:
    """What a tenant that names no hostnames may serve: its own name under each platform suffix."""
    return [h for s in suffixes for h in (f"{tenant}.{s}", f"*.{tenant}.{s}")]


def _covers(pattern: str, host: str) -> bool:
    """Does the allowed ``pattern`` (a host, or *.<domain>: every host under it) take in ``host``?"""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def hosts_overlap(a: str, b: str) -> bool:
    """Can an Ingress host be allowed by both ``a`` and ``b``?"""
    return _covers(a, b) or _covers(b, a)


def hostname_problem(tenant: str, spec: TenantSpec, others: Mapping[str, TenantSpec], older: Callable[[str], bool],
                     suffixes: Iterable[str]) -> str | None:
    """Why ``tenant`` may not have the hostnames it is allowed, or None.  Under a platform suffix a
    tenant gets its own name's subtree only; elsewhere no two tenants may be allowed overlapping
    hostnames: the one that came first (``older(other)``: ``other`` came before ``tenant``) keeps them."""
    suffixes = list(suffixes)
    for host in spec.allowed.hostnames:
        for sfx in suffixes:
            own = f"{tenant}.{sfx}"
            if hosts_overlap(host, f"*.{sfx}") and not (host == own or _covers(f"*.{own}", host)):
                return (f"tenant {tenant}: hostname {host} is under the platform's suffix {sfx}, where tenant "
                        f"{tenant} may use only {own} and *.{own}; ask the platform bureau to correct spec.allowed.hostnames")
        for other, ospec in sorted(others.items()):
            if other == tenant or not older(other):
                continue
            for theirs in ospec.allowed.hostnames:
                if hosts_overlap(host, theirs):
                    return (f"tenant {tenant}: hostname {host} overlaps {theirs}, allowed to tenant {other} first; "
                            "ask the platform bureau to remove it from one of them (nothing was changed)")
    return None


# ---------------------------------------------------------------------------- phase

@dataclasses.dataclass(frozen=True)
class Review:
    """Where a tenant stands against its reviewDate."""

    days_left: int | None  # None: no review date
    due: bool  # within the warning window (or past it)
    lapsed: bool  # past the date and the grace period: suspended until a new date is set


def review_state(review_date: dt.date | None, today: dt.date, warn_days: int, grace_days: int) -> Review:
    if review_date is None:
        return Review(None, False, False)
    left = (review_date - today).days
    return Review(left, left <= warn_days, left < -grace_days)


def review_message(review_date: dt.date, grace_days: int) -> str:
    return (f"review date {review_date.isoformat()} passed ({grace_days} days of grace ended): suspended, data kept; "
            "the platform bureau sets a new spec.reviewDate to resume")


REVIEW_LAPSED_PREFIX = "review date "


def phase_of(spec: TenantSpec, *, deleting: bool = False, blocked: str | None = None, provisioned: bool = False,
             lapsed: bool = False, signoff: str = "Approved") -> Phase:
    """``signoff``: Approved once every role approved a round (yunshang.signoff.Verdict: approved
    at least once), else the current round's Pending or Rejected."""
    if deleting:
        return Phase.Terminating
    if signoff == "Pending":
        return Phase.Pending
    if signoff == "Rejected":
        return Phase.Rejected
    if blocked:
        return Phase.Approved
    if not provisioned:
        return Phase.Provisioning
    return Phase.Suspended if spec.suspended or spec.quarantine or lapsed else Phase.Ready


# ---------------------------------------------------------------------------- objects

def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Tenant",
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_meta(name: str, tenant: str, uid: str, namespace: str | None = None, labels=None,
               annotations=None) -> dict[str, Any]:
    """The metadata of an object a tenant owns: labelled as the platform's and the tenant's, owned by it."""
    md: dict[str, Any] = {
        "name": name,
        "labels": {LABEL_TENANT: tenant, **MANAGED_BY, **(labels or {})},
        "ownerReferences": [owner_reference(tenant, uid)],
    }
    if annotations:
        md["annotations"] = annotations
    if namespace:
        md["namespace"] = namespace
    return md


def key_of(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    md = obj["metadata"]
    return (obj["kind"], md.get("namespace") or "", md["name"])


# ---------------------------------------------------------------------------- comparison

def _quantity_equal(a: Any, b: Any) -> bool:
    from kubernetes.utils.quantity import parse_quantity

    try:
        return parse_quantity(a) == parse_quantity(b)
    except (ValueError, TypeError, ArithmeticError):
        return False


def is_subset(desired: Any, live: Any) -> bool:
    """True if every field we set has the same value in the live object.

    The API server adds defaults and canonicalises quantities, so "equal" means "what we
    declare is there" (lists compared element-wise, quantities by value).
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        # None: "not there" (a merge patch removes the key)
        return all((live.get(k) is None) if v is None else (k in live and is_subset(v, live[k]))
                   for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, l) for d, l in zip(desired, live))
    if desired == live:
        return True
    if isinstance(desired, (str, int)) and isinstance(live, (str, int)):
        return str(desired) == str(live) or _quantity_equal(desired, live)
    return False


def in_sync(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Is the live object what we want? Labels and owner refs must match too; lists exactly."""
    if live is None:
        return False
    if live.get("metadata", {}).get("deletionTimestamp"):
        return False
    want = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind")}
    md = dict(want["metadata"])
    md.pop("ownerReferences")
    want["metadata"] = md
    live_refs = live.get("metadata", {}).get("ownerReferences") or []
    if not any(r.get("uid") == desired["metadata"]["ownerReferences"][0]["uid"] for r in live_refs):
        return False
    # RoleBinding subjects and NetworkPolicy rules must match exactly, not as a subset
    return is_subset(want, live)
