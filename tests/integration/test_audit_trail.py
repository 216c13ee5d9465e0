"""The audit trail on the real platform: CLI actions become hash-chained records (with the
authenticated user), the append-only policy refuses edits and deletes to everyone and appends to
all but the operator, `audit verify` names any tampering that gets past it, and the chain
continues across an operator restart.

The control plane (and its one audit chain) is shared by every integration module: a test that
tampers with it puts it back before it ends, so every later `audit verify` must exit 0."""
from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from factories import dept_groups, reviewer_groups
from helpers import Impersonated, wait_for
from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.models import audit as chain
from yunshang.models.tenant import ADMIN_GROUP
from yunshang.policies import OPERATOR_USER

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
RECORDS = f"/apis/{GROUP}/{VERSION}/auditrecords"
BINDING = "yunshang-audit-append-only"
BY_POLICY = f"ValidatingAdmissionPolicy '{BINDING}' with binding '{BINDING}' denied request: "
APPEND_ONLY = "the audit trail is append-only: records cannot be changed or removed"
ONLY_THE_OPERATOR = "only the operator appends to the audit trail"


def cli(monkeypatch, capsys, kubeconfig, *args):
    monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", str(kubeconfig), *args])
    capsys.readouterr()
    code = run_app(app)
    o, e = capsys.readouterr()
    return code, o, e


def flags(name):
    return ["tenant", "request", name, "--department-code", "520000-AU", "--department-name", "审计局",
            "--level", "province", "--owner", "li.wei", "--purpose", "audit", "--project", "AU-1", "--cpu", "4"]


def test_actions_are_recorded_verified_and_tampering_is_named(platform, operator, kube_api, monkeypatch, capsys):
    import json

    name = f"au-{uuid.uuid4().hex[:6]}"
    dept = platform.identity_kubeconfig(f"clerk-{name}", dept_groups(name))
    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    assert cli(monkeypatch, capsys, dept, *flags(name))[0] == 0
    assert cli(monkeypatch, capsys, admin, "tenant", "approve", name, "--all-roles", "--reason", "project approved")[0] == 0
    assert cli(monkeypatch, capsys, admin, "tenant", "suspend", name, "--reason", "review")[0] == 0
    assert cli(monkeypatch, capsys, admin, "tenant", "resume", name)[0] == 0

    def mine():
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "--tenant", name, "-o", "json")
        return [(r["action"], r["actor"]) for r in json.loads(o)] if code == 0 else []

    want = [("TenantRequested", f"clerk-{name}"), *[("TenantSignedOff", "bureau.chen")] * 3,
            ("TenantSuspended", "bureau.chen"), ("TenantResumed", "bureau.chen")]
    wait_for("records", lambda: mine()[:6] == want, timeout=30)
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
    assert code == 0 and json.loads(o)["intact"]

    co = client.CustomObjectsApi(kube_api)
    victim = sorted(records(co), key=lambda r: r["spec"]["seq"])[1]
    # someone removes the policy binding and edits a record: verify names it; then it is put back
    adm = client.AdmissionregistrationV1Api(kube_api)
    binding = adm.read_validating_admission_policy_binding(BINDING)
    adm.delete_validating_admission_policy_binding(BINDING)
    try:
        def edit(actor):
            co.patch_cluster_custom_object(GROUP, VERSION, "auditrecords", victim["metadata"]["name"],
                                           {"spec": {"actor": actor}})
            return True

        wait_for("edit allowed once the binding is gone", lambda: edit("mallory"), timeout=20)
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify")
        assert code == 1 and f"record {victim['spec']['seq']} was edited" in o and "TAMPERED" in o, o
    finally:
        edit(victim["spec"]["actor"])  # the record as it was: the chain is whole again
        restore_binding(kube_api, binding)
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
    assert code == 0 and json.loads(o)["intact"], o


def records(co) -> list[dict]:
    return co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"]


def restore_binding(kube_api, binding) -> None:
    """The append-only binding back, and enforced again (a dry-run edit by system:masters refused)."""
    binding.metadata = client.V1ObjectMeta(name=BINDING)
    client.AdmissionregistrationV1Api(kube_api).create_validating_admission_policy_binding(binding)
    co = client.CustomObjectsApi(kube_api)
    name = records(co)[0]["metadata"]["name"]
    root = Impersonated(kube_api, "root.admin", ["system:masters"])
    wait_for("the append-only policy enforced again", lambda: APPEND_ONLY in root.merge_patch(
        f"{RECORDS}/{name}?dryRun=All", {"spec": {"actor": "x"}})[1].get("message", ""), timeout=20)


