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

import pytest
from kubernetes import client, config

from factories import approval, tenant
from helpers import make_project, pulumi, wait_for

from yunshang.dev import controlplane, node, operator_image
from yunshang.models.tenant import TenantSpec
from yunshang.operator.tenants import steps

WHY_NOT = node.why_not()
if WHY_NOT and os.environ.get("CI"):
    pytest.fail(f"CI runs on a machine that can run a real node, but: {WHY_NOT}", pytrace=False)
pytestmark = [pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT), pytest.mark.pulumi]

NS = "yunshang-system"
SELECTOR = "app.kubernetes.io/name=yunshang-operator"
LEASE = "yunshang-operator"
GROUP, VERSION = "platform.yunshang.io", "v1alpha1"


def operator_config(image: str) -> dict:
    return {"yunshang:operator": {"mode": "deployment", "image": image, "replicas": 2, "imagePullPolicy": "Never",
                                  "nodeSelector": {node.NODE_LABEL: "true"}, "tolerations": [node.TOLERATION]},
            "yunshang:demo": False}


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    """The control plane with its node, the image (built once, imported under two tags: the upgrade's
    too) and the project whose stack `test` deploys the first."""
    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("prod-path"), real_node=True, audit_webhook=False)
    cp.up()
    try:
        assert cp.real_node_name(), cp.node_note
        dist = tmp_path_factory.mktemp("dist")
        built = operator_image.build(dist, tag="t1", progress=lambda m: None)
        print(f"\nimage {built.ref}: {built.summary()}")
        second = operator_image.retag(built.path, f"{operator_image.REPOSITORY}:t2", dist / "operator-t2.oci.tar")
        rn = node.RealNode.load(cp.node_state)
        rn.import_image(built.path, built.ref)
        rn.import_image(second)
        api = config.new_client_from_config(str(cp.kubeconfig))
        root = make_project(tmp_path_factory.mktemp("project") / "yunshang", cp.kubeconfig, operator_config(built.ref))
        state = tmp_path_factory.mktemp("pulumi-state")
        pulumi(["stack", "init", "test"], root, state)
        started = time.monotonic()
        up = pulumi(["up", "--yes", "--skip-preview", "--stack", "test"], root, state, check=False)
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        print(f"pulumi up (deployment mode, catalog Ready): {time.monotonic() - started:.1f} s")
        yield cp, api, root, state, built
        api.close()
    finally:
        cp.down()


def pods(api) -> list:
    return [p for p in client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=SELECTOR).items
            if not p.metadata.deletion_timestamp]


def holder(api) -> str:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NS)
    return lease.spec.holder_identity or ""


def running(api, image: str) -> list:
    return [p for p in pods(api) if p.status.phase == "Running" and p.spec.containers[0].image == image
            and all(c.ready for c in p.status.container_statuses or [])]


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
    r = subprocess.run([sys.executable, "-m", "yunshang.cli", "--kubeconfig", str(cp.kubeconfig), "audit", "verify",
                        "-o", "json"], capture_output=True, text=True, timeout=120)
    return json.loads(r.stdout or "{}") | {"exit": r.returncode, "stderr": r.stderr[-500:]}


def test_the_operator_runs_from_its_image_as_two_replicas_one_leading(prod):
    """`pulumi up` made the catalog Ready (it waits for the operator): the two replicas run the image
    built here, as uid 10001 on a read-only root, and the Lease names one of them."""
    cp, api, _, _, built = prod
    wait_for("two replicas Running and ready", lambda: len(running(api, built.ref)) == 2, timeout=120)
    names = {p.metadata.name for p in running(api, built.ref)}
    wait_for("a replica leads", lambda: holder(api) in names, timeout=60)
    for p in running(api, built.ref):
        c = p.spec.containers[0]
        assert p.spec.service_account_name == "yunshang-operator"
        assert c.security_context.run_as_user == 10001 and c.security_context.read_only_root_filesystem
        assert p.status.container_statuses[0].image_id  # containerd ran it: it knows the image's digest
    # pod start to leader: the first replica to lead, its container's start to the Lease's acquireTime
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NS)
    leader = next(p for p in running(api, built.ref) if p.metadata.name == lease.spec.holder_identity)
    began = leader.status.container_statuses[0].state.running.started_at
    print(f"pod start to leader: {(lease.spec.acquire_time - began).total_seconds():.1f} s "
          f"(container started {began:%H:%M:%S}, lease acquired {lease.spec.acquire_time:%H:%M:%S.%f})")
    assert set(phases(api, ["gz-bigdata", "gy-police", "gy-health", "xf-health"]).values()) == {"Ready"}


