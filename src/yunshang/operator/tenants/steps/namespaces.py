"""Step 1: the tenant's namespaces (labels, Pod Security restricted, allowances as annotations)."""
from __future__ import annotations

from .... import tenancy
from ....models.tenant import TenantSpec

KINDS = ("Namespace",)


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict]:
    return tenancy.namespace_objects(tenant, uid, spec)
