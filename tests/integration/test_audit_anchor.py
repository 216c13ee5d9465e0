"""The audit anchor cannot be erased: with the newest records and the anchor ConfigMap deleted
(past the append-only policy), `yunshang audit verify` fails with one line and the operator does
not re-anchor the shortened chain — neither while it remembers the anchor nor after a restart,
when it remembers nothing.  Prometheus' history of the head is the witness outside the cluster.

The control plane (and its one audit chain) is shared by every integration module: whatever
is deleted here is put back byte for byte, and the anchor with it, before the test ends."""
from __future__ import annotations

import json
import uuid

from kubernetes import client

from conftest import prom_query
from factories import reviewer_groups
from helpers import wait_for
from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.models import audit as chain
from yunshang.models.audit import DEFAULT_ANCHOR, WITNESS_QUERY, witness_seq
from yunshang.models.tenant import ADMIN_GROUP

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
BINDING = "yunshang-audit-append-only"
NS, CM = DEFAULT_ANCHOR.split("/")


def cli(monkeypatch, capsys, kubeconfig, *args):
    monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", str(kubeconfig), *args])
    capsys.readouterr()
    code = run_app(app)
    o, e = capsys.readouterr()
    return code, o, e


def request_and_approve(monkeypatch, capsys, admin) -> str:
    """Four records: the request and the three sign-offs."""
    name = f"aa-{uuid.uuid4().hex[:6]}"
    assert cli(monkeypatch, capsys, admin, "tenant", "request", name, "--department-code", "520000-AA",
               "--department-name", "审计局", "--level", "province", "--owner", "li.wei", "--purpose", "anchor",
               "--project", "AA-1", "--cpu", "2")[0] == 0
    assert cli(monkeypatch, capsys, admin, "tenant", "approve", name, "--all-roles", "--reason", "ok")[0] == 0
    return name


class Trail:
    """The shared chain as an admin sees it, and the means to tamper with it and put it back."""

    def __init__(self, kube_api, operator):
        self.co, self.core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
        self.adm = client.AdmissionregistrationV1Api(kube_api)
        self.operator = operator

    def records(self) -> list[dict]:
        return sorted(self.co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"],
                      key=lambda r: r["spec"]["seq"])

    def anchor(self) -> dict | None:
        try:
            return self.core.read_namespaced_config_map(CM, NS).data
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def metric(self, name: str) -> float:
        return self.operator.metrics().get(name + "{}", 0.0)

    def rounds_pass(self, n: int = 2) -> None:
        """Until the operator completed ``n`` more anchor rounds (the first may have begun before)."""
        start = self.metric("yunshang_audit_anchor_rounds_total")
        wait_for(f"{n} anchor rounds", lambda: self.metric("yunshang_audit_anchor_rounds_total") >= start + n,
                 timeout=30)

    def delete_records(self, items) -> None:
        for r in items:
            wait_for(f"delete {r['metadata']['name']}", lambda r=r: self.co.delete_cluster_custom_object(
                GROUP, VERSION, "auditrecords", r["metadata"]["name"]) or True, timeout=20)

    def restore_records(self, saved) -> None:
        present = {r["metadata"]["name"] for r in self.records()}
        for r in saved:
            if r["metadata"]["name"] not in present:
                self.co.create_cluster_custom_object(GROUP, VERSION, "auditrecords", {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuditRecord",
                    "metadata": {"name": r["metadata"]["name"], "labels": r["metadata"].get("labels", {})},
                    "spec": r["spec"]})

    def delete_anchor(self) -> None:
        self.core.delete_namespaced_config_map(CM, NS)
        wait_for("anchor ConfigMap gone", lambda: self.anchor() is None, timeout=20)

    def put_anchor(self, data: dict) -> None:
        try:
            self.core.create_namespaced_config_map(NS, client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=CM, namespace=NS, labels={"app.kubernetes.io/part-of": "yunshang"}),
                data=data))
        except client.ApiException as e:
            if e.status != 409:  # the operator was quicker (it restores what it can prove)
                raise


