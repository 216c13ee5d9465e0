"""Parallel sign-off (并联审批), enforced by the real API server and carried out by the operator.

Each attempt is made as the attacker would: an impersonated reviewer, department or admin
against the real API server, beside the control request that shows the allowed case works.
Each security test names the control it proves (``@pytest.mark.control``), and every refusal
asserts who refused: the policy's name in the API server's words and the rule's own message.
"""
from __future__ import annotations

import copy
import datetime as dt
import uuid

import pytest
from kubernetes import client

from factories import ADMIN_GROUPS, approval, dept_groups, reviewer_groups, signoff, tenant
from helpers import Impersonated, grant, granted, wait_for

from yunshang.models.tenant import GROUP, VERSION

TENANTS = f"/apis/{GROUP}/{VERSION}/tenants"
SIGNOFF = "yunshang-tenant-signoff"


def signoff_refused(resp, *words: str, code: int = 403) -> None:
    """Refused by the yunshang-tenant-signoff admission policy: the API server's words naming it,
    the status its rule's reason gives (Forbidden 403, Invalid 422), and the rule's own words."""
    status, body = resp
    msg = body.get("message", "")
    marker = f"ValidatingAdmissionPolicy '{SIGNOFF}' with binding '{SIGNOFF}' denied request: "
    assert status == code and marker in msg, (status, msg or body)
    for w in words:
        assert w in msg, (w, msg)


@pytest.fixture
def name():
    return f"so-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def dept(kube_api, platform, operator, name):
    # the operator answers the API server's need-to-know questions (a department reading its tenant)
    return Impersonated(kube_api, f"user-of-{name}", dept_groups(name))


def reviewer(kube_api, role, user=None):
    return Impersonated(kube_api, user or f"{role}.reviewer", reviewer_groups(role))


def get(who, name):
    code, body = who.request("GET", f"{TENANTS}/{name}")
    assert code == 200, body
    return body


def add(who, name, *decisions, base=None):
    """Append decisions the way `yunshang tenant approve` does (the whole list, as a merge patch)."""
    body = base or get(who, name)
    return who.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [*(body["spec"].get("signoffs") or []),
                                                                        *decisions]}})


@pytest.mark.control("yunshang-tenant-signoff")
def test_each_role_records_only_its_own_decision_as_itself(kube_api, dept, name):
    """Control: the yunshang-tenant-signoff admission policy (a reviewer is held by it alone: the
    governance policy leaves reviewers who are not the department to it)."""
    assert dept.create(TENANTS, tenant(name))[0] == 201
    grant(kube_api, name)
    spec = get(dept, name)["spec"]
    sec = reviewer(kube_api, "security")
    signoff_refused(add(sec, name, signoff(spec, "finance", by="security.reviewer")),
                    "only members of yunshang:reviewer:<role> may record the decision of that role",
                    "(you are security.reviewer)")
    signoff_refused(add(sec, name, signoff(spec, "security", by="finance.reviewer")),  # in someone else's name
                    "as themselves (you are security.reviewer)")
    code, body = add(sec, name, signoff(spec, "security"))  # control: its own role, as itself
    assert code == 200, body
    signoff_refused(add(sec, name, signoff(spec, "security", decision="Rejected", reason="changed my mind")),
                    "each role decides once per round", code=422)
    # nobody alters or removes a recorded decision: not the reviewer, not a platform admin
    admin = Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)
    altered = copy.deepcopy(get(sec, name)["spec"]["signoffs"])
    altered[0]["decision"], altered[0]["reason"] = "Rejected", "forged"
    for who in (sec, admin):
        signoff_refused(who.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": altered}}),
                        "a recorded sign-off can be neither changed nor removed")
        signoff_refused(who.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": []}}),
                        "a recorded sign-off can be neither changed nor removed")
    # control: the list grows: another role appends its decision, keeping the recorded one
    code, body = add(reviewer(kube_api, "platform"), name, signoff(spec, "platform"))
    assert code == 200, body
    assert [s["role"] for s in get(sec, name)["spec"]["signoffs"]] == ["security", "platform"]


@pytest.mark.control("yunshang-tenant-signoff")
def test_admins_and_departments_decide_for_no_role(kube_api, dept, name):
    """Control: the yunshang-tenant-signoff admission policy (platform admins are held by it, not by
    the governance policy; a department's sign-off is refused by it alone: governance lets a pending
    department edit its request)."""
    assert dept.create(TENANTS, tenant(name))[0] == 201
    grant(kube_api, name)
    spec = get(dept, name)["spec"]
    admin = Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)
    signoff_refused(add(admin, name, signoff(spec, "platform", by="bureau.chen")),
                    "only members of yunshang:reviewer:<role> may record the decision of that role",
                    "(you are bureau.chen)")
    signoff_refused(admin.merge_patch(f"{TENANTS}/{name}", {"spec": {"approval": approval(by="bureau.chen")}}),
                    "a tenant is approved by parallel sign-off now", "spec.approval can no longer be added or changed")
    signoff_refused(add(dept, name, signoff(spec, "platform", by=f"user-of-{name}")),
                    "only members of yunshang:reviewer:<role> may record the decision of that role",
                    f"(you are user-of-{name})")
    # control: an admin who also holds the platform role signs for it
    both = Impersonated(kube_api, "bureau.chen", [*ADMIN_GROUPS, *reviewer_groups("platform")])
    code, body = add(both, name, signoff(spec, "platform", by="bureau.chen"))
    assert code == 200, body


