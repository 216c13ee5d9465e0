"""Step 3: the owners' RoleBinding to `admin` in each namespace."""
from __future__ import annotations

from .... import tenancy
from ....models.tenant import TenantSpec

KINDS = ("RoleBinding",)


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict]:
    return tenancy.rbac_objects(tenant, uid, spec)
