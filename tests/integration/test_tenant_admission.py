"""Pre-approval (前置审批) is enforced by the API server: RBAC + ValidatingAdmissionPolicy.

Every case goes through the real API server as an impersonated identity. Each security test names
the control it proves (``@pytest.mark.control``) and every refusal asserts who refused, in its own
words: RBAC's ``is forbidden: User "<user>" cannot <verb> resource "<resource>" …``, or the
admission policy's name as the API server reports it (``ValidatingAdmissionPolicy '<policy>' …``)
and the policy's message; each sits beside a request that is admitted.

Two refusals are made by two policies at once: a department's own approval (the governance and the
sign-off policy both refuse it, for every identity the governance policy holds) and more quota
without a new round (the governance policy, and the sign-off policy's approved ceiling). The API
server reports the first policy it evaluated, in an order that changes whenever any policy or
binding does, so those refusals accept either policy, exactly, by name, status and words; the tests
that hold them name the control whose removal makes them fail, through a refusal that it alone makes.
"""
from __future__ import annotations

import uuid

import pytest

from factories import ADMIN_GROUPS, approval, dept_groups, reviewer_groups, signed, signoff, tenant
from helpers import Impersonated, grant, policy_refused, rbac_refused

from yunshang.policies import OPERATOR_USER

GROUP = "platform.yunshang.io"
TENANTS = f"/apis/{GROUP}/v1alpha1/tenants"
GOVERNANCE = "yunshang-tenant-governance"
SIGNOFF = "yunshang-tenant-signoff"
# each policy's words for the refusals both make
SELF_APPROVAL = {GOVERNANCE: (403, "a department cannot approve or reject a tenant: the reviewers sign off"),
                 SIGNOFF: (403, "spec.approval can no longer be added or changed")}
CREATED_APPROVED = {GOVERNANCE: SELF_APPROVAL[GOVERNANCE],
                    SIGNOFF: (403, "a new tenant cannot carry an approval or sign-offs")}
MORE_QUOTA = {GOVERNANCE: (403, "once a reviewer has decided, more quota or a new elastic ceiling is a new request"),
              SIGNOFF: (403, "quota above the approved ceiling, or a new elastic ceiling, is a new request even for "
                             "the platform bureau")}
SKIPPED_ROUND = {GOVERNANCE: MORE_QUOTA[GOVERNANCE],
                 SIGNOFF: (422, "spec.requestRound starts at 1 and goes up by one for each new request")}


def refused_by_one_of(resp, alternatives: dict[str, tuple[int, str]]) -> str:
    """Refused by each policy of ``alternatives`` (policy -> (status, words)) at once: the API server
    names the one it evaluated first; that one, exactly, with its status and its words."""
    status, body = resp
    msg = body.get("message", "")
    for policy, (code, words) in alternatives.items():
        if f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: " in msg:
            assert status == code and words in msg, (policy, status, msg)
            return policy
    raise AssertionError(f"refused by none of {sorted(alternatives)}: {status} {msg or body}")


def schema_refused(resp, name: str, *words: str) -> None:
    """Refused by the Tenant CRD's schema and rules (before any admission policy is asked)."""
    code, body = resp
    msg = body.get("message", "")
    assert code == 422 and f'Tenant.{GROUP} "{name}" is invalid: ' in msg, (code, msg or body)
    for w in words:
        assert w in msg, (w, msg)


@pytest.fixture
def name():
    return f"dept-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def dept(kube_api, platform, operator, name):
    # the operator answers the API server's need-to-know questions (a department reading its tenant)
    return Impersonated(kube_api, f"user-of-{name}", dept_groups(name))


@pytest.fixture
def admin(kube_api, platform):
    return Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)


def created(dept, name, **changes):
    code, body = dept.create(TENANTS, tenant(name, **changes))
    assert code == 201, body
    grant(dept.api, name)  # until the need-to-know webhook lets its department read it
    return body


def test_department_requests_its_own_tenant(dept, name):
    body = created(dept, name)
    assert body["spec"]["department"]["name"] == "贵州省大数据发展管理局"


