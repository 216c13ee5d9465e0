"""Reconcile as an ordered list of steps, one module per kind of child: each a pure
desired-state function of the tenant's spec; the reconciler applies what differs, namespaces
first, then the rest concurrently.  `status` says what the tenant's status should be."""
from __future__ import annotations

from typing import Any

from ....models.tenant import TenantSpec
from . import namespaces, network, quota, rbac

# namespaces first: everything else lives in them
ORDER = [namespaces, quota, rbac, network]
KINDS = {kind for step in ORDER for kind in step.KINDS}


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[list[dict[str, Any]]]:
    """The objects of each step, in order."""
    return [step.desired(tenant, uid, spec, lapsed) for step in ORDER]
