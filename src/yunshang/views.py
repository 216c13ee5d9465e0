"""Need-to-know: what a department may read, as pure functions.

RBAC cannot filter a list of cluster-scoped objects by name: a department allowed to list
Tenants, ShareAgreements or AuditRecords sees every department's.  So departments may not list
them at all.  What a department may read by name is decided by `authorize`, which the operator
serves to the API server as an authorization webhook (after Node and RBAC, for department
identities asking for these three kinds only, `authorization_config`):
- its own tenant (group yunshang:dept:<tenant> asks for tenants/<tenant>): get, watch, update, patch;
- the agreements it is a party to (consumer or provider): the same verbs;
- its view, the ConfigMap dept-<tenant> in namespace yunshang-views, with those agreements and the
  newest audit records that concern it (JSON): get, watch.  The operator keeps the views.
Anything else it is not allowed (the webhook has no opinion, so the request is forbidden).

Why not RBAC objects per department (a ClusterRole naming its tenant and agreements, and its
binding; the shape until 2026-12): the API server's RBAC authorizer walks every
ClusterRoleBinding for every request of every identity that is not privileged, so each
department made every department's requests (and the controllers') slower.  The decision here
costs the same whatever the number of departments: a tenant's group is its name, and an
agreement's parties are one lookup in the operator's cache.
The catalogue (ShareOffers) stays readable by every department through RBAC: it is meant to be found.
Platform admins keep reading everything.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Mapping

from .models.tenant import DEPT_GROUP_PREFIX, GROUP, dept_group
from .tenancy import MANAGED_BY, owner_reference

VIEWS_NAMESPACE = "yunshang-views"
AUDIT_KEPT = 200  # newest records per department in its view
LABEL_VIEW = "platform.yunshang.io/view-of"


VIEW_PREFIX = "dept-"


def view_name(tenant: str) -> str:
    return VIEW_PREFIX + tenant


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


def agreements_json(mine: Iterable[Mapping[str, Any]]) -> str:
    """A department's agreements as its view holds them (by name)."""
    return json.dumps([_slim(a) for a in sorted(mine, key=lambda a: a["metadata"]["name"])],
                      ensure_ascii=False, sort_keys=True)


def record_json(record: Mapping[str, Any]) -> str:
    """One audit record (its spec) as a view holds it."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)


def audit_json(records: Iterable[str]) -> str:
    """The view's audit.json from records already in `record_json` form, oldest first."""
    return "[" + ", ".join(records) + "]"


def view(tenant: str, uid: str, agreements: str, audit: str) -> dict[str, Any]:
    """One department's view (a ConfigMap in yunshang-views), owned by its tenant (it goes with it)."""
    labels = {**MANAGED_BY, LABEL_VIEW: tenant}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": view_name(tenant), "namespace": VIEWS_NAMESPACE, "labels": labels,
                         "ownerReferences": [owner_reference(tenant, uid)]},
            "data": {"agreements.json": agreements, "audit.json": audit}}


def desired(tenant: str, uid: str, agreements: Iterable[Mapping[str, Any]],
            audit: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects of one department's need-to-know: its view (the rest is `authorize`'s)."""
    mine = [a for a in agreements if tenant in parties(a)]
    records = sorted((r for r in audit if tenant in (r.get("tenants") or [])), key=lambda r: r.get("seq", 0))
    return [view(tenant, uid, agreements_json(mine), audit_json(record_json(r) for r in records[-AUDIT_KEPT:]))]


# ---------------------------------------------------------------------------- the authorizer

TENANT_VERBS = frozenset({"get", "watch", "update", "patch"})
VIEW_VERBS = frozenset({"get", "watch"})


def authorize(spec: Mapping[str, Any], agreement_parties: Callable[[str], Iterable[str]]) -> str | None:
    """Why a SubjectAccessReview's spec (authorization.k8s.io/v1) is allowed, or None (no opinion:
    the request is forbidden).  ``agreement_parties(name)``: the consumer and provider of that
    agreement (empty if there is none)."""
    attrs = spec.get("resourceAttributes") or {}
    name, verb = attrs.get("name") or "", attrs.get("verb") or ""
    groups = set(spec.get("groups") or ())
    if not name or attrs.get("subresource"):
        return None  # a list, or status and the like: never by department
    group, resource, namespace = attrs.get("group") or "", attrs.get("resource") or "", attrs.get("namespace") or ""
    if group == GROUP and resource == "tenants" and not namespace and verb in TENANT_VERBS:
        return f"its own tenant {name}" if dept_group(name) in groups else None
    if group == GROUP and resource == "shareagreements" and not namespace and verb in TENANT_VERBS:
        party = next((p for p in agreement_parties(name) if p and dept_group(p) in groups), None)
        return f"{party} is a party to agreement {name}" if party else None
    if group == "" and resource == "configmaps" and namespace == VIEWS_NAMESPACE and verb in VIEW_VERBS:
        tenant = name[len(VIEW_PREFIX):] if name.startswith(VIEW_PREFIX) else ""
        return f"the view of its own tenant {tenant}" if tenant and dept_group(tenant) in groups else None
    return None


def webhook_kubeconfig(url: str, ca_file: str, *, token: str = "", token_file: str = "") -> dict[str, Any]:
    """The kubeconfig kube-apiserver reaches one of the operator's webhooks with (its /audit,
    /authorize): the URL, the CA of the operator's certificate, the bearer token or a file holding it."""
    user = {"tokenFile": token_file} if token_file else {"token": token}
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "yunshang-operator", "cluster": {"server": url, "certificate-authority": ca_file}}],
            "users": [{"name": "kube-apiserver", "user": user}],
            "contexts": [{"name": "default", "context": {"cluster": "yunshang-operator", "user": "kube-apiserver"}}],
            "current-context": "default"}


def authorization_config(kubeconfig: str, timeout: str = "3s", authorized_ttl: str = "10s") -> dict[str, Any]:
    """The API server's AuthorizationConfiguration (--authorization-config): Node, RBAC, then the
    operator's webhook (``kubeconfig``: an absolute path to a kubeconfig naming its URL, CA and
    token) for department identities asking by name for a tenant, an agreement or a view only;
    when the operator cannot answer, those requests are refused (fail closed).  A refusal is not
    cached (a party may read its new agreement as soon as the operator has seen it); an
    allowance is, for ``authorized_ttl``."""
    a = "request.resourceAttributes"
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthorizationConfiguration",
        "authorizers": [
            {"type": "Node", "name": "node"},
            {"type": "RBAC", "name": "rbac"},
            {"type": "Webhook", "name": "yunshang-need-to-know", "webhook": {
                "timeout": timeout, "authorizedTTL": authorized_ttl, "unauthorizedTTL": "1s",
                "cacheUnauthorizedRequests": False,
                "subjectAccessReviewVersion": "v1", "matchConditionSubjectAccessReviewVersion": "v1",
                "failurePolicy": "Deny",
                "connectionInfo": {"type": "KubeConfigFile", "kubeConfigFile": kubeconfig},
                "matchConditions": [
                    {"expression": f"has(request.groups) && request.groups.exists(g, g.startsWith('{DEPT_GROUP_PREFIX}'))"},
                    {"expression": f"has({a}) && has({a}.name) && has({a}.resource)"},
                    {"expression": f"{a}.resource in ['tenants', 'shareagreements', 'configmaps']"},
                ],
            }},
        ],
    }
