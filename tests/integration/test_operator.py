"""The operator against the real API server: provisioning, drift, suspend, delete, steady state."""
from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from factories import approval, tenant
from helpers import wait_for

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


@pytest.fixture
def co(kube_api):
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api)


def new_name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def get(co, name):
    return co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def phase(co, name):
    return (get(co, name).get("status") or {}).get("phase")


def create(co, name, approved=True, **changes):
    body = tenant(name, **changes)
    if approved:
        body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    return name


def patch_spec(co, name, spec):
    co.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"spec": spec})


def wait_phase(co, name, want, timeout=60):
    return wait_for(f"{name} phase {want}", lambda: phase(co, name) == want, timeout=timeout)


def test_pending_until_approved_then_ready(operator, co, core):
    name = create(co, new_name(), approved=False, namespaces=["app", "data"])
    wait_phase(co, name, "Pending")
    assert not [n for n in core.list_namespace(label_selector=f"platform.yunshang.io/tenant={name}").items]
    patch_spec(co, name, {"approval": approval()})
    wait_phase(co, name, "Ready")
    st = get(co, name)["status"]
    assert st["namespaceCount"] == 2 and st["observedGeneration"] == get(co, name)["metadata"]["generation"]
    def reasons():
        events = core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={name}").items
        return {e.reason for e in events}

    wait_for("transition events", lambda: {"Pending", "Ready"} <= reasons(), timeout=20)


def test_provisioned_objects(operator, co, core, kube_api):
    name = create(co, new_name(), namespaces=["app", "data"])
    wait_phase(co, name, "Ready")
    net = client.NetworkingV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    for ns in (f"{name}-app", f"{name}-data"):
        labels = core.read_namespace(ns).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["platform.yunshang.io/tenant"] == name
        hard = core.read_namespaced_resource_quota("tenant-quota", ns).spec.hard
        assert hard["requests.cpu"] == "4" and hard["pods"] == "20"  # half of 8 cpu / 40 pods each
        assert core.read_namespaced_limit_range("tenant-defaults", ns)
        rb = rbac.read_namespaced_role_binding("tenant-owners", ns)
        assert rb.role_ref.name == "admin" and [s.name for s in rb.subjects] == ["li.wei"]
        pols = {p.metadata.name for p in net.list_namespaced_network_policy(ns).items}
        assert pols == {"default-deny", "allow-intra-tenant", "allow-dns", "allow-monitoring"}
    # owners are admins in their namespaces only
    review = client.AuthorizationV1Api(kube_api)

    def can(ns, verb="create", resource="deployments", group="apps"):
        r = review.create_subject_access_review({"spec": {"user": "li.wei", "resourceAttributes": {
            "namespace": ns, "verb": verb, "resource": resource, "group": group}}})
        return r.status.allowed

    assert can(f"{name}-app") and not can("default") and not can("kube-system")


def test_restricted_pod_security_enforced(operator, co, core):
    name = create(co, new_name())
    wait_phase(co, name, "Ready")
    with pytest.raises(client.ApiException) as exc:
        core.create_namespaced_pod(f"{name}-main", {"metadata": {"name": "root"},
                                                    "spec": {"containers": [{"name": "c", "image": "registry.gz.gov.local/app:1"}]}})
    assert exc.value.status == 403 and "PodSecurity" in exc.value.body


