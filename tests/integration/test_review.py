"""reviewDate on the real platform: past the date and its grace the operator suspends the tenant
(pods: 0, data kept) and records it in the audit trail; a department cannot move its own date;
the platform bureau renews it with a new date and the tenant is Ready again."""
from __future__ import annotations

import datetime as dt
import uuid

from kubernetes import client

from factories import approval, dept_groups, tenant
from helpers import Impersonated, granted, wait_for
from yunshang.models.tenant import ADMIN_GROUP

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"


def status(co, name) -> dict:
    return co.get_cluster_custom_object(GROUP, VERSION, "tenants", name).get("status") or {}


def actions(co, name) -> list[str]:
    items = co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"]
    return [r["spec"]["action"] for r in sorted(items, key=lambda r: r["spec"]["seq"]) if name in r["spec"]["tenants"]]


def test_lapsed_review_suspends_with_data_kept_until_a_new_date(operator, kube_api):
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    name = f"rv-{uuid.uuid4().hex[:6]}"
    past = (dt.date.today() - dt.timedelta(days=20)).isoformat()  # grace is 14 days
    body = tenant(name, reviewDate=past)
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    wait_for("suspended for its review", lambda: status(co, name).get("phase") == "Suspended", timeout=30)
    assert status(co, name)["message"].startswith(f"review date {past} passed (14 days of grace ended)")
    ns = f"{name}-main"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "data"}, "data": {"k": "v"}})
    assert core.read_namespaced_resource_quota("tenant-quota", ns).spec.hard["pods"] == "0"
    wait_for("audit record", lambda: "TenantReviewLapsed" in actions(co, name), timeout=20)
    m = operator.metrics()
    assert m[f"yunshang_tenant_review_lapsed{{tenant={name}}}"] == 1
    assert m[f"yunshang_tenant_review_days_left{{tenant={name}}}"] == -20

    # the department cannot extend its own review; the control: its other edits are not blocked by this rule
    dept = Impersonated(kube_api, f"clerk-{name}", dept_groups(name))
    granted(dept, f"/apis/{GROUP}/{VERSION}/tenants/{name}")
    later = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    code, resp = dept.merge_patch(f"/apis/{GROUP}/{VERSION}/tenants/{name}", {"spec": {"reviewDate": later}})
    assert code == 403 and "review date" in resp["message"], resp
    code, resp = dept.merge_patch(f"/apis/{GROUP}/{VERSION}/tenants/{name}", {"spec": {"purpose": "still needed"}})
    assert code == 200, resp

    admin = Impersonated(kube_api, "bureau.chen", [ADMIN_GROUP])
    code, resp = admin.merge_patch(f"/apis/{GROUP}/{VERSION}/tenants/{name}", {"spec": {"reviewDate": later}})
    assert code == 200, resp
    wait_for("Ready again", lambda: status(co, name).get("phase") == "Ready", timeout=30)
    assert core.read_namespaced_resource_quota("tenant-quota", ns).spec.hard["pods"] != "0"
    assert core.read_namespaced_config_map("data", ns).data == {"k": "v"}
    wait_for("renewal recorded", lambda: "TenantReviewRenewed" in actions(co, name), timeout=20)


def test_a_review_coming_up_is_due(operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = f"rd-{uuid.uuid4().hex[:6]}"
    body = tenant(name, reviewDate=(dt.date.today() + dt.timedelta(days=10)).isoformat())
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    wait_for("Ready", lambda: status(co, name).get("phase") == "Ready", timeout=30)
    wait_for("due metric", lambda: operator.metrics().get(f"yunshang_tenant_review_due{{tenant={name}}}") == 1)
    assert operator.metrics()[f"yunshang_tenant_review_lapsed{{tenant={name}}}"] == 0
