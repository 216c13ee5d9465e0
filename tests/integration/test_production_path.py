"""The production path, run for real (issue 21): the operator's image built here
(`yunshang.dev.operator_image`), imported into a real node, and deployed by the platform program in
`deployment` mode (`pulumi up`, the program production runs) as two replicas electing a leader by
their Lease, under the operator's own ServiceAccount and nothing else.

A control plane of this module's own with one real node.  The stack is the local one with
``yunshang:operator`` set as a province's would be, but for where the image comes from (imported
into the node: imagePullPolicy Never) and where it runs (the real node: its label and taint)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kubernetes import client

import production
from factories import approval, tenant
from helpers import pulumi, wait_for
from production import LEASE, NS, holder, image_of_the_stack, pods, running

from yunshang.dev import node, operator_image
from yunshang.models.tenant import TenantSpec
from yunshang.operator.tenants import steps

WHY_NOT = node.why_not()
if WHY_NOT and os.environ.get("CI"):
    pytest.fail(f"CI runs on a machine that can run a real node, but: {WHY_NOT}", pytrace=False)
pytestmark = [pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT), pytest.mark.pulumi]

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    """tests/production.py's platform: the images built and imported, `pulumi up` of stack `test`."""
    from helpers import host_lock

    with host_lock():  # a real node: never while a test compares the host before and after
        p = production.deploy(tmp_path_factory.mktemp("prod"))
        print(f"\nimage {p.built.ref}: {p.built.summary()}; {p.figures}")
        try:
            yield p.cp, p.api, p.root, p.state, p.built, p
        finally:
            p.close()
            p.cp.down()


def make_tenants(api, names: list[str]) -> None:
    co = client.CustomObjectsApi(api)
    for n in names:
        body = tenant(n)
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)


def phases(api, names: list[str]) -> dict[str, str]:
    items = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]
    got = {t["metadata"]["name"]: (t.get("status") or {}).get("phase", "") for t in items}
    return {n: got.get(n, "") for n in names}


def exactly_its_objects(api, names: list[str]) -> None:
    """Each tenant holds exactly the objects its spec gives (steps.desired_objects): its namespaces
    exist, and in them are its quotas, limits, bindings and network policies, none missing, none
    more (an object written twice under another name, or a stranger's, would be more)."""
    co = client.CustomObjectsApi(api)
    core, rbac, net = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api), client.NetworkingV1Api(api)
    live = {"ResourceQuota": core.list_resource_quota_for_all_namespaces().items,
            "LimitRange": core.list_limit_range_for_all_namespaces().items,
            "RoleBinding": rbac.list_role_binding_for_all_namespaces().items,
            "NetworkPolicy": net.list_network_policy_for_all_namespaces().items}
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    for n in names:
        t = co.get_cluster_custom_object(GROUP, VERSION, "tenants", n)
        want = steps.desired_objects(n, t["metadata"]["uid"], TenantSpec.model_validate(t["spec"]))
        mine = {o["metadata"]["name"] for o in want if o["kind"] == "Namespace"}
        assert mine and mine <= namespaces, (n, mine - namespaces)
        wanted = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in want if o["kind"] in live}
        found = {(k, o.metadata.namespace, o.metadata.name) for k, objs in live.items() for o in objs
                 if o.metadata.namespace in mine}
        assert found == wanted, (n, found ^ wanted)


def audit_verify(cp) -> dict:
    from pathlib import Path

    r = subprocess.run([str(Path(sys.executable).parent / "yunshang"), "--kubeconfig", str(cp.kubeconfig), "audit", "verify",
                        "-o", "json"], capture_output=True, text=True, timeout=120)
    return json.loads(r.stdout or "{}") | {"exit": r.returncode, "stderr": r.stderr[-500:]}


