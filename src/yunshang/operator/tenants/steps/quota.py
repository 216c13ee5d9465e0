"""Step 2: quota and limits per namespace (no pods while suspended, quarantined or past review)."""
from __future__ import annotations

from .... import tenancy
from ....models.tenant import TenantSpec

KINDS = ("ResourceQuota", "LimitRange")


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict]:
    return tenancy.quota_objects(tenant, uid, spec, lapsed)
