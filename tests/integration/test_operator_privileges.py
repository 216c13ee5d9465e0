"""What the operator's ServiceAccount can NOT do, asked as that account would (impersonated, against
the real API server with the platform's RBAC and admission policies), each beside a control request
of the same shape that the account may make.  Every write is a dry run: nothing is changed.

What it needs it holds (tests/integration/test_production_path.py runs the operator from its image
under this account and makes tenants Ready); what a stolen token of it could do is bounded here:
no Secrets of a tenant, no escalation through RBAC, no namespace or object outside the platform's,
no rewriting of cluster-admin or of the platform's roles.
"""
from __future__ import annotations

import uuid

import pytest

from helpers import Impersonated, policy_refused, rbac_refused, ready_tenant, wait_for

from yunshang.policies import OPERATOR_SCOPE_POLICY, OPERATOR_USER

DRY = "?dryRun=All"
SCOPE_WORDS = "it writes tenant namespaces and what is in them"


@pytest.fixture(scope="module")
def operator_account(kube_api):
    return Impersonated(kube_api, OPERATOR_USER, ["system:serviceaccounts", "system:serviceaccounts:yunshang-system",
                                                  "system:authenticated"])


@pytest.fixture(scope="module")
def tenant_ns(kube_api, operator):
    """A Ready tenant's namespace (made by the operator), with a Secret of the department's in it."""
    from kubernetes import client

    name = f"op{uuid.uuid4().hex[:5]}"
    ready_tenant(client.CustomObjectsApi(kube_api), name)
    core = client.CoreV1Api(kube_api)  # the department's view, from the views round
    wait_for(f"dept-{name}", lambda: core.list_namespaced_config_map(
        "yunshang-views", field_selector=f"metadata.name=dept-{name}").items)
    ns = f"{name}-main"
    client.CoreV1Api(kube_api).create_namespaced_secret(ns, {"metadata": {"name": "db-password"},
                                                             "stringData": {"password": "s3cret"}})
    return name, ns


@pytest.mark.control("apiserver-authorization-rbac")
def test_it_cannot_read_a_departments_secrets(operator_account, tenant_ns):
    """Control: RBAC (the operator's ClusterRole names no Secrets; its one Role on Secrets is in
    yunshang-monitoring).  Neither by name, nor as a list, nor as a watch, nor across namespaces."""
    _, ns = tenant_ns
    who = operator_account
    rbac_refused(who.request("GET", f"/api/v1/namespaces/{ns}/secrets/db-password"), who, "get", "secrets", "",
                 namespace=ns)
    rbac_refused(who.request("GET", f"/api/v1/namespaces/{ns}/secrets"), who, "list", "secrets", "", namespace=ns)
    rbac_refused(who.request("GET", f"/api/v1/namespaces/{ns}/secrets?watch=1&timeoutSeconds=1"), who, "watch",
                 "secrets", "", namespace=ns)
    rbac_refused(who.request("GET", "/api/v1/secrets"), who, "list", "secrets", "")
    # control: what it does read there, the tenant's quota
    code, body = who.request("GET", f"/api/v1/namespaces/{ns}/resourcequotas")
    assert code == 200 and body["items"], body