@pytest.fixture
def may_write_records(kube_api):
    """RBAC write on audit records granted to the departments, the reviewers and the platform admins
    (a careless grant), so that what refuses them below is the policy and not RBAC."""
    rbac, authz = client.RbacAuthorizationV1Api(kube_api), client.AuthorizationV1Api(kube_api)
    name = f"test:audit-writers-{uuid.uuid4().hex[:5]}"
    groups = ["yunshang:departments", "yunshang:reviewer:security", ADMIN_GROUP]
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [{
        "apiGroups": [GROUP], "resources": ["auditrecords"], "verbs": ["create", "update", "patch", "delete"]}]})
    rbac.create_cluster_role_binding({"metadata": {"name": name}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}, "subjects": [
        {"kind": "Group", "name": g, "apiGroup": "rbac.authorization.k8s.io"} for g in groups]})

    def granted(group):
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": "probe", "groups": [group], "resourceAttributes": {
                "verb": "delete", "group": GROUP, "resource": "auditrecords"}}}
        return authz.create_subject_access_review(review).status.allowed
    wait_for("RBAC grants the writes", lambda: all(granted(g) for g in groups), timeout=30)
    yield
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


@pytest.mark.control("yunshang-audit-append-only")
def test_the_policy_refuses_edits_and_deletes_to_everyone_and_appends_to_all_but_the_operator(
        platform, operator, kube_api, may_write_records, monkeypatch, capsys):
    """Control: the yunshang-audit-append-only admission policy, its own message each time, for a
    department, a reviewer, a platform admin (each with RBAC write on records, so RBAC refuses
    nothing) and system:masters; beside it the operator's append is admitted."""
    import json

    name = f"ap-{uuid.uuid4().hex[:6]}"
    dept = platform.identity_kubeconfig(f"clerk-{name}", dept_groups(name))
    assert cli(monkeypatch, capsys, dept, *flags(name))[0] == 0  # a record of this test's own
    co = client.CustomObjectsApi(kube_api)
    mine = wait_for("the request recorded", lambda: [r for r in records(co) if name in r["spec"]["tenants"]])[0]
    path = f"{RECORDS}/{mine['metadata']['name']}?dryRun=All"
    head = max(records(co), key=lambda r: r["spec"]["seq"])
    appended = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AuditRecord",
                "metadata": {"name": f"probe-{uuid.uuid4().hex[:8]}"},
                "spec": {**json.loads(json.dumps(head["spec"])), "seq": head["spec"]["seq"] + 1,
                         "prevHash": head["spec"]["hash"]}}
    who = {"department": Impersonated(kube_api, f"clerk-{name}", dept_groups(name)),
           "reviewer": Impersonated(kube_api, "security.reviewer", reviewer_groups("security")),
           "platform admin": Impersonated(kube_api, "bureau.chen", [ADMIN_GROUP]),
           "system:masters": Impersonated(kube_api, "root.admin", ["system:masters"])}
    for identity, caller in who.items():
        for verb, (code, body) in (("edit", caller.merge_patch(path, {"spec": {"actor": "mallory"}})),
                                   ("delete", caller.delete(path))):
            msg = body.get("message", "")
            assert code == 403 and BY_POLICY in msg and APPEND_ONLY in msg, (identity, verb, code, msg)
        if identity != "system:masters":  # the policy lets system:masters append (break-glass)
            code, body = caller.create(f"{RECORDS}?dryRun=All", appended)
            msg = body.get("message", "")
            assert code == 403 and BY_POLICY in msg and ONLY_THE_OPERATOR in msg, (identity, code, msg)
    # control: the operator appends
    the_operator = Impersonated(kube_api, OPERATOR_USER, ["system:serviceaccounts",
                                                          "system:serviceaccounts:yunshang-system",
                                                          "system:authenticated"])
    code, body = the_operator.create(f"{RECORDS}?dryRun=All", appended)
    assert code == 201, body


