"""Valid objects to start from; tests change one thing at a time."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from yunshang.models.tenant import ADMIN_GROUP, DEPARTMENTS_GROUP, dept_group

BASE_REQUEST: dict[str, Any] = {
    "department": {"code": "520000-DSJ", "name": "贵州省大数据发展管理局"},
    "level": "province",
    "owners": [{"kind": "User", "name": "li.wei"}],
    "purpose": "province data exchange",
    "project": "GZ-IT-2026-0042",
    "classification": "internal",
    "namespaces": ["main"],
    "quota": {"cpu": "8", "memory": "16Gi", "storage": "100Gi", "pods": 40, "services": 10,
              "configmaps": 40, "secrets": 40, "persistentvolumeclaims": 10},
}


def request(**changes: Any) -> dict[str, Any]:
    r = copy.deepcopy(BASE_REQUEST)
    r.update(changes)
    return r


def tenant(name: str, **changes: Any) -> dict[str, Any]:
    return {"apiVersion": "platform.yunshang.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name}, "spec": request(**changes)}


def approval(by: str = "admin", decision: str = "Approved", reason: str = "") -> dict[str, Any]:
    return {"decision": decision, "by": by, "reason": reason,
            "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def dept_groups(tenant_name: str) -> list[str]:
    return [DEPARTMENTS_GROUP, dept_group(tenant_name)]


ADMIN_GROUPS = [ADMIN_GROUP]


REVIEWER_ROLES = ("platform", "security", "finance")  # the default of stack config yunshang:signoff.roles


def reviewer_groups(*roles: str) -> list[str]:
    return [f"yunshang:reviewer:{r}" for r in (roles or REVIEWER_ROLES)]


def signoff(spec: dict[str, Any], role: str, by: str | None = None, decision: str = "Approved", reason: str = "",
            round: int | None = None) -> dict[str, Any]:
    """One role's decision on the spec's current round and quota, as `yunshang tenant approve` records it."""
    return {"role": role, "decision": decision, "by": by or f"{role}.reviewer", "reason": reason,
            "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "round": round or spec.get("requestRound", 1), "quota": copy.deepcopy(spec["quota"])}


def signed(spec: dict[str, Any], by: str | None = None, roles=REVIEWER_ROLES) -> list[dict[str, Any]]:
    """Every role approves the spec's current round."""
    return [signoff(spec, r, by=by) for r in roles]