@pytest.mark.control("yunshang-tenant-signoff")
def test_department_cannot_self_approve_on_create(dept, name):
    """Control: the yunshang-tenant-signoff policy (nobody but the operator and system:masters creates
    a decided tenant): a department's own sign-offs on create are refused by it alone. Its approval
    on create is refused twice over, by the governance policy too: either may be the one reported."""
    refused_by_one_of(dept.create(TENANTS, tenant(name, approval=approval(by=f"user-of-{name}"))), CREATED_APPROVED)
    spec = tenant(name)["spec"]
    policy_refused(dept.create(TENANTS, tenant(name, signoffs=[signoff(spec, "platform", by=f"user-of-{name}")])),
                   SIGNOFF, "only members of yunshang:reviewer:<role> may record the decision of that role",
                   f"(you are user-of-{name})")
    code, body = dept.create(TENANTS + "?dryRun=All", tenant(name))  # control: the same request undecided
    assert code == 201, body


@pytest.mark.control("yunshang-tenant-governance")
def test_department_cannot_request_for_another_department(kube_api, dept, name):
    """Control: the yunshang-tenant-governance policy (a department requests only its own tenant;
    RBAC lets every department create tenants)."""
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    policy_refused(other.create(TENANTS, tenant(name)), GOVERNANCE,
                   f"only members of yunshang:dept:{name} may request or edit tenant {name}")
    code, body = dept.create(TENANTS + "?dryRun=All", tenant(name))  # control: the same request by its department
    assert code == 201, body


@pytest.mark.control("rbac-department")
def test_department_cannot_edit_another_departments_request(kube_api, dept, name):
    """Control: RBAC, ClusterRole yunshang:department (the only grant of a department without a tenant
    of its own: it creates tenants and reads or edits none); the governance policy stands behind it."""
    created(dept, name)
    other = Impersonated(kube_api, "someone", dept_groups("police"))
    rbac_refused(other.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "hijack"}}), other, "patch")
    rbac_refused(other.request("GET", f"{TENANTS}/{name}"), other, "get")
    # control: the same edit and read by the tenant's own department
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "province data exchange, edited"}})
    assert code == 200, body
    assert dept.request("GET", f"{TENANTS}/{name}")[0] == 200


@pytest.mark.control("yunshang-tenant-signoff")
def test_department_edits_pending_request_but_cannot_approve_it(dept, name):
    """Control: the yunshang-tenant-signoff policy: a department's sign-off is refused by it alone (the
    governance policy lets a pending department edit its request). Its approval is refused twice
    over (governance and sign-off): either may be the one reported."""
    created(dept, name)
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "6"}}})  # control: an edit
    assert code == 200, body
    refused_by_one_of(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(by="me")}}), SELF_APPROVAL)
    spec = body_of(dept, name)["spec"]
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "platform", by=f"user-of-{name}")]}}), SIGNOFF,
        "only members of yunshang:reviewer:<role> may record the decision of that role")


def body_of(who, name):
    code, body = who.request("GET", f"{TENANTS}/{name}")
    assert code == 200, body
    return body


def signed_off(kube_api, dept, name):
    """The department's request, approved by every reviewer role (round 1)."""
    created(dept, name)
    spec = body_of(dept, name)["spec"]
    everyone = Impersonated(kube_api, "chair.of.all", reviewer_groups())
    code, body = everyone.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": signed(spec, by="chair.of.all")}})
    assert code == 200, body


@pytest.mark.control("yunshang-tenant-governance")
def test_signed_off_then_department_changes_quota_only_as_a_new_round(kube_api, dept, admin, name):
    """Control: the yunshang-tenant-governance policy: once decided, a department changes its quota only
    with a new round (even less quota: refused by it alone) and its namespaces never. More quota or a
    new elastic ceiling is refused by the sign-off policy's approved ceiling too: either is reported."""
    signed_off(kube_api, dept, name)
    refused_by_one_of(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "64"}}}), MORE_QUOTA)
    refused_by_one_of(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"elastic": {"ceiling": {"cpu": "64"}}}}),
                      MORE_QUOTA)
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "6"}}}), GOVERNANCE,
                   *MORE_QUOTA[GOVERNANCE][1:])  # within the approved quota, but not asked as a new round
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"namespaces": ["main", "extra"]}}), GOVERNANCE,
                   "can be changed by the platform bureau only")
    # control: asking again, the quota with the next round
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 2}})
    assert code == 200, body
    # control: what is not frozen stays editable
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"purpose": "province data exchange v2"}})
    assert code == 200, body
    # control: the bureau adjusts the quota (within the approved ceiling: the client and the operator check)
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "10"}}})
    assert code == 200, body


