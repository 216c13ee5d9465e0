"""Sharing agreements on the real API server: consent enforced by admission, exactly one path
opened by two NetworkPolicies, closed on revocation, expiry and tenant deletion."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from kubernetes import client

from factories import approval, dept_groups
from helpers import Impersonated, granted, ready_tenant, wait_for

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
SHARES = f"/apis/{GROUP}/{VERSION}/shareagreements"


@pytest.fixture
def pair(operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    a, b = f"ca-{uuid.uuid4().hex[:5]}", f"pb-{uuid.uuid4().hex[:5]}"
    ready_tenant(co, a, namespaces=["app", "batch"])
    ready_tenant(co, b, namespaces=["exchange"])
    client.CoreV1Api(kube_api).create_namespaced_service(f"{b}-exchange", {
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    return co, a, b


def agreement(a, b, expires=None):
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement", "metadata": {"name": f"{a}.{b}.api"},
            "spec": {"consumer": a, "provider": b, "purpose": "case lookups",
                     "service": {"namespace": f"{b}-exchange", "name": "api", "port": 80},
                     "expires": (expires or dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}}


def phase(co, name):
    return (co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", name).get("status") or {}).get("phase")


def policies(kube_api, name):
    net = client.NetworkingV1Api(kube_api)
    return {(p.metadata.namespace, p.metadata.name): p for p in
            net.list_network_policy_for_all_namespaces(field_selector=f"metadata.name=share-{name}").items}


def test_consumer_applies_provider_approves_exact_path_opens_then_revoked(pair, kube_api, operator):
    co, a, b = pair
    name = f"{a}.{b}.api"
    consumer = Impersonated(kube_api, "clerk-a", dept_groups(a))
    provider = Impersonated(kube_api, "owner-b", dept_groups(b))
    # the provider cannot apply on the consumer's behalf; the consumer cannot self-approve
    code, body = provider.create(SHARES, agreement(a, b))
    assert code == 403 and f"yunshang:dept:{a}" in body["message"]
    code, body = consumer.create(SHARES, agreement(a, b))
    assert code == 201, body
    wait_for("Pending", lambda: phase(co, name) == "Pending")
    for side in (consumer, provider):  # need-to-know: the operator names it in both parties' roles
        granted(side, f"{SHARES}/{name}")
    assert not policies(kube_api, name)
    code, body = consumer.merge_patch(f"{SHARES}/{name}", {"spec": {"decision": approval(by="clerk-a")}})
    assert code == 403 and "only the provider" in body["message"]
    # 限时办结: the provider's decision is due agreementDays (5) after the request, exported while pending
    due_metric = f"yunshang_decision_deadline_timestamp_seconds{{kind=agreement,name={name},party={b}}}"
    due = wait_for("deadline", lambda: operator.metrics().get(due_metric))
    st = co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", name)
    created = dt.datetime.fromisoformat(st["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert due == (created + dt.timedelta(days=5)).timestamp()
    assert st["status"]["deadline"] == (created + dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, body = provider.merge_patch(f"{SHARES}/{name}", {"spec": {"decision": approval(by="owner-b")}})
    assert code == 200, body
    wait_for("Active", lambda: phase(co, name) == "Active")
    m = operator.metrics()
    assert due_metric not in m and m[f"yunshang_decision_duration_seconds_count{{kind=agreement,party={b}}}"] >= 1
    pols = wait_for("policies", lambda: len(policies(kube_api, name)) == 3 and policies(kube_api, name))
    ingress = pols[(f"{b}-exchange", f"share-{name}")].spec
    assert ingress.policy_types == ["Ingress"] and ingress.pod_selector.match_labels == {"app": "api"}
    assert ingress.ingress[0]._from[0].namespace_selector.match_labels == {"platform.yunshang.io/tenant": a}
    assert [(p.port, p.protocol) for p in ingress.ingress[0].ports] == [(8080, "TCP")]
    for ns in (f"{a}-app", f"{a}-batch"):
        egress = pols[(ns, f"share-{name}")].spec
        assert egress.policy_types == ["Egress"]
        to = egress.egress[0].to[0]
        assert to.namespace_selector.match_labels == {"kubernetes.io/metadata.name": f"{b}-exchange"}
        assert to.pod_selector.match_labels == {"app": "api"} and egress.egress[0].ports[0].port == 8080
    # the terms are fixed now
    code, body = consumer.merge_patch(f"{SHARES}/{name}", {"spec": {"service": {"port": 22}}})
    assert code == 403
    # drift: a deleted policy comes back
    client.NetworkingV1Api(kube_api).delete_namespaced_network_policy(f"share-{name}", f"{b}-exchange")
    wait_for("repaired", lambda: (f"{b}-exchange", f"share-{name}") in policies(kube_api, name), timeout=20)
    # a quarantined side closes the path; lifting the quarantine reopens it
    co.patch_cluster_custom_object(GROUP, VERSION, "tenants", a, {"spec": {"quarantine": {"reason": "probing"}}})
    # the operator removes the policies, then writes the phase: wait for both
    wait_for("closed by quarantine", lambda: not policies(kube_api, name) and phase(co, name) == "Refused",
             timeout=15)
    co.patch_cluster_custom_object(GROUP, VERSION, "tenants", a, {"spec": {"quarantine": None}})
    wait_for("reopened", lambda: len(policies(kube_api, name)) == 3 and phase(co, name) == "Active", timeout=15)
    # either side may revoke; the path closes within seconds
    code, body = consumer.merge_patch(f"{SHARES}/{name}", {"spec": {"revoked": {"by": "clerk-a", "reason": "done"}}})
    assert code == 200, body
    wait_for("closed", lambda: not policies(kube_api, name) and phase(co, name) == "Revoked", timeout=15)


def test_expiry_closes_the_path(pair, kube_api):
    co, a, b = pair
    name = f"{a}.{b}.api"
    body = agreement(a, b, expires=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=12))
    body["spec"]["decision"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "shareagreements", body)
    wait_for("open", lambda: len(policies(kube_api, name)) == 3)
    wait_for("expired and closed", lambda: phase(co, name) == "Expired" and not policies(kube_api, name), timeout=30)


def test_classification_forbids_secret_to_internal(operator, kube_api):
    """The operator's classification check: a secret provider's Service, existing and approved
    for both, opens for a consumer cleared for secret (the control) and not for an internal one —
    the agreements differ in the consumer's classification only."""
    co = client.CustomObjectsApi(kube_api)
    a, b, c = f"ca-{uuid.uuid4().hex[:5]}", f"pb-{uuid.uuid4().hex[:5]}", f"cc-{uuid.uuid4().hex[:5]}"
    ready_tenant(co, a, classification="internal")
    ready_tenant(co, b, classification="secret", namespaces=["exchange"])
    ready_tenant(co, c, classification="secret")
    client.CoreV1Api(kube_api).create_namespaced_service(f"{b}-exchange", {
        "metadata": {"name": "api"},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    for consumer in (c, a):
        body = agreement(consumer, b)
        body["spec"]["decision"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "shareagreements", body)
    # control: the cleared consumer's agreement opens the path to the very same Service
    wait_for("the cleared consumer's agreement Active", lambda: phase(co, f"{c}.{b}.api") == "Active")
    wait_for("its path open", lambda: set(policies(kube_api, f"{c}.{b}.api")) ==
             {(f"{b}-exchange", f"share-{c}.{b}.api"), (f"{c}-main", f"share-{c}.{b}.api")})
    wait_for("the internal consumer's agreement Refused", lambda: phase(co, f"{a}.{b}.api") == "Refused")
    st = co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", f"{a}.{b}.api")["status"]
    assert st["message"] == ("the platform forbids sharing secret data with a internal tenant "
                             "(the consumer's classification must be at least the provider's)"), st
    assert not policies(kube_api, f"{a}.{b}.api") and not st.get("policies"), st


def test_deleting_a_tenant_ends_its_agreements(pair, kube_api):
    co, a, b = pair
    name = f"{a}.{b}.api"
    body = agreement(a, b)
    body["spec"]["decision"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "shareagreements", body)
    wait_for("open", lambda: len(policies(kube_api, name)) == 3)
    co.delete_cluster_custom_object(GROUP, VERSION, "tenants", b)

    def gone():
        try:
            co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", name)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_for("agreement ended", gone, timeout=60)
    wait_for("policies gone", lambda: not policies(kube_api, name), timeout=60)