def test_drift_is_repaired(operator, co, core, kube_api):
    name = create(co, new_name())
    wait_phase(co, name, "Ready")
    ns = f"{name}-main"
    net = client.NetworkingV1Api(kube_api)
    net.delete_namespaced_network_policy("default-deny", ns)
    core.patch_namespaced_resource_quota("tenant-quota", ns, {"spec": {"hard": {"pods": "999"}}})
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.patch_namespaced_role_binding("tenant-owners", ns, {"subjects": [
        {"kind": "User", "name": "intruder", "apiGroup": "rbac.authorization.k8s.io"}]})
    core.patch_namespace(ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    t0 = time.monotonic()
    wait_for("netpol restored", lambda: net.read_namespaced_network_policy("default-deny", ns), timeout=20)
    wait_for("quota restored", lambda: core.read_namespaced_resource_quota("tenant-quota", ns).spec.hard["pods"] == "40", timeout=20)
    wait_for("owners restored", lambda: [s.name for s in rbac.read_namespaced_role_binding("tenant-owners", ns).subjects] == ["li.wei"], timeout=20)
    wait_for("psa restored", lambda: core.read_namespace(ns).metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted", timeout=20)
    assert time.monotonic() - t0 < 20


def _versions(kube_api, co, name) -> dict[str, str]:
    """The resourceVersion of the tenant and of every object it owns (any write changes one)."""
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(kube_api)
    out = {"Tenant": co.get_cluster_custom_object(GROUP, VERSION, "tenants", name)["metadata"]["resourceVersion"]}
    sel = f"platform.yunshang.io/tenant={name}"
    for api_version, kind in (("v1", "Namespace"), ("v1", "ResourceQuota"), ("v1", "LimitRange"),
                              ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                              ("networking.k8s.io/v1", "NetworkPolicy")):
        for o in dyn.resources.get(api_version=api_version, kind=kind).get(label_selector=sel).items:
            out[f"{kind}/{o.metadata.namespace or ''}/{o.metadata.name}"] = o.metadata.resourceVersion
    return out


def test_idle_resync_writes_nothing(operator, co, kube_api):
    """Three resyncs of every tenant write nothing: not this tenant's status, not one of its objects
    (resourceVersions), and no request at all (the operator's write counter).  The counter is shared
    with every other module's tenants, and one of them may be quarantined for its probing meanwhile (its
    department's refusals are counted): a window in which that happened is measured again."""
    name = create(co, new_name())
    wait_phase(co, name, "Ready")
    core = client.CoreV1Api(kube_api)  # the quota controller's usage has reached the status
    wait_for("quota usage computed", lambda: core.read_namespaced_resource_quota("tenant-quota", f"{name}-main")
             .status.used is not None)
    for _ in range(3):
        _quiet(operator)  # the tenant's follow-ups are done: audit records, the views, the anchor
        before, writes, others = _versions(kube_api, co, name), operator.writes(), _elsewhere(operator)
        assert len(before) == 1 + 8, before  # the tenant and its eight objects
        # three resyncs of every tenant: the operator's reconcile counter says they happened
        n = len(co.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
        seen = operator.reconciles()
        wait_for("three resyncs", lambda: operator.reconciles() >= seen + 3 * n, timeout=operator.resync * 10 + 30,
                 interval=0.5)
        assert _versions(kube_api, co, name) == before
        if operator.writes() == writes:
            return
        assert _elsewhere(operator) != others, f"{operator.writes() - writes} writes in an idle window"
    raise AssertionError("no idle window: other tenants kept being quarantined")


def _quiet(operator, seconds: float = 2.0) -> None:
    """Until the operator has written nothing for ``seconds``."""
    last = [operator.writes(), time.monotonic()]

    def still() -> bool:
        w = operator.writes()
        if w != last[0]:
            last[:] = [w, time.monotonic()]
        return time.monotonic() - last[1] >= seconds
    wait_for("the operator quiet", still, timeout=60, interval=0.5)


def _elsewhere(operator) -> float:
    """What another module's tenants caused: quarantines by the operator's webhook."""
    return sum(v for k, v in operator.metrics().items() if k.startswith("yunshang_quarantines_total"))


def test_suspend_blocks_new_pods_and_resume_restores(operator, co, core):
    name = create(co, new_name())
    wait_phase(co, name, "Ready")
    ns = f"{name}-main"
    patch_spec(co, name, {"suspended": True, "suspendReason": "audit finding 42"})
    wait_phase(co, name, "Suspended")
    wait_for("pods hard 0", lambda: core.read_namespaced_resource_quota("tenant-quota", ns).status.hard["pods"] == "0")
    pod = {"metadata": {"name": "p"}, "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsUser": 1000}}]}}
    with pytest.raises(client.ApiException) as exc:
        core.create_namespaced_pod(ns, pod)
    assert exc.value.status == 403 and "exceeded quota" in exc.value.body
    assert "audit finding 42" in get(co, name)["status"]["message"]
    patch_spec(co, name, {"suspended": False})
    wait_phase(co, name, "Ready")
    wait_for("pods hard back", lambda: core.read_namespaced_resource_quota("tenant-quota", ns).status.hard["pods"] == "40")
    wait_for("pod admitted", lambda: core.create_namespaced_pod(ns, pod))


