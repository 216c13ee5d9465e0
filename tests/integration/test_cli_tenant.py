"""`yunshang tenant ...` end to end: the real CLI entry point, API server and operator."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.models.tenant import ADMIN_GROUP

from factories import dept_groups, reviewer_groups
from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, kubeconfig, capsys, monkeypatch):
        self.kubeconfig, self.capsys, self.mp = str(kubeconfig), capsys, monkeypatch

    def __call__(self, *args, ok=True):
        self.mp.setattr("sys.argv", ["yunshang", "--kubeconfig", self.kubeconfig, *args])
        self.capsys.readouterr()
        code = run_app(app)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        if ok:
            assert code == 0, err
        return code, out, err

    def json(self, *args):
        return json.loads(self(*args, "-o", "json")[1])


@pytest.fixture
def admin(platform, operator, capsys, monkeypatch):
    kc = platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()])
    return Cli(kc, capsys, monkeypatch)


def dept_cli(platform, name, capsys, monkeypatch):
    return Cli(platform.identity_kubeconfig(f"clerk-{name}", dept_groups(name)), capsys, monkeypatch)


def phase(admin, name):
    return admin.json("tenant", "show", name).get("status", {}).get("phase")


def flags(name, **over):
    base = {"--department-code": "520000-T", "--department-name": "测试局", "--level": "province",
            "--owner": "li.wei", "--purpose": "testing", "--project": "T-1", "--cpu": "4", "--memory": "8Gi"}
    base.update(over)
    return ["tenant", "request", name, *[x for kv in base.items() for x in kv]]


def test_department_requests_reviewers_sign_in_parallel_operator_provisions(platform, admin, capsys, monkeypatch):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    dept = dept_cli(platform, name, capsys, monkeypatch)
    dept(*flags(name))
    assert phase(admin, name) in (None, "Pending")
    # the department cannot approve itself: one line that says who can
    code, _, err = dept("tenant", "approve", name, ok=False)
    assert code == 1 and "hold no reviewer role" in err and len(err.strip().splitlines()) == 1
    code, _, err = dept("tenant", "approve", name, "--role", "security", ok=False)
    assert code == 1 and "not in group yunshang:reviewer:security" in err
    reviewers = {r: Cli(platform.identity_kubeconfig(f"{r}.li", reviewer_groups(r)), capsys, monkeypatch)
                 for r in ("security", "finance", "platform")}
    for role, cli in reviewers.items():  # each on its own, the role inferred from the caller's group
        _, out, _ = cli("tenant", "approve", name)
        assert f"{role} approved the request of tenant" in out
        if role != "platform":
            wait_for("still pending", lambda: phase(admin, name) == "Pending")
    code, _, err = reviewers["security"]("tenant", "approve", name, ok=False)
    assert code == 1 and "security already decided round 1" in err
    wait_for("Ready", lambda: phase(admin, name) == "Ready", timeout=60)
    listed = {t["name"]: t for t in admin.json("tenant", "list")}
    assert listed[name]["phase"] == "Ready" and listed[name]["namespaces"] == 1
    shown = admin.json("tenant", "show", name)
    assert sorted((d["role"], d["by"]) for d in shown["spec"]["signoffs"]) == [
        ("finance", "finance.li"), ("platform", "platform.li"), ("security", "security.li")]
    _, out, _ = admin("tenant", "show", name)
    assert "Ready" in out and f"{name}-main" in out and "security   Approved by security.li" in out


def test_catalog_file_request(admin, platform, kube_api, tmp_path):
    """A catalogue file is requested as it is (under a name of this test's, so that nothing else decides
    whether it exists); the same request again is refused in one line."""
    from kubernetes import client

    name = f"cat-{uuid.uuid4().hex[:6]}"
    f = tmp_path / f"{name}.yaml"
    f.write_text((ROOT / "tenants" / "gz-bigdata.yaml").read_text().replace("name: gz-bigdata", f"name: {name}", 1))
    code, out, err = admin("tenant", "request", "-f", str(f), ok=False)
    assert code == 0, err
    body = client.CustomObjectsApi(kube_api).get_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", name)
    assert body["spec"]["department"]["code"] == "520000-DSJ"
    code, _, err = admin("tenant", "request", "-f", str(f), ok=False)
    assert code == 1 and "already exists" in err and err.count("\n") == 1, err


def test_errors_are_one_clear_line(admin):
    code, _, err = admin("tenant", "show", "no-such-tenant", ok=False)
    assert code == 1 and "tenant 'no-such-tenant' not found" in err
    code, _, err = admin(*flags("bad-cpu", **{"--cpu": "lots"}), ok=False)
    assert code == 2 and "--cpu 'lots': is not a quantity" in err
    code, _, err = admin(*flags("Bad_Name"), ok=False)
    assert code == 2 and "tenant name 'Bad_Name'" in err
    code, _, err = admin(*flags("x" * 29, **{"--namespace": "averylongnamespacesuffixindeedyesitisreally"}), ok=False)
    assert code == 2 and "longer than 63" in err
    code, _, err = admin(*flags("orphan", **{"--level": "city", "--parent": "nobody-here"}), ok=False)
    assert code == 1 and "--parent 'nobody-here': no such tenant" in err
    code, _, err = admin("tenant", "reject", "whatever", "--reason", " ", ok=False)
    assert code == 1
    for e in (err,):
        assert len(e.strip().splitlines()) == 1


def test_quota_over_parent_remainder_is_refused_with_what_is_left(admin):
    prov = f"p-{uuid.uuid4().hex[:6]}"
    admin(*flags(prov, **{"--cpu": "8", "--memory": "16Gi"}))
    admin("tenant", "approve", prov, "--all-roles")
    city = f"c-{uuid.uuid4().hex[:6]}"
    admin(*flags(city, **{"--level": "city", "--parent": prov, "--cpu": "6", "--memory": "8Gi", "--pods": "5"}))
    admin("tenant", "approve", city, "--all-roles")
    city2 = f"c-{uuid.uuid4().hex[:6]}"
    code, _, err = admin(*flags(city2, **{"--level": "city", "--parent": prov, "--cpu": "3", "--memory": "1Gi",
                                          "--pods": "5"}), ok=False)
    assert code == 1 and "left cpu 2" in err


def test_suspend_resume_quota_reject_delete(admin):
    name = f"s-{uuid.uuid4().hex[:6]}"
    admin(*flags(name))
    admin("tenant", "approve", name, "--all-roles")
    wait_for("Ready", lambda: phase(admin, name) == "Ready")
    admin("tenant", "suspend", name, "--reason", "security review")
    wait_for("Suspended", lambda: phase(admin, name) == "Suspended")
    admin("tenant", "resume", name)
    wait_for("Ready again", lambda: phase(admin, name) == "Ready")
    _, out, _ = admin("tenant", "quota", name, "--cpu", "6")  # above what was approved: a new round
    assert "quota request (round 2)" in out
    wait_for("round 2 open", lambda: "round 2" in (admin.json("tenant", "show", name).get("status") or {}).get("message", ""))
    _, out, _ = admin("tenant", "show", name)
    assert "sign-off   : round 2 Pending (round 1 approved)" in out and "Ready" in out
    pend = f"r-{uuid.uuid4().hex[:6]}"
    admin(*flags(pend))
    admin("tenant", "reject", pend, "--reason", "no approved project", "--role", "security")
    wait_for("Rejected", lambda: phase(admin, pend) == "Rejected")
    admin("tenant", "delete", name, "--yes")
    wait_for("gone", lambda: admin("tenant", "show", name, ok=False)[0] == 1, timeout=60)


def test_light_read_path_agrees_with_the_kubernetes_client(platform, admin):
    """`tenant list`/`show` read through yunshang.rest (no kubernetes import): same objects and
    the same one-line errors as through the kubernetes client, on the real API server."""
    from yunshang.client import ClientError, Tenants

    def both(kc):
        fast, slow = Tenants(str(kc)), Tenants(str(kc))
        assert fast.rest is not None
        slow.rest = None
        return fast, slow

    fast, slow = both(platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()]))
    names = lambda items: sorted(t["metadata"]["name"] for t in items)  # noqa: E731
    assert names(fast.list()) == names(slow.list())
    some = names(slow.list())
    if some:
        assert fast.get(some[0]) == slow.get(some[0])
    for client_ in (fast, slow):
        with pytest.raises(ClientError, match="tenant 'no-such-tenant' not found"):
            client_.get("no-such-tenant")
    fast, slow = both(platform.identity_kubeconfig("passer.by", []))  # authenticated, no rights
    msgs = []
    for client_ in (fast, slow):
        with pytest.raises(ClientError) as e:
            client_.list()
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and msgs[0].startswith("not allowed:")
