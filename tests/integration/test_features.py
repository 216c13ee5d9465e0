"""Features the README promises that no test exercised before (issue 23, item 6), each through the
real CLI or the real API server: the tenant controls on every workload kind and on ephemeral
containers, the audit filters, report csv and --since, --context, share show and withdraw
--revoke-existing, and the views' cap of 200 records per department."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import pytest
import yaml
from kubernetes import client

from factories import dept_groups
from helpers import Impersonated, granted, ready_tenant, wait_for
from test_cli_tenant import Cli

from yunshang.models.tenant import ADMIN_GROUP, GROUP, VERSION

from test_boundary_attacks import API, DRY, uid

EVIL = "docker.io/evil/miner:1"
GOOD = "registry.gz.gov.local/app:1"


@pytest.fixture
def admin(platform, operator, capsys, monkeypatch):
    return Cli(platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP]), capsys, monkeypatch)


@pytest.fixture
def owned(operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = uid("ft")
    ready_tenant(co, name)
    return name, Impersonated(kube_api, "li.wei", dept_groups(name))


def _pod_spec(image: str) -> dict:
    return {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": image, "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsUser": 1000}}]}


def _workload(kind: str, image: str) -> tuple[str, dict]:
    template = {"metadata": {"labels": {"app": "w"}}, "spec": _pod_spec(image)}
    if kind == "Job":
        return "/apis/batch/v1", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "w"},
                                  "spec": {"template": {**template, "spec": {**template["spec"],
                                                                               "restartPolicy": "Never"}}}}
    if kind == "CronJob":
        return "/apis/batch/v1", {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "w"},
                                  "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
                                      **template, "spec": {**template["spec"], "restartPolicy": "Never"}}}}}}
    spec = {"selector": {"matchLabels": {"app": "w"}}, "template": template}
    if kind == "StatefulSet":
        spec["serviceName"] = "w"
    return "/apis/apps/v1", {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w"}, "spec": spec}


@pytest.mark.control("yunshang-tenant-controls")
@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "Job", "CronJob"])
def test_every_workload_kind_is_held_to_the_allowed_registries(owned, kind):
    """Control: the yunshang-tenant-controls policy on workload templates."""
    name, owner = owned
    group, body = _workload(kind, EVIL)
    path = f"{group}/namespaces/{name}-main/{kind.lower()}s{DRY}"
    code, resp = owner.create(path, body)
    assert code == 403 and f"image {EVIL} is not from an allowed registry" in resp["message"], resp
    code, resp = owner.create(path, _workload(kind, GOOD)[1])  # control
    assert code == 201, resp


@pytest.mark.control("yunshang-tenant-controls")
def test_an_ephemeral_container_is_held_to_the_allowed_registries(owned, kube_api):
    """Control: the yunshang-tenant-controls policy on the pods/ephemeralcontainers subresource
    (`kubectl debug`), for whoever may use it (system:masters here: the tenant's owners may not,
    Kubernetes' built-in admin role leaves it out, which the first request shows)."""
    name, owner = owned
    ns = f"{name}-main"
    masters = Impersonated(kube_api, "break.glass", ["system:masters"])
    code, resp = owner.create(f"/api/v1/namespaces/{ns}/pods", {"apiVersion": "v1", "kind": "Pod",
                                                              "metadata": {"name": "p"}, "spec": _pod_spec(GOOD)})
    assert code == 201, resp

    def debug(who, image):
        for _ in range(10):  # the pod's status moves under us (409): read it again
            pod = who.request("GET", f"/api/v1/namespaces/{ns}/pods/p")[1]
            pod["spec"]["ephemeralContainers"] = [*pod["spec"].get("ephemeralContainers", []), {
                "name": f"dbg{uuid.uuid4().hex[:4]}", "image": image,
                "securityContext": pod["spec"]["containers"][0]["securityContext"]}]
            code, resp = who.request("PUT", f"/api/v1/namespaces/{ns}/pods/p/ephemeralcontainers", pod)
            if code != 409:
                return code, resp
        return code, resp
    code, resp = debug(owner, GOOD)
    assert code == 403 and 'cannot update resource "pods/ephemeralcontainers"' in resp["message"], resp
    code, resp = debug(masters, EVIL)
    assert code == 403 and f"image {EVIL} is not from an allowed registry" in resp["message"], resp
    code, resp = debug(masters, GOOD)  # control
    assert code == 200, resp


def test_audit_filters_by_action_actor_and_time(admin, operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = uid("au")
    ready_tenant(co, name)
    admin("tenant", "suspend", name, "--reason", "audit filter test")
    records = wait_for("the suspension recorded", lambda: [
        r for r in admin.json("audit", "--tenant", name, "--limit", "0") if r["action"] == "TenantSuspended"])
    assert records[0]["actor"] == "bureau.chen"
    by_action = admin.json("audit", "--action", "TenantSuspended", "--limit", "0")
    assert by_action and {r["action"] for r in by_action} == {"TenantSuspended"}
    assert any(name in r["tenants"] for r in by_action)
    by_actor = admin.json("audit", "--actor", "bureau.chen", "--tenant", name, "--limit", "0")
    assert by_actor and {r["actor"] for r in by_actor} == {"bureau.chen"}
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert admin.json("audit", "--tenant", name, "--since", later, "--limit", "0") == []  # nothing after now
    admin("tenant", "resume", name)


def test_reports_as_csv_and_since(admin, operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = uid("rp")
    ready_tenant(co, name)
    _, out, _ = admin("report", "costs", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and any(name in row.values() for row in rows), out[:500]
    _, out, _ = admin("report", "performance", "-o", "csv")
    header = next(csv.reader(io.StringIO(out)))
    assert len(header) > 5, header
    everyone = {r[header[0]] for r in csv.DictReader(io.StringIO(out))}
    assert name in everyone
    later = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    _, out, _ = admin("report", "performance", "--since", later, "-o", "json")
    rows = json.loads(out)
    mine = [r for r in (rows if isinstance(rows, list) else rows.get("rows", [])) if name in r.values()]
    assert all(not r.get("requests") for r in mine), mine  # nothing of it was requested after that date


def test_the_context_flag_is_honoured(platform, operator, capsys, monkeypatch, tmp_path):
    kc = yaml.safe_load(platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP]).read_text())
    good = kc["contexts"][0]
    bad_cluster = {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1",
                                                   **{k: v for k, v in kc["clusters"][0]["cluster"].items()
                                                      if k != "server"}}}
    kc["clusters"].append(bad_cluster)
    kc["contexts"] = [{"name": "nowhere", "context": {"cluster": "nowhere", "user": good["context"]["user"]}},
                      {"name": "here", "context": good["context"]}]
    kc["current-context"] = "nowhere"
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(kc))
    cli = Cli(path, capsys, monkeypatch)
    code, _, err = cli("tenant", "list", ok=False)
    assert code == 1 and "cannot reach the API server at https://127.0.0.1:1" in err
    code, out, err = cli("--context", "here", "tenant", "list", "-o", "json")  # control: the flag wins
    assert code == 0, err


