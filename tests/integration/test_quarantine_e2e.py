"""Monitoring that acts, for real: a tenant identity makes repeated forbidden pod creations; the
API server refuses them (Pod Security) and sends its audit events to the operator; Prometheus
scrapes the per-tenant denial counter and fires YunshangTenantProbing; Alertmanager calls the
operator's webhook; the tenant is quarantined (no new pods, no intra-tenant traffic, data kept)
and only an admin lifts it."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
from kubernetes import client, config

from factories import approval, dept_groups, tenant
from helpers import wait_for

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


from conftest import prom_query as _prom


def test_probing_tenant_is_quarantined_and_only_an_admin_lifts_it(monitoring, kube_api):
    cp = monitoring
    co = client.CustomObjectsApi(kube_api)
    core = client.CoreV1Api(kube_api)
    name = f"probe-{uuid.uuid4().hex[:6]}"
    body = tenant(name, namespaces=["app", "db"])
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    wait_for("Ready", lambda: (co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {})
             .get("phase") == "Ready")
    # Prometheus has seen the tenant's counters at zero
    wait_for("denial counter scraped", lambda: _prom(cp, f'yunshang_tenant_denied_requests_total{{tenant="{name}"}}'),
             timeout=30)
    dept = client.CoreV1Api(config.new_client_from_config(
        str(cp.identity_kubeconfig("li.wei", dept_groups(name)))))
    refused = 0
    for i in range(8):
        with pytest.raises(client.ApiException) as e:
            dept.create_namespaced_pod(f"{name}-app", {"metadata": {"name": f"p{i}"}, "spec": {
                "hostNetwork": True, "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1"}]}})
        assert e.value.status == 403 and "PodSecurity" in e.value.body
        refused += 1
    # the API server's own metric rose too
    wait_for("apiserver deny metric", lambda: _prom(cp, 'pod_security_evaluations_total{decision="deny",mode="enforce"}'),
             timeout=30)

    def quarantined():
        spec = co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)["spec"]
        return spec.get("quarantine")

    q = wait_for("quarantine", quarantined, timeout=90)
    assert q["alert"] == "YunshangTenantProbing" and name in q["reason"]
    wait_for("Suspended", lambda: co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)["status"]["phase"] == "Suspended")
    net = client.NetworkingV1Api(kube_api)
    for ns in (f"{name}-app", f"{name}-db"):
        wait_for("no intra-tenant traffic", lambda ns=ns: "allow-intra-tenant" not in
                 {p.metadata.name for p in net.list_namespaced_network_policy(ns).items})
        assert {"default-deny", "allow-dns", "allow-monitoring"} <= {p.metadata.name for p in net.list_namespaced_network_policy(ns).items}
        wait_for("no new pods", lambda ns=ns: core.read_namespaced_resource_quota("tenant-quota", ns).status.hard["pods"] == "0")
        assert core.read_namespace(ns).metadata.labels["platform.yunshang.io/quarantined"] == "true"
    # the department cannot lift it
    from helpers import Impersonated

    code, resp = Impersonated(kube_api, "li.wei", dept_groups(name)).merge_patch(
        f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}", {"spec": {"quarantine": None}})
    assert code == 403 and "quarantine" in resp["message"]
    # an admin does: `yunshang tenant resume`
    from yunshang.client import Tenants

    Tenants(str(cp.kubeconfig)).resume(name)
    wait_for("Ready again", lambda: co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)["status"]["phase"] == "Ready")
    wait_for("traffic back", lambda: "allow-intra-tenant" in
             {p.metadata.name for p in net.list_namespaced_network_policy(f"{name}-app").items})


def _post(cp, path, body, token=None):
    ctx = ssl.create_default_context(cafile=str(cp.pki / "ca.crt"))
    req = urllib.request.Request(f"https://127.0.0.1:{cp.ports['operator-webhook']}{path}",
                                 data=body if isinstance(body, bytes) else json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_webhook_refuses_unauthenticated_and_malformed_calls(platform, operator):
    token = platform.webhook_token_file.read_text().strip()
    alert = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "X", "action": "quarantine", "tenant": "gz-bigdata"}}]}
    assert _post(platform, "/alerts", alert)[0] == 401
    assert _post(platform, "/alerts", alert, token="wrong")[0] == 401
    code, body = _post(platform, "/alerts", b"{not json", token=token)
    assert code == 400
    code, body = _post(platform, "/alerts", {"version": "4", "status": "firing", "alerts": [{"labels": {}}]}, token=token)
    assert code == 400 and "Alertmanager" in body["error"]
    assert _post(platform, "/audit", {"kind": "Pod"}, token=token)[0] == 400
    # a well-formed alert for a tenant that does not exist changes nothing
    alert["alerts"][0]["labels"]["tenant"] = "no-such-tenant"
    assert _post(platform, "/alerts", alert, token=token) == (200, {"quarantined": ["no-such-tenant"]})