def test_chain_continues_across_an_operator_restart(platform, operator, kube_api, monkeypatch, capsys):
    """The operator keeps no state: restarted, it reads the chain's head back and links the next
    record to it by hash."""
    import json

    co = client.CustomObjectsApi(kube_api)
    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    name = f"ar-{uuid.uuid4().hex[:6]}"
    assert cli(monkeypatch, capsys, admin, *flags(name))[0] == 0
    wait_for("first record", lambda: [r for r in records(co) if name in r["spec"]["tenants"]])
    before = {r["spec"]["seq"]: r["spec"]["hash"] for r in records(co)}
    operator.kill()
    operator.start()
    assert cli(monkeypatch, capsys, admin, "tenant", "approve", name, "--all-roles")[0] == 0
    wait_for("records after the restart", lambda: len([r for r in records(co) if name in r["spec"]["tenants"]]) >= 2,
             timeout=30)
    after = sorted(records(co), key=lambda r: r["spec"]["seq"])
    by_seq = {r["spec"]["seq"]: r["spec"] for r in after}
    head = max(before)
    assert {s: by_seq[s]["hash"] for s in before} == before  # nothing before the restart changed
    assert by_seq[head + 1]["prevHash"] == before[head]  # the first record after it links to the head by hash
    specs = [chain.AuditRecordSpec.model_validate(r["spec"]) for r in after]
    assert chain.verify(specs) == []  # every hash recomputed, every link checked
    for s in specs:
        assert s.hash == chain.make(s.seq, s.time, s.actor, s.action, s.object, s.tenants, s.details,
                                    s.prev_hash).hash
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
    assert code == 0 and json.loads(o)["intact"], o


def test_a_shortened_or_vanished_trail_is_caught_by_its_anchor(platform, operator, kube_api, monkeypatch, capsys):
    """The operator keeps the chain's head in a ConfigMap outside the chain and as metrics; records
    deleted past the append-only policy (some, then all) make `audit verify` fail with one line,
    and the anchor does not move back.  The records are put back afterwards, byte for byte."""
    import json

    from yunshang.models.audit import DEFAULT_ANCHOR

    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    name = f"an-{uuid.uuid4().hex[:6]}"
    assert cli(monkeypatch, capsys, admin, *flags(name))[0] == 0
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    ns, cm = DEFAULT_ANCHOR.split("/")

    def records():
        return sorted(co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"],
                      key=lambda r: r["spec"]["seq"])

    head = wait_for("the request recorded", lambda: [r for r in records() if name in r["spec"]["tenants"]])[-1]
    head_seq = records()[-1]["spec"]["seq"]
    wait_for("anchored", lambda: int(core.read_namespaced_config_map(cm, ns).data["seq"]) >= head_seq, timeout=30)
    anchor = core.read_namespaced_config_map(cm, ns).data
    assert anchor["hash"] == records()[-1]["spec"]["hash"] and head["spec"]["seq"] <= int(anchor["seq"])
    def verified():  # (exit code, problems)
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
        return code, json.loads(o)

    code, result = verified()
    assert code == 0 and result["anchor"]["seq"] == anchor["seq"] and result["problems"] == [], result

    saved = records()
    adm = client.AdmissionregistrationV1Api(kube_api)
    binding = adm.read_validating_admission_policy_binding(BINDING)
    adm.delete_validating_admission_policy_binding(BINDING)

    def delete(items) -> None:
        for r in items:
            wait_for(f"delete {r['metadata']['name']}", lambda r=r: co.delete_cluster_custom_object(
                GROUP, VERSION, "auditrecords", r["metadata"]["name"]) or True, timeout=20)

    def restore(items) -> None:
        for r in items:
            co.create_cluster_custom_object(GROUP, VERSION, "auditrecords", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuditRecord",
                "metadata": {"name": r["metadata"]["name"], "labels": r["metadata"].get("labels", {})},
                "spec": r["spec"]})

    try:
        delete(saved[-2:])
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify")
        assert code == 1
        line = o.strip().splitlines()[0]
        assert f"2 records missing since anchor #{anchor['seq']}" in line and f"ends at #{int(anchor['seq']) - 2}" in line
        restore(saved[-2:])
        delete(saved)
        code, result = verified()
        assert code == 1
        assert result["problems"][0].startswith(f"{anchor['seq']} records missing since anchor #{anchor['seq']}")
        # the operator sees it: the head metric drops to 0, the anchor stays where it was
        wait_for("head metric 0", lambda: operator.metrics().get("yunshang_audit_head_seq{}") == 0, timeout=20)
        assert operator.metrics()["yunshang_audit_anchor_seq{}"] == int(anchor["seq"])
        assert core.read_namespaced_config_map(cm, ns).data["seq"] == anchor["seq"]
    finally:
        present = {r["metadata"]["name"] for r in records()}
        restore([r for r in saved if r["metadata"]["name"] not in present])
        restore_binding(kube_api, binding)
    code, result = verified()
    assert code == 0 and result["problems"] == [], result
