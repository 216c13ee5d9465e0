"""Need-to-know: what a department may read, as pure functions.

RBAC cannot filter a list of cluster-scoped objects by name: a department allowed to list
Tenants, ShareAgreements or AuditRecords sees every department's.  So departments may not list
them at all; per department the operator keeps
- a ClusterRole (and its binding to group yunshang:dept:<tenant>) naming exactly its tenant and
  the agreements it is a party to: get, watch, update and patch by name;
- a view in namespace yunshang-views: the ConfigMap dept-<tenant> with those agreements and the
  newest audit records that concern it (JSON), readable by that group only (a Role naming it).
The catalogue (ShareOffers) stays readable by every department: it is meant to be found.
Platform admins keep reading everything.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .models.tenant import dept_group
from .tenancy import MANAGED_BY, owner_reference

VIEWS_NAMESPACE = "yunshang-views"
AUDIT_KEPT = 200  # newest records per department in its view
LABEL_VIEW = "platform.yunshang.io/view-of"


def view_name(tenant: str) -> str:
    return f"dept-{tenant}"


def role_name(tenant: str) -> str:
    return f"yunshang:dept:{tenant}"


def parties(agreement: Mapping[str, Any]) -> tuple[str, str]:
    s = agreement.get("spec") or {}
    return s.get("consumer", ""), s.get("provider", "")


def _slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata") or {}
    return {"metadata": {"name": md.get("name"), "creationTimestamp": md.get("creationTimestamp"),
                         "labels": md.get("labels") or {}},
            "spec": obj.get("spec") or {}, "status": obj.get("status") or {}}


def desired(tenant: str, uid: str, agreements: Iterable[Mapping[str, Any]],
            audit: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects of one department's need-to-know: its ClusterRole and binding, its view and
    the Role and RoleBinding that let it read the view; owned by the tenant (they go with it)."""
    mine = sorted((a for a in agreements if tenant in parties(a)), key=lambda a: a["metadata"]["name"])
    records = sorted((r for r in audit if tenant in (r.get("tenants") or [])), key=lambda r: r.get("seq", 0))
    records = records[-AUDIT_KEPT:]
    labels = {**MANAGED_BY, LABEL_VIEW: tenant}
    owned = {"labels": labels, "ownerReferences": [owner_reference(tenant, uid)]}
    group = {"kind": "Group", "name": dept_group(tenant), "apiGroup": "rbac.authorization.k8s.io"}
    rules = [{"apiGroups": ["platform.yunshang.io"], "resources": ["tenants"], "resourceNames": [tenant],
              "verbs": ["get", "watch", "update", "patch"]}]
    if mine:
        rules.append({"apiGroups": ["platform.yunshang.io"], "resources": ["shareagreements"],
                      "resourceNames": [a["metadata"]["name"] for a in mine], "verbs": ["get", "watch", "update", "patch"]})
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role_name(tenant), **owned}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role_name(tenant), **owned},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name(tenant)},
         "subjects": [group]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": view_name(tenant), "namespace": VIEWS_NAMESPACE, **owned},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [view_name(tenant)],
                    "verbs": ["get", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": view_name(tenant), "namespace": VIEWS_NAMESPACE, **owned},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": view_name(tenant)},
         "subjects": [group]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": view_name(tenant), "namespace": VIEWS_NAMESPACE, **owned},
         "data": {"agreements.json": json.dumps([_slim(a) for a in mine], ensure_ascii=False, sort_keys=True),
                  "audit.json": json.dumps(records, ensure_ascii=False, sort_keys=True, default=str)}},
    ]