def test_deleting_the_leader_during_an_onboarding_loses_and_doubles_nothing(prod):
    """200 tenants requested approved; while the leader provisions them its pod is deleted (as
    `kubectl delete pod` does): the standby takes over, every tenant ends Ready with exactly its
    objects, and the audit chain is whole (two leaders at once would fork it)."""
    cp, api, _, _, built = prod
    wait_for("two replicas Running", lambda: len(running(api, built.ref)) == 2, timeout=120)
    names = [f"fo{i:03d}" for i in range(200)]
    first = holder(api)
    maker = threading.Thread(target=make_tenants, args=(api, names))
    started = time.monotonic()
    maker.start()
    wait_for("the leader at work", lambda: sum(p == "Ready" for p in phases(api, names).values()) >= 20, timeout=120)
    client.CoreV1Api(api).delete_namespaced_pod(first, NS)
    deleted = time.monotonic()
    wait_for("another replica leads", lambda: holder(api) not in ("", first), timeout=60, interval=0.2)
    print(f"failover after the leader's pod was deleted: {time.monotonic() - deleted:.1f} s")
    maker.join()
    wait_for("all 200 Ready", lambda: set(phases(api, names).values()) == {"Ready"}, timeout=300, interval=1)
    print(f"200 tenants Ready in {time.monotonic() - started:.1f} s across the failover")
    exactly_its_objects(api, names)
    result = audit_verify(cp)
    assert result["exit"] == 0 and result["intact"], result
    wait_for("the Deployment whole again", lambda: len(running(api, built.ref)) == 2, timeout=120)


def test_pulumi_up_with_a_new_tag_rolls_the_operator_without_a_lost_write(prod):
    """The stack's image changed to the t2 tag: `pulumi up` rolls the Deployment (one new replica at a
    time), the Lease passes to a replica of the new image, tenants requested during the roll are
    Ready with exactly their objects, and the audit chain stays whole."""
    cp, api, root, state, built = prod
    new = f"{operator_image.REPOSITORY}:t2"
    make_project_config(root, operator_config(new))
    names = [f"up{i:02d}" for i in range(40)]
    maker = threading.Thread(target=make_tenants, args=(api, names))
    maker.start()
    up = pulumi(["up", "--yes", "--skip-preview", "--stack", "test"], root, state, check=False)
    maker.join()
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    wait_for("two replicas of t2", lambda: len(running(api, new)) == 2 and not running(api, built.ref), timeout=180)
    wait_for("a t2 replica leads", lambda: holder(api) in {p.metadata.name for p in running(api, new)}, timeout=60)
    wait_for("all Ready", lambda: set(phases(api, names).values()) == {"Ready"}, timeout=180, interval=1)
    exactly_its_objects(api, names)
    result = audit_verify(cp)
    assert result["exit"] == 0 and result["intact"], result


def make_project_config(root, extra: dict) -> None:
    import yaml

    path = root / "stacks" / "Pulumi.test.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["config"].update(extra)
    path.write_text(yaml.safe_dump(cfg))


def test_destroy_of_the_stack_keeps_the_tenants_the_audit_trail_and_its_anchor(prod):
    """`pulumi destroy` takes the operator's Deployment away; the departments, their namespaces, the
    audit records and the anchor of their chain stay (only a person deletes those)."""
    cp, api, root, state, _ = prod
    co = client.CustomObjectsApi(api)
    before = {t["metadata"]["name"] for t in co.list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]}
    records = len(co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"])
    assert before and records
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
