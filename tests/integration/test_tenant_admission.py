"""Pre-approval (前置审批) is enforced by the API server: RBAC + ValidatingAdmissionPolicy.

Every case goes through the real API server as an impersonated identity.
"""
from __future__ import annotations

import uuid

import pytest

from factories import ADMIN_GROUPS, approval, dept_groups, reviewer_groups, signed, signoff, tenant
from helpers import Impersonated, grant

TENANTS = "/apis/platform.yunshang.io/v1alpha1/tenants"


@pytest.fixture
def name():
    return f"dept-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def dept(kube_api, platform, name):
    return Impersonated(kube_api, f"user-of-{name}", dept_groups(name))


@pytest.fixture
def admin(kube_api, platform):
    return Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)


def created(dept, name, **changes):
    code, body = dept.create(TENANTS, tenant(name, **changes))
    assert code == 201, body
    grant(dept.api, name)  # what the operator's views grant its department (no operator runs here)
    return body


def test_department_requests_its_own_tenant(dept, name):
    body = created(dept, name)
    assert body["spec"]["department"]["name"] == "贵州省大数据发展管理局"


def test_department_cannot_self_approve_on_create(dept, name):
    code, body = dept.create(TENANTS, tenant(name, approval=approval(by=f"user-of-{name}")))
    assert code == 403
    # refused twice over: by the governance policy and by the sign-off policy (nobody creates a decided
    # tenant); the API server names whichever it evaluated first
    assert "cannot approve or reject" in body["message"] or "cannot carry an approval or sign-offs" in body["message"]
    assert dept.create(TENANTS + "?dryRun=All", tenant(name))[0] == 201  # control: the same request undecided


def test_department_cannot_request_for_another_department(kube_api, platform, name):
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    code, body = other.create(TENANTS, tenant(name))
    assert code == 403
    assert f"only members of yunshang:dept:{name}" in body["message"]


def test_department_cannot_edit_another_departments_request(kube_api, dept, name):
    created(dept, name)
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    code, body = other.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "hijack"}})
    assert code == 403  # RBAC first (need-to-know: only its own by name), the governance policy behind it
    assert other.request("GET", f"{TENANTS}/{name}")[0] == 403


def test_department_edits_pending_request_but_cannot_approve_it(dept, name):
    created(dept, name)
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "6"}}})
    assert code == 200, body
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(by="me")}})
    assert code == 403 and ("cannot approve or reject" in body["message"] or "parallel sign-off" in body["message"])
    spec = body_of(dept, name)["spec"]
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "platform", by=f"user-of-{name}")]}})
    assert code == 403 and "yunshang:reviewer:<role>" in body["message"]


def body_of(who, name):
    code, body = who.request("GET", f"{TENANTS}/{name}")
    assert code == 200, body
    return body


def test_signed_off_then_department_changes_quota_only_as_a_new_round(kube_api, dept, admin, name):
    created(dept, name)
    spec = body_of(dept, name)["spec"]
    everyone = Impersonated(kube_api, "chair.of.all", reviewer_groups())
    code, body = everyone.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": signed(spec, by="chair.of.all")}})
    assert code == 200, body
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "64"}}})
    assert code == 403 and "new request" in body["message"]
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"elastic": {"ceiling": {"cpu": "64"}}}})
    assert code == 403
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"namespaces": ["main", "extra"]}})
    assert code == 403 and "platform bureau only" in body["message"]
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": []}})
    assert code == 403 and "neither changed nor removed" in body["message"]
    # asking again: the quota with the next round (skipping one is refused)
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 3}})
    assert code == 403 or code == 422, body
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 2}})
    assert code == 200, body
    # what is not frozen stays editable
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "province data exchange v2"}})
    assert code == 200, body
    # the bureau adjusts the quota (within the approved ceiling: the client and the operator check)
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "10"}}})
    assert code == 200, body


def test_department_cannot_suspend_resume_or_delete(dept, admin, name):
    created(dept, name)
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": True}})
    assert code == 403 and "suspend" in body["message"]
    code, _ = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": True}})
    assert code == 200
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": False}})
    assert code == 403
    code, body = dept.delete(f"{TENANTS}/{name}")
    assert code == 403
    code, body = admin.delete(f"{TENANTS}/{name}")
    assert code == 200


def test_department_cannot_write_status(dept, name):
    created(dept, name)
    code, _ = dept.merge_patch(f"{TENANTS}/{name}/status", {"status": {"phase": "Ready"}})
    assert code == 403


def test_rejection_needs_a_reason(kube_api, dept, name):
    created(dept, name)
    spec = body_of(dept, name)["spec"]
    security = Impersonated(kube_api, "sec.wu", reviewer_groups("security"))
    code, body = security.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "security", by="sec.wu", decision="Rejected")]}})
    assert code == 422 and "a rejection needs a reason" in body["message"]
    code, body = security.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "security", by="sec.wu", decision="Rejected", reason="no approved project")]}})
    assert code == 200, body


def test_unknown_identity_is_refused_by_rbac(kube_api, platform, name):
    nobody = Impersonated(kube_api, "mallory", [])
    code, body = nobody.create(TENANTS, tenant(name))
    assert code == 403 and "cannot create resource" in body["message"]
    code, body = nobody.request("GET", TENANTS)
    assert code == 403


def test_schema_rejects_invalid_fields(dept, name):
    code, body = dept.create(TENANTS, tenant(name, level="city"))
    assert code == 422 and "needs one" in body["message"]
    code, body = dept.create(TENANTS, tenant(name, quota={"cpu": "lots"}))
    assert code == 422 and "spec.quota.cpu" in body["message"]