def test_the_operator_runs_from_its_image_as_two_replicas_one_leading(prod):
    """`pulumi up` made the catalog Ready (it waits for the operator): the two replicas run the image
    built here, as uid 10001 on a read-only root under the operator's ServiceAccount, and the Lease
    names one of them."""
    cp, api, _, _, built, _ = prod
    image = image_of_the_stack(api)
    assert image.startswith(operator_image.REPOSITORY + ":")
    wait_for("two replicas Running and ready", lambda: len(running(api, image)) == 2, timeout=120)
    names = {p.metadata.name for p in running(api, image)}
    wait_for("a replica leads", lambda: holder(api) in names, timeout=60)
    for p in running(api, image):
        c = p.spec.containers[0]
        assert p.spec.service_account_name == "yunshang-operator"
        assert c.security_context.run_as_user == 10001 and c.security_context.read_only_root_filesystem
        assert p.status.container_statuses[0].image_id  # containerd ran it: it knows the image's digest
    # pod start to leader: the leading replica's container start to the Lease's acquireTime
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NS)
    leader = next(p for p in running(api, image) if p.metadata.name == lease.spec.holder_identity)
    began = leader.status.container_statuses[0].state.running.started_at
    print(f"\npod start to leader: {(lease.spec.acquire_time - began).total_seconds():.1f} s")
    assert set(phases(api, ["gz-bigdata", "gy-police", "gy-health", "xf-health"]).values()) == {"Ready"}


def test_deleting_the_leader_during_an_onboarding_loses_and_doubles_nothing(prod):
    """200 tenants requested approved; while the leader provisions them its pod is deleted (as
    `kubectl delete pod` does): the standby takes over, every tenant ends Ready with exactly its
    objects, and the audit chain is whole (two leaders at once would fork it)."""
    cp, api, *_ = prod
    image = image_of_the_stack(api)
    wait_for("two replicas Running", lambda: len(running(api, image)) == 2, timeout=120)
    names = [f"fo{i:03d}" for i in range(200)]
    first = holder(api)
    maker = threading.Thread(target=make_tenants, args=(api, names))
    started = time.monotonic()
    maker.start()
    wait_for("the leader at work", lambda: sum(p == "Ready" for p in phases(api, names).values()) >= 20, timeout=120)
    client.CoreV1Api(api).delete_namespaced_pod(first, NS)
    deleted = time.monotonic()
    wait_for("another replica leads", lambda: holder(api) not in ("", first), timeout=60, interval=0.2)
    print(f"\nfailover after the leader's pod was deleted: {time.monotonic() - deleted:.1f} s")
    maker.join()
    wait_for("all 200 Ready", lambda: set(phases(api, names).values()) == {"Ready"}, timeout=300, interval=1)
    print(f"200 tenants Ready in {time.monotonic() - started:.1f} s across the failover")
    exactly_its_objects(api, names)
    result = audit_verify(cp)
    assert result["exit"] == 0 and result["intact"], result
    wait_for("the Deployment whole again", lambda: len(running(api, image)) == 2, timeout=120)


def set_image(root, image: str) -> None:
    import yaml

    path = root / "stacks" / "Pulumi.test.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["config"]["yunshang:operator"]["image"] = image
    path.write_text(yaml.safe_dump(cfg))


def test_pulumi_up_with_a_new_tag_rolls_the_operator_without_a_lost_write(prod):
    """The stack's image changed to the other tag: `pulumi up` rolls the Deployment (a new replica
    before an old one goes), the Lease passes to a replica of the new image, tenants requested during
    the roll are Ready with exactly their objects, and the audit chain stays whole."""
    cp, api, root, state, *_ = prod
    old = image_of_the_stack(api)
    new = f"{operator_image.REPOSITORY}:{'t2' if old.endswith(':t1') else 't1'}"
    set_image(root, new)
    names = [f"up{uuid.uuid4().hex[:4]}{i:02d}" for i in range(40)]
    maker = threading.Thread(target=make_tenants, args=(api, names))
    maker.start()
    up = pulumi(["up", "--yes", "--skip-preview", "--stack", "test"], root, state, check=False)
    maker.join()
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    wait_for(f"two replicas of {new}", lambda: len(running(api, new)) == 2 and not [
        p for p in pods(api) if p.spec.containers[0].image == old], timeout=180)
    wait_for("a new replica leads", lambda: holder(api) in {p.metadata.name for p in running(api, new)}, timeout=60)
    wait_for("all Ready", lambda: set(phases(api, names).values()) == {"Ready"}, timeout=180, interval=1)
    exactly_its_objects(api, names)
    result = audit_verify(cp)
    assert result["exit"] == 0 and result["intact"], result


