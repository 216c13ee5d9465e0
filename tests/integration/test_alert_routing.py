"""Alerts reach the people who must act, on the real Alertmanager of the test platform: an alert
about tenant A reaches A's contacts and the ops team, not B's; a quarantined tenant's other
alerts are held back; the operator keeps the routes in step with the tenants' contacts."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid

import pytest
from kubernetes import client

from factories import approval, tenant
from helpers import Hook, wait_for

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"


@pytest.fixture
def hooks():
    a, b = Hook(), Hook()
    yield a, b
    a.close()
    b.close()


def alertmanager(cp, path: str, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{cp.ports['alertmanager']}{path}",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"}, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def fire(cp, alertname: str, tenant_name: str, severity: str = "warning", **labels: str) -> None:
    alertmanager(cp, "/api/v2/alerts", [{
        "labels": {"alertname": alertname, "tenant": tenant_name, "severity": severity, **labels},
        "annotations": {"summary": f"{alertname} for {tenant_name}"}}])


def got(hook: Hook, alertname: str, tenant_name: str, **labels: str) -> bool:
    """Has ``hook`` received that alert (with those labels too)?"""
    want = {"alertname": alertname, "tenant": tenant_name, **labels}
    return any(all(a["labels"].get(k) == v for k, v in want.items())
               for n in hook.received for a in n.get("alerts", []))


def test_a_tenants_alert_reaches_its_contacts_and_ops_not_another_tenant(monitoring, ops_hook, kube_api, hooks):
    """Absence is asserted only after a positive case that would have come later arrived: an alert
    about B fired after A's reached B's contact, so A's, had it been routed to B, would be there."""
    hook_a, hook_b = hooks
    co = client.CustomObjectsApi(kube_api)
    a, b = f"ala-{uuid.uuid4().hex[:5]}", f"alb-{uuid.uuid4().hex[:5]}"
    for name, hook in ((a, hook_a), (b, hook_b)):
        body = tenant(name, contacts=[{"name": "oncall", "url": hook.url}])
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    # the operator adds both tenants' receivers to Alertmanager's configuration and reloads it
    wait_for("routes loaded", lambda: all(f'tenant="{n}"' in alertmanager(monitoring, "/api/v2/status")["config"]["original"]
                                          for n in (a, b)), timeout=30)

    fire(monitoring, "YunshangTenantQuotaPressure", a)
    wait_for("A's contact notified", lambda: got(hook_a, "YunshangTenantQuotaPressure", a), timeout=30)
    wait_for("ops notified", lambda: got(ops_hook, "YunshangTenantQuotaPressure", a), timeout=30)
    fire(monitoring, "YunshangTenantQuotaPressure", b, probe="b-control")  # control: B's own, fired after
    wait_for("B's contact notified of B's alert", lambda: got(hook_b, "YunshangTenantQuotaPressure", b,
                                                              probe="b-control"), timeout=30)
    assert all(t != a for _, t in hook_b.alerts()), hook_b.alerts()

    # a quarantined tenant's other alerts are held back; the quarantine itself reaches B and ops
    fire(monitoring, "YunshangTenantQuarantined", b, severity="info")
    wait_for("B told of its quarantine", lambda: got(hook_b, "YunshangTenantQuarantined", b), timeout=30)
    wait_for("ops told of B's quarantine", lambda: got(ops_hook, "YunshangTenantQuarantined", b), timeout=30)
    # B's alert first, then the control about A: new groups both, flushed after the same group_wait
    fire(monitoring, "YunshangAgreementExpiring", b)
    fire(monitoring, "YunshangAgreementExpiring", a)  # control: the same alert about A
    wait_for("B's alert held by the quarantine", lambda: [
        x for x in alertmanager(monitoring, "/api/v2/alerts?" + urllib.parse.urlencode(
            {"filter": f'tenant="{b}"'})) if x["labels"]["alertname"] == "YunshangAgreementExpiring"
        and x["status"]["state"] == "suppressed" and x["status"]["inhibitedBy"]], timeout=30)
    wait_for("A's contact notified of the control", lambda: got(hook_a, "YunshangAgreementExpiring", a), timeout=30)
    wait_for("ops notified of the control", lambda: got(ops_hook, "YunshangAgreementExpiring", a), timeout=30)
    assert not got(hook_b, "YunshangAgreementExpiring", b), hook_b.alerts()
    assert not got(ops_hook, "YunshangAgreementExpiring", b)


def test_a_contact_change_reroutes(monitoring, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = f"alc-{uuid.uuid4().hex[:5]}"
    first, second = Hook(), Hook()
    try:
        body = tenant(name, contacts=[{"name": "oncall", "url": first.url}])
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
        wait_for("route", lambda: first.url in alertmanager(monitoring, "/api/v2/status")["config"]["original"],
                 timeout=30)
        co.patch_cluster_custom_object(GROUP, VERSION, "tenants", name,
                                       {"spec": {"contacts": [{"name": "oncall", "url": second.url}]}})
        wait_for("rerouted", lambda: second.url in alertmanager(monitoring, "/api/v2/status")["config"]["original"]
                 and first.url not in alertmanager(monitoring, "/api/v2/status")["config"]["original"], timeout=30)
        fire(monitoring, "YunshangTenantStuck", name)
        wait_for("the new contact notified", lambda: ("YunshangTenantStuck", name) in second.alerts(), timeout=30)
        assert not first.alerts()
    finally:
        first.close()
        second.close()