@pytest.mark.control("apiserver-authorization-rbac")
def test_it_cannot_escalate_through_rbac(operator_account, tenant_ns):
    """Control: RBAC (the operator creates no ClusterRole or ClusterRoleBinding at all, and binds
    `admin` only: it has no `escalate`, and a binding is made only with permissions the creator holds)."""
    name, ns = tenant_ns
    who = operator_account
    crb = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    mine = {"kind": "ServiceAccount", "name": "yunshang-operator", "namespace": "yunshang-system"}
    code, body = who.create(crb + DRY, {"metadata": {"name": f"yunshang:dept:{name}-x"}, "subjects": [mine],
                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                    "name": "cluster-admin"}})
    rbac_refused((code, body), who, "create", "clusterrolebindings", "rbac.authorization.k8s.io")
    code, body = who.create("/apis/rbac.authorization.k8s.io/v1/clusterroles" + DRY, {
        "metadata": {"name": f"yunshang:dept:{name}-x"},
        "rules": [{"apiGroups": ["platform.yunshang.io"], "resources": ["tenants"], "resourceNames": [name],
                   "verbs": ["get"]}]})
    rbac_refused((code, body), who, "create", "clusterroles", "rbac.authorization.k8s.io")
    code, body = who.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings" + DRY, {
        "metadata": {"name": "me-edit"}, "subjects": [mine],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}})
    assert code == 403, body  # `bind` is granted on `admin` only, and edit's rules are not all its own
    # control: the owners' binding to `admin` in the tenant's namespace, which it may bind, is created
    code, body = who.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings" + DRY, {
        "metadata": {"name": "owners-again"}, "subjects": [{"kind": "User", "name": f"owner-of-{name}",
                                                             "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}})
    assert code == 201, body


@pytest.mark.control("yunshang-operator-scope")
def test_it_cannot_touch_what_is_not_the_platforms(kube_api, operator_account, tenant_ns):
    """Control: the admission policy yunshang-operator-scope.  RBAC lets the operator's ClusterRole
    delete any namespace, write quotas and network policies anywhere and delete any ClusterRole (it
    removes the departments' roles of the earlier need-to-know): the policy keeps it to tenants'
    namespaces, the platform's own and those roles."""
    from kubernetes import client

    name, ns = tenant_ns
    who = operator_account
    plain = f"hand-made-{uuid.uuid4().hex[:5]}"
    client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": plain}})
    refused = lambda resp, *w: policy_refused(resp, OPERATOR_SCOPE_POLICY, SCOPE_WORDS, *w)  # noqa: E731
    # (kube-system, kube-public and default no one deletes: the API server's NamespaceLifecycle refuses that first)
    for other in ("yunshang-system", plain):
        refused(who.delete(f"/api/v1/namespaces/{other}{DRY}"), f"delete namespaces {other}")
        refused(who.merge_patch(f"/api/v1/namespaces/{other}{DRY}", {"metadata": {"labels": {"x": "y"}}}))
    for other in ("kube-system", "default", plain):
        refused(who.create(f"/api/v1/namespaces/{other}/resourcequotas{DRY}", {
            "metadata": {"name": "squeeze"}, "spec": {"hard": {"pods": "0"}}}), f"{other}/squeeze")
        refused(who.create(f"/apis/networking.k8s.io/v1/namespaces/{other}/networkpolicies{DRY}", {
            "metadata": {"name": "cut-off"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}))
    refused(who.create(f"/api/v1/namespaces{DRY}", {"metadata": {"name": f"unmarked-{uuid.uuid4().hex[:5]}"}}))
    # the cluster's and the platform's roles, deleted
    refused(who.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin{DRY}"),
            "clusterroles cluster-admin")
    refused(who.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/yunshang:department{DRY}"))
    # a department's role of the earlier shape (as an older operator left it), for the control below
    legacy = f"yunshang:dept:{name}"
    client.RbacAuthorizationV1Api(kube_api).create_cluster_role({"metadata": {"name": legacy}, "rules": []})
    # controls: the same writes inside the tenant's namespace and on the department's own role
    for code, body in (
        who.merge_patch(f"/api/v1/namespaces/{ns}{DRY}", {"metadata": {"labels": {"x": "y"}}}),
        who.create(f"/api/v1/namespaces/{ns}/resourcequotas{DRY}", {"metadata": {"name": "squeeze"},
                                                                     "spec": {"hard": {"pods": "0"}}}),
        who.create(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies{DRY}", {
            "metadata": {"name": "cut-off"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        who.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{legacy}{DRY}"),
        who.delete(f"/api/v1/namespaces/{ns}{DRY}"),
    ):
        assert code in (200, 201), body
    client.CoreV1Api(kube_api).delete_namespace(plain)
    client.RbacAuthorizationV1Api(kube_api).delete_cluster_role(legacy)