@pytest.mark.control("yunshang-tenant-signoff")
def test_signed_off_then_department_neither_removes_a_signoff_nor_skips_a_round(kube_api, dept, name):
    """Control: the yunshang-tenant-signoff policy: recorded sign-offs stay, and rounds go up by one
    (a skipped round alone is refused by it alone; with more quota, the governance policy refuses too)."""
    signed_off(kube_api, dept, name)
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": []}}), SIGNOFF,
                   "a recorded sign-off can be neither changed nor removed")
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"requestRound": 3}}), SIGNOFF,
                   *SKIPPED_ROUND[SIGNOFF][1:], code=422)
    refused_by_one_of(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 3}}),
                      SKIPPED_ROUND)
    # control: the next round, keeping every recorded sign-off
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 2}})
    assert code == 200, body
    assert len(body_of(dept, name)["spec"]["signoffs"]) == 3


@pytest.mark.control("yunshang-tenant-governance")
def test_department_cannot_suspend_or_resume(dept, admin, name):
    """Control: the yunshang-tenant-governance policy (only the platform bureau suspends and resumes)."""
    created(dept, name)
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": True}}), GOVERNANCE,
                   "only the platform bureau may suspend or resume a tenant")
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": True}})  # control: the bureau
    assert code == 200, body
    policy_refused(dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": False}}), GOVERNANCE,
                   "only the platform bureau may suspend or resume a tenant")
    code, body = admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"suspended": False}})  # control: the bureau
    assert code == 200, body


@pytest.mark.control("rbac-department")
def test_department_cannot_delete_its_tenant(dept, admin, name):
    """Control: RBAC, ClusterRole yunshang:department (create only; the department's own ClusterRole
    names its tenant for get, watch, update and patch: neither grants delete)."""
    created(dept, name)
    rbac_refused(dept.delete(f"{TENANTS}/{name}"), dept, "delete")
    code, body = admin.delete(f"{TENANTS}/{name}")  # control: the same request by the platform bureau
    assert code == 200, body


@pytest.mark.control("rbac-department")
def test_department_cannot_write_status(kube_api, dept, name):
    """Control: RBAC, ClusterRole yunshang:department (no tenants/status; nor does the department's own
    ClusterRole name it): the status is the operator's."""
    created(dept, name)
    status = {"status": {"phase": "Ready"}}
    rbac_refused(dept.merge_patch(f"{TENANTS}/{name}/status", status), dept, "patch", "tenants/status")
    operator = Impersonated(kube_api, OPERATOR_USER, ["system:serviceaccounts",
                                                      "system:serviceaccounts:yunshang-system"])
    code, body = operator.merge_patch(f"{TENANTS}/{name}/status?dryRun=All", status)  # control: the operator's
    assert code == 200, body


def test_rejection_needs_a_reason(kube_api, dept, name):
    """The Tenant CRD's rule on spec.signoffs (input validation, for everyone; no platform boundary)."""
    created(dept, name)
    spec = body_of(dept, name)["spec"]
    security = Impersonated(kube_api, "sec.wu", reviewer_groups("security"))
    schema_refused(security.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "security", by="sec.wu", decision="Rejected")]}}), name, "a rejection needs a reason")
    code, body = security.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [
        signoff(spec, "security", by="sec.wu", decision="Rejected", reason="no approved project")]}})
    assert code == 200, body


@pytest.mark.control("rbac-department")
def test_unknown_identity_is_refused_by_rbac(kube_api, dept, admin, name):
    """Control: RBAC, the platform's grants on tenants: to departments only through ClusterRoleBinding
    yunshang:departments (group yunshang:departments), and to its admins, reviewers and operator; an
    identity in none of those groups holds nothing."""
    nobody = Impersonated(kube_api, "mallory", [])
    rbac_refused(nobody.create(TENANTS, tenant(name)), nobody, "create")
    rbac_refused(nobody.request("GET", TENANTS), nobody, "list")
    code, body = dept.create(TENANTS + "?dryRun=All", tenant(name))  # control: the same create by a department
    assert code == 201, body
    code, body = admin.request("GET", TENANTS)  # control: the same list by the platform bureau
    assert code == 200 and "items" in body, body


def test_schema_rejects_invalid_fields(dept, name):
    """The Tenant CRD's schema and rules (input validation, for everyone; no platform boundary)."""
    schema_refused(dept.create(TENANTS, tenant(name, level="city")), name,
                   "a province tenant has no parent; a city, county, township or village tenant needs one")
    schema_refused(dept.create(TENANTS, tenant(name, quota={"cpu": "lots"})), name, "spec.quota.cpu")
    code, body = dept.create(TENANTS + "?dryRun=All", tenant(name, quota={"cpu": "4"}))  # control: a valid one
    assert code == 201, body
