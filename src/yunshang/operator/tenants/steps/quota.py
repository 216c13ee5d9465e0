"""Step 2: quota and limits per namespace (no pods while suspended, quarantined or past review)."""
from __future__ import annotations

from typing import Any

from .... import tenancy
from ....models.tenant import TenantSpec, namespace_names

KINDS = ("ResourceQuota", "LimitRange")


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict[str, Any]]:
    """Per namespace: the ResourceQuota (the tenant's quota split evenly; ``pods: 0`` while
    suspended, quarantined or past its review) and the LimitRange of default requests/limits."""
    namespaces = namespace_names(tenant, spec)
    hard = tenancy.split_quota(spec.quota, len(namespaces))
    if spec.suspended or spec.quarantine or lapsed:
        hard["pods"] = "0"
    out: list[dict[str, Any]] = []
    for ns in namespaces:
        out.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": tenancy.child_meta(tenancy.QUOTA_NAME, tenant, uid, ns),
                    "spec": {"hard": dict(hard)}})
        out.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": tenancy.child_meta(tenancy.LIMITRANGE_NAME, tenant, uid, ns),
                    "spec": {"limits": [{"type": "Container",
                                         "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                                         "default": {"cpu": "500m", "memory": "512Mi"}}]}})
    return out
