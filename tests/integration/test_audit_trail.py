"""The audit trail on the real platform: CLI actions become hash-chained records (with the
authenticated user), the API server refuses edits and deletes, `audit verify` names any
tampering that gets past it, and the chain continues across an operator restart."""
from __future__ import annotations

import uuid

from kubernetes import client

from factories import dept_groups, reviewer_groups
from helpers import Impersonated, wait_for
from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.models.tenant import ADMIN_GROUP

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"


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
    records = co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"]
    victim = sorted(records, key=lambda r: r["spec"]["seq"])[1]["metadata"]["name"]
    # the API server refuses edits and deletes, to everyone (admins and system:masters included)
    for who in (Impersonated(kube_api, "bureau.chen", [ADMIN_GROUP]),):
        code, body = who.merge_patch(f"/apis/{GROUP}/{VERSION}/auditrecords/{victim}", {"spec": {"actor": "x"}})
        assert code == 403
    try:
        co.delete_cluster_custom_object(GROUP, VERSION, "auditrecords", victim)
        raise AssertionError("delete of an audit record was allowed")
    except client.ApiException as e:
        assert e.status == 403 and "append-only" in e.body
    # someone removes the policy binding and edits a record: verify names it
    adm = client.AdmissionregistrationV1Api(kube_api)
    binding = adm.read_validating_admission_policy_binding("yunshang-audit-append-only")
    adm.delete_validating_admission_policy_binding("yunshang-audit-append-only")
    try:
        def edit():
            co.patch_cluster_custom_object(GROUP, VERSION, "auditrecords", victim, {"spec": {"actor": "mallory"}})
            return True

        wait_for("edit allowed once the binding is gone", edit, timeout=20)
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify")
        assert code == 1 and "was edited" in o and "TAMPERED" in o
    finally:
        binding.metadata = client.V1ObjectMeta(name="yunshang-audit-append-only")
        adm.create_validating_admission_policy_binding(binding)


def test_chain_continues_across_an_operator_restart(platform, operator, kube_api, monkeypatch, capsys):
    import json

    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    name = f"ar-{uuid.uuid4().hex[:6]}"
    assert cli(monkeypatch, capsys, admin, *flags(name))[0] == 0
    wait_for("first record", lambda: json.loads(cli(monkeypatch, capsys, admin, "audit", "--tenant", name, "-o", "json")[1]))
    operator.kill()
    operator.start()
    assert cli(monkeypatch, capsys, admin, "tenant", "approve", name, "--all-roles")[0] == 0
    wait_for("second record", lambda: len(json.loads(cli(monkeypatch, capsys, admin, "audit", "--tenant", name,
                                                             "-o", "json")[1])) >= 2, timeout=30)
    seqs = [r["seq"] for r in json.loads(cli(monkeypatch, capsys, admin, "audit", "--limit", "0", "-o", "json")[1])]
    assert seqs == list(range(1, len(seqs) + 1))


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
    def verified():  # (exit code, problems); an earlier test left an edited record behind on purpose
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
        return code, json.loads(o)

    code, result = verified()
    assert result["anchor"]["seq"] == anchor["seq"] and not [p for p in result["problems"] if "anchor" in p]

    saved = records()
    adm = client.AdmissionregistrationV1Api(kube_api)
    binding = adm.read_validating_admission_policy_binding("yunshang-audit-append-only")
    adm.delete_validating_admission_policy_binding("yunshang-audit-append-only")

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
        binding.metadata = client.V1ObjectMeta(name="yunshang-audit-append-only")
        adm.create_validating_admission_policy_binding(binding)
    code, result = verified()
    assert not [p for p in result["problems"] if "anchor" in p or "removed" in p], result