def _gone(fn):
    try:
        fn()
        return False
    except client.ApiException as e:
        return e.status == 404


def test_delete_with_retain_keeps_namespace_and_data(operator, co, core):
    name = create(co, new_name())
    wait_phase(co, name, "Ready")
    ns = f"{name}-main"
    core.create_namespaced_config_map(ns, {"metadata": {"name": "records"}, "data": {"k": "v"}})
    co.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    wait_for("tenant gone", lambda: _gone(lambda: get(co, name)), timeout=60)
    n = core.read_namespace(ns)
    assert n.metadata.labels["platform.yunshang.io/retained-from"] == name
    assert "platform.yunshang.io/tenant" not in n.metadata.labels
    assert not n.metadata.owner_references
    assert core.read_namespaced_config_map("records", ns).data == {"k": "v"}
    # nothing still points at the deleted tenant
    wait_for("owned children collected", lambda: _gone(lambda: core.read_namespaced_resource_quota("tenant-quota", ns)), timeout=60)


def test_delete_with_delete_policy_removes_everything(operator, co, core):
    name = create(co, new_name(), deletionPolicy="Delete", namespaces=["a", "b"])
    wait_phase(co, name, "Ready")
    co.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    wait_for("tenant gone", lambda: _gone(lambda: get(co, name)), timeout=90)
    for ns in (f"{name}-a", f"{name}-b"):
        assert _gone(lambda: core.read_namespace(ns))


def test_child_quota_is_carved_out_of_parent(operator, co):
    prov = create(co, new_name("prov"), quota={"cpu": "8", "memory": "16Gi", "pods": 40})
    wait_phase(co, prov, "Ready")
    city1 = create(co, new_name("city"), level="city", parent=prov, quota={"cpu": "6", "memory": "8Gi", "pods": 10})
    wait_phase(co, city1, "Ready")
    city2 = create(co, new_name("city"), level="city", parent=prov, quota={"cpu": "4", "memory": "4Gi", "pods": 10})
    wait_for("city2 blocked", lambda: "left cpu 2" in (get(co, city2).get("status") or {}).get("message", ""))
    assert phase(co, city2) == "Approved"
    assert not [c for c in get(co, city2)["status"]["conditions"] if c["status"] == "True"]
    # a county under a province is refused: wrong level
    county = create(co, new_name("county"), level="county", parent=prov, quota={"cpu": "1", "memory": "1Gi", "pods": 1})
    wait_for("county blocked", lambda: "needs a city parent" in (get(co, county).get("status") or {}).get("message", ""))


def test_crash_in_the_middle_converges_without_duplicates_or_orphans(operator, co, core, kube_api):
    name = create(co, new_name(), namespaces=[f"n{i}" for i in range(8)])
    # kill as soon as the first namespace exists: the rest is half done
    wait_for("first namespace", lambda: core.list_namespace(label_selector=f"platform.yunshang.io/tenant={name}").items,
             interval=0.02)
    operator.kill()
    operator.start()
    wait_phase(co, name, "Ready", timeout=90)
    net = client.NetworkingV1Api(kube_api)
    nss = core.list_namespace(label_selector=f"platform.yunshang.io/tenant={name}").items
    assert sorted(n.metadata.name for n in nss) == sorted(f"{name}-n{i}" for i in range(8))
    for n in nss:
        ns = n.metadata.name
        assert len(core.list_namespaced_resource_quota(ns).items) == 1
        assert len(net.list_namespaced_network_policy(ns).items) == 4
    uid = get(co, name)["metadata"]["uid"]
    owned = [o for n in nss for o in (n.metadata.owner_references or [])]
    assert owned and all(o.uid == uid for o in owned)


def test_children_created_before_their_parent_are_provisioned_when_it_arrives(operator, co):
    prov = new_name("prov")
    city = create(co, new_name("city"), level="city", parent=prov, quota={"cpu": "2", "memory": "2Gi", "pods": 5})
    wait_for("child waits for its parent", lambda: "does not exist" in (get(co, city).get("status") or {}).get("message", ""))
    create(co, prov, quota={"cpu": "8", "memory": "16Gi", "pods": 40})
    # well before the periodic resync (the test operator's is 3 s; this must not depend on it)
    wait_phase(co, city, "Ready", timeout=20)
