"""Step 4: default-deny and the few paths the platform opens (DNS, monitoring, intra-tenant)."""
from __future__ import annotations

from .... import tenancy
from ....models.tenant import TenantSpec

KINDS = ("NetworkPolicy",)


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict]:
    return tenancy.network_objects(tenant, uid, spec)