def in_cluster(core, command: str) -> str:
    """``command`` run in a toolbox pod of namespace `probe-tools` (made once): what a pod sees."""
    from helpers import run_in, shell_in

    if "probe-tools" not in {n.metadata.name for n in core.list_namespace().items}:
        core.create_namespace({"metadata": {"name": "probe-tools"}})
        shell_in(core, "probe-tools")
    return run_in(core, "probe-tools", command)


def prometheus(core, path: str) -> dict:
    out = in_cluster(core, f"wget -q -O- 'http://yunshang-prometheus.yunshang-monitoring.svc:9090{path}'")
    return json.loads(out or "{}")


def test_prometheus_in_the_cluster_loads_the_rules_and_scrapes_both_replicas_and_the_kubelet(prod):
    """Deployed by the program: the rules of the ConfigMap are loaded, both operator replicas (the
    standby too: its metrics say it is not leading) and the real node's kubelet are scraped."""
    cp, api, *_ = prod
    core = client.CoreV1Api(api)
    files = {p.name for p in (operator_image.ROOT / "monitoring" / "rules").glob("*.yml")}
    groups = wait_for("rules loaded", lambda: prometheus(core, "/api/v1/rules").get("data", {}).get("groups"), timeout=120)
    assert {g["file"].rsplit("/", 1)[1] for g in groups} == files
    assert "YunshangTenantProbing" in {r["name"] for g in groups for r in g["rules"]}

    def up(job: str) -> list[str]:
        res = prometheus(core, f"/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D").get("data", {}).get("result", [])
        return [r["metric"].get("pod") or r["metric"].get("node", "") for r in res if r["value"][1] == "1"]

    wait_for("both replicas scraped", lambda: len(up("yunshang-operator")) == 2, timeout=120)
    wait_for("the kubelet scraped", lambda: up("kubelet-cadvisor") and up("kubelet-resource"), timeout=120)
    res = prometheus(core, "/api/v1/query?query=sum(yunshang_operator_leading)")["data"]["result"]
    assert float(res[0]["value"][1]) == 1.0  # one of the two leads


def test_probing_with_a_pods_identity_quarantines_its_department_and_its_contact_is_told(prod):
    """End to end inside the cluster: a tenant's pod identity (its namespace's ServiceAccount) makes
    refused writes; the API server's audit events reach the leading operator through its Service;
    the in-cluster Prometheus fires YunshangTenantProbing; Alertmanager calls the operator's webhook
    through the same Service (TLS, token) and the tenant's contact webhook; the tenant is quarantined."""
    from factories import approval, tenant as tenant_body
    from helpers import Impersonated, on_the_node

    cp, api, *_ = prod
    core, co = client.CoreV1Api(api), client.CustomObjectsApi(api)
    # the department's on-call hook: busybox httpd whose CGI writes what it is posted to the log
    if "oncall" not in {n.metadata.name for n in core.list_namespace().items}:
        core.create_namespace({"metadata": {"name": "oncall"}})
        cgi = ("printf '%s\\n' '#!/bin/sh' 'printf \"Content-Type: text/plain\\r\\n\\r\\nok\\n\"' "
               "'head -c \"$CONTENT_LENGTH\" >&2' 'echo >&2' > /tmp/www/cgi-bin/hook")
        core.create_namespaced_pod("oncall", on_the_node(
            "hook", f"mkdir -p /tmp/www/cgi-bin && {cgi} && "
                    "chmod +x /tmp/www/cgi-bin/hook && exec httpd -f -p 8080 -h /tmp/www", {"app": "hook"}, "Always"))
        core.create_namespaced_service("oncall", {"metadata": {"name": "hook"}, "spec": {
            "selector": {"app": "hook"}, "ports": [{"port": 8080, "targetPort": 8080}]}})
    name = f"pq{uuid.uuid4().hex[:5]}"
    body = tenant_body(name, contacts=[{"name": "oncall", "url": "http://hook.oncall.svc:8080/cgi-bin/hook"}])
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    wait_for("Ready", lambda: phases(api, [name])[name] == "Ready")
    # the in-cluster Prometheus has seen the tenant's denial counters at zero (an increase needs a start)
    wait_for("the counters scraped at zero", lambda: prometheus(
        core, f"/api/v1/query?query=yunshang_tenant_denied_requests_total%7Btenant%3D%22{name}%22%7D")
        .get("data", {}).get("result"), timeout=60, interval=1)
    sa = f"system:serviceaccount:{name}-main:default"
    pod = Impersonated(api, sa, ["system:serviceaccounts", f"system:serviceaccounts:{name}-main", "system:authenticated"])
    for i in range(8):
        code, _ = pod.create(f"/api/v1/namespaces/{name}-main/pods", {"metadata": {"name": f"p{i}"}, "spec": {
            "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1"}]}})
        assert code == 403  # RBAC: a pod's identity may not make pods
    q = wait_for("quarantined", lambda: co.get_cluster_custom_object(GROUP, VERSION, "tenants", name)["spec"].get("quarantine"),
                 timeout=180, interval=1)
    assert q["alert"] == "YunshangTenantProbing" and name in q["reason"]
    wait_for("Suspended", lambda: phases(api, [name])[name] == "Suspended", timeout=60)
    # the contact hears of it: the probing alert, or (once the quarantine inhibits the tenant's other
    # alerts) the quarantine's own
    told = wait_for("the contact told", lambda: [
        line for line in core.read_namespaced_pod_log("hook", "oncall").splitlines()
        if name in line and ("YunshangTenantProbing" in line or "YunshangTenantQuarantined" in line)],
        timeout=120, interval=1)
    assert told
    # control: the catalog's tenants, whose identities probed nothing, are not quarantined
    assert not co.get_cluster_custom_object(GROUP, VERSION, "tenants", "gy-police")["spec"].get("quarantine")