def anchored(monkeypatch, capsys, admin, trail: Trail, monitoring) -> tuple[list[dict], dict]:
    """A chain of at least four records, anchored at its head and witnessed by Prometheus."""
    name = request_and_approve(monkeypatch, capsys, admin)
    wait_for("the request and sign-offs recorded",
             lambda: len([r for r in trail.records() if name in r["spec"]["tenants"]]) >= 4, timeout=30)
    seen: list[int] = []

    def settled() -> bool:  # the same head on two looks, a round apart, and the anchor on it
        head = trail.records()[-1]["spec"]["seq"]
        trail.rounds_pass(1)
        seen.append(head)
        return seen[-2:] == [head, head] and int((trail.anchor() or {}).get("seq", -1)) == head

    wait_for("anchored at a settled head", settled, timeout=30)
    wait_for("witnessed by Prometheus",
             lambda: (witness_seq(prom_query(monitoring, WITNESS_QUERY)) or 0) >= seen[-1], timeout=30)
    return trail.records(), trail.anchor()


def preexisting(trail: Trail) -> list[str]:
    """What `verify` says about the chain itself, apart from anchors (another module may leave
    an edited record behind on purpose: test_audit_trail)."""
    return chain.verify(chain.AuditRecordSpec.model_validate(r["spec"]) for r in trail.records())


def prometheus(monitoring) -> str:
    return f"http://127.0.0.1:{monitoring.ports['prometheus']}"


def test_verify_passes_on_an_intact_chain_with_its_anchor(platform, operator, monitoring, kube_api,
                                                          monkeypatch, capsys):
    """The control: an intact, anchored chain verifies, with or without the witness, and an
    unreachable witness is said in one line, not an error."""
    from yunshang.dev.controlplane import free_port

    monkeypatch.delenv("YUNSHANG_PROMETHEUS_URL", raising=False)
    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    trail = Trail(kube_api, operator)
    records, anchor = anchored(monkeypatch, capsys, admin, trail, monitoring)
    before = preexisting(trail)
    want = 1 if before else 0

    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify")
    lines = o.strip().splitlines()
    assert code == want and [line for line in lines if line.startswith("TAMPERED")] == [f"TAMPERED {p}" for p in before]
    if not before:
        assert lines[0].startswith(f"{len(records)} records, chain intact; head #{records[-1]['spec']['seq']}")
        assert f"anchor #{anchor['seq']}" in lines[0]
    assert lines[-1] == ("outside witness not consulted: no Prometheus given (--prometheus or "
                         "YUNSHANG_PROMETHEUS_URL); checked against the anchor only")

    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "--prometheus", prometheus(monitoring),
                     "-o", "json")
    result = json.loads(o)
    assert code == want and result["problems"] == before and result["witness"]["consulted"]
    assert result["witness"]["seq"] >= int(anchor["seq"])

    monkeypatch.setenv("YUNSHANG_PROMETHEUS_URL", prometheus(monitoring))  # the default
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify")
    assert code == want and o.strip().splitlines()[-1].startswith(
        f"outside witness: Prometheus at {prometheus(monitoring)} recorded at most #")

    gone = f"http://127.0.0.1:{free_port()}"
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "--prometheus", gone)
    assert code == want and o.strip().splitlines()[-1] == (
        f"outside witness not consulted: Prometheus at {gone} did not answer (connection refused); "
        "checked against the anchor only")


