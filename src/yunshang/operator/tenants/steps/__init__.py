"""Reconcile as an ordered list of steps, one module per kind of child: each a pure
desired-state function of the tenant's spec; the reconciler applies what differs, namespaces
first, then the rest concurrently.  `status` says what the tenant's status should be."""
from __future__ import annotations

from typing import Any

from ....models.tenant import TenantSpec
from . import namespaces, network, quota, rbac

# namespaces first: everything else lives in them
ORDER = [namespaces, quota, rbac, network]
KINDS = tuple(kind for step in ORDER for kind in step.KINDS)
"""What a tenant owns, by kind (the reconciler watches each, by label)."""


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[list[dict[str, Any]]]:
    """The objects of each step, in order."""
    return [step.desired(tenant, uid, spec, lapsed) for step in ORDER]


def desired_objects(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict[str, Any]]:
    """Every object an approved tenant owns, namespaces first.  Suspended, quarantined or past its
    review (``lapsed``): no pods may run; everything else stays."""
    return [o for objs in desired(tenant, uid, spec, lapsed) for o in objs]
