"""Pre-approval (前置审批) is enforced by the API server: RBAC + ValidatingAdmissionPolicy.

Every case goes through the real API server as an impersonated identity.
"""
from __future__ import annotations

import uuid

import pytest

from factories import ADMIN_GROUPS, approval, dept_groups, tenant
from helpers import Impersonated

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
    return body


def test_department_requests_its_own_tenant(dept, name):
    body = created(dept, name)
    assert body["spec"]["department"]["name"] == "贵州省大数据发展管理局"


def test_department_cannot_self_approve_on_create(dept, name):
    code, body = dept.create(TENANTS, tenant(name, approval=approval(by=f"user-of-{name}")))
    assert code == 403
    assert "only the platform bureau" in body["message"]


def test_department_cannot_request_for_another_department(kube_api, platform, name):
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    code, body = other.create(TENANTS, tenant(name))
    assert code == 403
    assert f"only members of yunshang:dept:{name}" in body["message"]


def test_department_cannot_edit_another_departments_request(kube_api, dept, name):
    created(dept, name)
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    code, body = other.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "hijack"}})
    assert code == 403 and f"only members of yunshang:dept:{name}" in body["message"]


def test_department_edits_pending_request_but_cannot_approve_it(dept, name):
    created(dept, name)
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "6"}}})
    assert code == 200, body
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(by="me")}})
    assert code == 403 and "only the platform bureau" in body["message"]


def test_admin_approves_then_department_cannot_change_quota_or_ceiling(dept, admin, name):
    created(dept, name)
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(by="bureau.chen")}})
    assert code == 200, body
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "64"}}})
    assert code == 403 and "platform bureau only" in body["message"]
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"elastic": {"ceiling": {"cpu": "64"}}}})
    assert code == 403
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": None}})
    assert code == 403
    # what is not frozen stays editable
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "province data exchange v2"}})
    assert code == 200, body
    # the bureau can change the quota
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


def test_rejection_needs_a_reason(dept, admin, name):
    created(dept, name)
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(decision="Rejected")}})
    assert code == 422 and "a rejection needs a reason" in body["message"]
    code, body = admin.merge_patch(
        f"{TENANTS}/{name}", {"spec": {"approval": approval(decision="Rejected", reason="no approved project")}})
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