def test_destroy_of_the_stack_keeps_the_tenants_the_audit_trail_and_its_anchor(prod):
    """`pulumi destroy` takes the operator's Deployment and the monitoring away; the departments,
    their namespaces and objects, the audit records and the anchor of their chain stay (only a person
    deletes those); `up` then brings the operator back over them."""
    cp, api, root, state, *_ = prod
    co = client.CustomObjectsApi(api)
    before = {t["metadata"]["name"] for t in co.list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]}
    records = len(co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"])
    assert before  # (and the records the module's other tests made, none when this one runs first)
    r = pulumi(["destroy", "--yes", "--skip-preview", "--stack", "test"], root, state, check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    wait_for("no operator pods", lambda: not pods(api), timeout=120)
    after = {t["metadata"]["name"] for t in co.list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]}
    assert after == before
    assert len(co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"]) == records
    anchor = client.CoreV1Api(api).read_namespaced_config_map("yunshang-audit-anchor", NS)
    assert anchor.data
    exactly_its_objects(api, sorted(before))  # their namespaces and what is in them, untouched
    assert audit_verify(cp)["intact"]
    # and back (the other tests of this module may come after this one); yunshang-monitoring went
    # with the stack, and with it the Secret the engineer had put there
    up = prod[-1].up()
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    wait_for("two replicas again", lambda: len(running(api, image_of_the_stack(api))) == 2, timeout=180)


def test_the_image_goes_to_a_registry_and_comes_back_the_same(prod, tmp_path):
    """The README's push: skopeo copies the OCI archive to a registry (Debian's docker-registry, on
    loopback) and the registry serves the very image (the same manifest digest) back."""
    import socket

    from yunshang.dev import toolchain

    built = prod[4]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'blobs'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\nlog: {{level: warn}}\n")
    registry = subprocess.Popen([str(toolchain.find("docker-registry")), "serve", str(tmp_path / "registry.yml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ref = f"127.0.0.1:{port}/yunshang/operator:0.1.0"
        skopeo = str(toolchain.find("skopeo"))
        wait_for("the registry", lambda: subprocess.run([skopeo, "--version"]).returncode == 0 and
                 socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, timeout=30)
        r = subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci-archive:{built.path}", f"docker://{ref}"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["Digest"] == built.digest
        # control: a tag never pushed is not there
        r = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref[:-5]}9.9.9"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode != 0
    finally:
        registry.terminate()
        registry.wait(10)
