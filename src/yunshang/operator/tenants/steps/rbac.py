"""Step 3: the owners' RoleBinding to `admin` in each namespace."""
from __future__ import annotations

from typing import Any

from .... import tenancy
from ....models.tenant import TenantSpec, namespace_names

KINDS = ("RoleBinding",)


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict[str, Any]]:
    """Per namespace: the owners bound to `admin` (inside their namespaces only)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": tenancy.child_meta(tenancy.OWNERS_BINDING, tenant, uid, ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": o.kind, "name": o.name, "apiGroup": "rbac.authorization.k8s.io"} for o in spec.owners],
        }
        for ns in namespace_names(tenant, spec)
    ]