@pytest.mark.control("yunshang-tenant-signoff")
def test_a_reviewer_changes_nothing_else_and_answers_the_current_round(kube_api, dept, name):
    """Control: the yunshang-tenant-signoff admission policy."""
    assert dept.create(TENANTS, tenant(name))[0] == 201
    grant(kube_api, name)
    body = get(dept, name)
    fin = reviewer(kube_api, "finance")
    signoff_refused(fin.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "1"}}}),
                    "a reviewer records sign-offs and changes nothing else of a department's tenant")
    signoff_refused(add(fin, name, signoff(body["spec"], "finance", round=2)),
                    "a sign-off answers the current round (spec.requestRound) and the quota asked in it", code=422)
    stale = copy.deepcopy(body["spec"])
    stale["quota"]["cpu"] = "1"  # a decision about a quota that is not the one asked
    signoff_refused(add(fin, name, signoff(stale, "finance")),
                    "a sign-off answers the current round (spec.requestRound) and the quota asked in it", code=422)
    code, resp = add(fin, name, signoff(body["spec"], "finance"))  # control: the current round and quota
    assert code == 200, resp


def phase(co, name):
    return (co.get_cluster_custom_object(GROUP, VERSION, "tenants", name).get("status") or {})


def test_parallel_signoff_in_any_order_then_a_quota_round(kube_api, operator, dept, name):
    co = client.CustomObjectsApi(kube_api)
    assert dept.create(TENANTS, tenant(name))[0] == 201
    granted(dept, f"{TENANTS}/{name}")
    wait_for("Pending with each role", lambda: phase(co, name).get("phase") == "Pending" and phase(co, name).get("signoff"), timeout=30)
    st = phase(co, name)["signoff"]
    assert [r["role"] for r in st["roles"]] == ["platform", "security", "finance"] and st["roles"][0]["deadline"]
    # 限时办结: each role's decision is due tenantDays (3) after the request, exported while pending
    created = dt.datetime.fromisoformat(get(dept, name)["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert st["roles"][0]["deadline"] == (created + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    due = f"yunshang_decision_deadline_timestamp_seconds{{kind=tenant,name={name},party=finance}}"
    assert wait_for("deadline exported", lambda: operator.metrics().get(due)) == (created + dt.timedelta(days=3)).timestamp()
    spec = get(dept, name)["spec"]
    for role in ("finance", "platform"):  # any order; nothing is provisioned before the last one
        assert add(reviewer(kube_api, role), name, signoff(spec, role))[0] == 200
    wait_for("waiting for security", lambda: "waiting for sign-off by security" in phase(co, name).get("message", ""), timeout=30)
    core = client.CoreV1Api(kube_api)
    assert not [n for n in core.list_namespace().items if n.metadata.name == f"{name}-main"]
    assert add(reviewer(kube_api, "security"), name, signoff(spec, "security"))[0] == 200
    wait_for("Ready", lambda: phase(co, name).get("phase") == "Ready", timeout=60)
    m = operator.metrics()
    assert due not in m and m["yunshang_decision_duration_seconds_count{kind=tenant,party=security}"] >= 1
    hard = lambda: core.read_namespaced_resource_quota("tenant-quota", f"{name}-main").spec.hard["requests.cpu"]  # noqa: E731
    assert hard() == "8"
    # more quota: a new round; the approved quota stays until every role signs it
    code, body = dept.merge_patch(f"{TENANTS}/{name}", {"spec": {"quota": {"cpu": "12"}, "requestRound": 2}})
    assert code == 200, body
    wait_for("round 2 open", lambda: "round 2" in phase(co, name).get("message", ""), timeout=30)
    assert phase(co, name)["phase"] == "Ready" and hard() == "8"
    spec2 = get(dept, name)["spec"]
    assert add(reviewer(kube_api, "finance"), name, signoff(spec2, "finance", decision="Rejected",
                                                            reason="no budget this year"))[0] == 200
    wait_for("round 2 rejected", lambda: "rejected by finance" in phase(co, name).get("message", ""), timeout=30)
    assert phase(co, name)["phase"] == "Ready" and hard() == "8"


def test_a_tenant_approved_before_parallel_signoff_stays_approved(kube_api, operator, platform, name):
    """The migration: spec.approval (set at creation by the platform, as the catalog does) becomes
    every role's round-1 sign-off, written once by the operator; the tenant is Ready."""
    co = client.CustomObjectsApi(kube_api)
    body = tenant(name)
    body["spec"]["approval"] = approval(by="git:tenants/x.yaml")
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    wait_for("Ready", lambda: phase(co, name).get("phase") == "Ready", timeout=60)
    spec = co.get_cluster_custom_object(GROUP, VERSION, "tenants", name)["spec"]
    assert sorted(s["role"] for s in spec["signoffs"]) == ["finance", "platform", "security"]
    assert {s["by"] for s in spec["signoffs"]} == {"git:tenants/x.yaml"} and spec["approval"]["decision"] == "Approved"