def test_deleted_records_and_anchor_fail_verify_and_are_never_reanchored(platform, operator, monitoring, kube_api,
                                                                         monkeypatch, capsys):
    """The finding: the newest records and the anchor deleted.  verify fails with one line (and
    the witness names the shortening too); the operator, which remembers the anchor, does not
    re-anchor, and restores the anchor once the records are back.  Restarted (nothing
    remembered) with records but no anchor, it does not anchor either, until the bureau puts
    the anchor back."""
    monkeypatch.delenv("YUNSHANG_PROMETHEUS_URL", raising=False)
    admin = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    trail = Trail(kube_api, operator)
    saved, anchor = anchored(monkeypatch, capsys, admin, trail, monitoring)
    before = preexisting(trail)
    head = saved[-1]["spec"]["seq"]
    assert trail.metric("yunshang_audit_anchor_broken") == 0 and trail.metric("yunshang_audit_anchor_missing") == 0

    def tampered() -> list[str]:
        code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", *extra)
        assert code == 1, o
        return [line for line in o.strip().splitlines()
                if line.startswith("TAMPERED") and line.removeprefix("TAMPERED ") not in before]

    binding = trail.adm.read_validating_admission_policy_binding(BINDING)
    trail.adm.delete_validating_admission_policy_binding(BINDING)
    try:
        # the records first (were the anchor deleted first, the operator would rightly restore it)
        trail.delete_records(saved[-2:])
        wait_for("broken", lambda: trail.metric("yunshang_audit_anchor_broken") == 1, timeout=20)
        trail.delete_anchor()
        wait_for("missing", lambda: trail.metric("yunshang_audit_anchor_missing") == 1, timeout=20)
        trail.rounds_pass()
        assert trail.anchor() is None, "the operator re-anchored a shortened chain"
        assert trail.metric("yunshang_audit_anchor_seq") == int(anchor["seq"])  # Prometheus keeps it

        extra: tuple[str, ...] = ()
        assert tampered() == [
            f"TAMPERED audit chain has {len(saved) - 2} records but no anchor in {DEFAULT_ANCHOR}: the anchor was "
            "deleted; ask the platform bureau to investigate before re-anchoring"]
        extra = ("--prometheus", prometheus(monitoring))
        lines = tampered()
        assert len(lines) == 2 and lines[1].startswith(
            f"TAMPERED the audit chain ends at #{head - 2} but Prometheus at {prometheus(monitoring)} recorded #{head}")

        # the records back: the chain extends the anchor the operator remembers, which it restores
        restores = trail.metric("yunshang_audit_anchor_restores_total")
        trail.restore_records(saved)
        restored = wait_for("anchor restored", trail.anchor, timeout=20)
        assert int(restored["seq"]) >= head
        assert restored["hash"] == trail.records()[int(restored["seq"]) - 1]["spec"]["hash"]
        assert trail.metric("yunshang_audit_anchor_restores_total") == restores + 1

        # a restart forgets: records without an anchor stay unanchored
        operator.kill()
        trail.delete_anchor()
        operator.start()
        wait_for("missing after the restart", lambda: trail.metric("yunshang_audit_anchor_missing") == 1, timeout=30)
        trail.rounds_pass()
        assert trail.anchor() is None, "the operator re-anchored records without an anchor after a restart"
        extra = ()
        assert tampered() == [
            f"TAMPERED audit chain has {len(trail.records())} records but no anchor in {DEFAULT_ANCHOR}: the anchor "
            "was deleted; ask the platform bureau to investigate before re-anchoring"]
        # the bureau, having investigated, puts the anchor back: anchoring resumes from it
        trail.put_anchor(restored)
        wait_for("anchoring resumes", lambda: trail.metric("yunshang_audit_anchor_missing") == 0, timeout=20)
    finally:
        trail.restore_records(saved)
        if operator.proc.poll() is not None:
            operator.start()
        if trail.anchor() is None:
            trail.put_anchor(anchor)
        binding.metadata = client.V1ObjectMeta(name=BINDING)
        trail.adm.create_validating_admission_policy_binding(binding)
    wait_for("anchored again", lambda: trail.metric("yunshang_audit_anchor_broken") == 0
             and trail.metric("yunshang_audit_anchor_missing") == 0, timeout=30)
    code, o, _ = cli(monkeypatch, capsys, admin, "audit", "verify", "-o", "json")
    assert json.loads(o)["problems"] == before