def test_share_show_and_withdraw_revoking_existing(platform, operator, kube_api, capsys, monkeypatch):
    co = client.CustomObjectsApi(kube_api)
    consumer, provider = uid("sc"), uid("sp")
    ready_tenant(co, consumer)
    ready_tenant(co, provider, namespaces=["exchange"])
    client.CoreV1Api(kube_api).create_namespaced_service(f"{provider}-exchange", {
        "metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})
    prov = Cli(platform.identity_kubeconfig(f"owner-{provider}", dept_groups(provider)), capsys, monkeypatch)
    cons = Cli(platform.identity_kubeconfig(f"clerk-{consumer}", dept_groups(consumer)), capsys, monkeypatch)
    offer = f"{provider}.data"
    prov("share", "offer", offer, "--provider", provider, "--namespace", f"{provider}-exchange", "--service", "api",
         "--port", "80", "--title", "数据", "--classification", "internal", "--max-days", "30", "--no-approval")
    wait_for("offer binding", lambda: client.AdmissionregistrationV1Api(kube_api)
             .read_validating_admission_policy_binding(f"yunshang-offer-terms.{offer}"))
    expires = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    agreement = wait_for("request admitted", lambda: cons.json(
        "share", "request", "--offer", offer, "--purpose", "lookups", "--expires", expires)["metadata"]["name"])
    granted(Impersonated(kube_api, f"clerk-{consumer}", dept_groups(consumer)),
            f"{API}/shareagreements/{agreement}")
    shown = wait_for("Active", lambda: (s := cons.json("share", "show", agreement)).get("status", {})
                     .get("phase") == "Active" and s)
    assert shown["spec"]["provider"] == provider and shown["spec"]["offer"] == offer
    prov("share", "withdraw", offer, "--reason", "moving to v2", "--revoke-existing")
    wait_for("revoked by the withdrawal", lambda: cons.json("share", "show", agreement)
             .get("status", {}).get("phase") == "Revoked")
    net = client.NetworkingV1Api(kube_api)
    wait_for("the path closed", lambda: not [p for p in net.list_namespaced_network_policy(f"{provider}-exchange").items
                                             if p.metadata.name.startswith("share-")])


def test_a_departments_view_keeps_its_newest_200_records(operator, kube_api):
    from yunshang.models.audit import ObjectRef
    from yunshang.operator.runtime.audit import AuditLog
    from yunshang.views import AUDIT_KEPT, VIEWS_NAMESPACE, view_name

    co = client.CustomObjectsApi(kube_api)
    name = uid("vw")
    ready_tenant(co, name)
    log = AuditLog(lambda: kube_api)
    for i in range(AUDIT_KEPT + 5):
        log.append("test", "Probe", ObjectRef(kind="Tenant", name=name), [name], {"i": str(i)})

    def view():
        cm = client.CoreV1Api(kube_api).read_namespaced_config_map(view_name(name), VIEWS_NAMESPACE)
        return json.loads((cm.data or {}).get("audit.json", "[]"))
    records = wait_for("the newest probe in the view", lambda: (v := view()) and any(
        r.get("details", {}).get("i") == str(AUDIT_KEPT + 4) for r in v) and v, timeout=60)
    assert len(records) == AUDIT_KEPT  # the cap
    # the view is the department's newest 200 records of the trail itself; the operator may write
    # one of its own for this tenant while the probes go in, so that is what we compare against
    trail = sorted(r["spec"]["seq"] for r in co.list_cluster_custom_object(
        GROUP, VERSION, "auditrecords", label_selector=f"platform.yunshang.io/tenant-{name}")["items"])
    seqs = sorted(r["seq"] for r in records)
    assert seqs == [s for s in trail if s <= seqs[-1]][-AUDIT_KEPT:]
    probes = sorted(int(r["details"]["i"]) for r in records if r.get("action") == "Probe")
    assert probes == list(range(AUDIT_KEPT + 5 - len(probes), AUDIT_KEPT + 5))  # the newest, unbroken
    assert probes[0] >= 5  # the five oldest probes dropped
