"""The local control plane is a real one: admission, controllers, scheduling, kwok nodes.

Its refusals are Kubernetes' own, made by the local API server's flags, and the tests that prove
them name them so (``@pytest.mark.control``), in the manner of ``apiserver-allow-privileged``:
``apiserver-admission-resourcequota`` and ``apiserver-admission-podsecurity`` (plugins of
``--enable-admission-plugins``), ``apiserver-authorization-rbac`` (RBAC in ``--authorization-mode=Node,RBAC``).
Each refusal asserts the words only that control writes, beside a request that is admitted; the
three ask for ``platform`` (the installed platform), which is where a knock-out run (tests/knockout.py)
takes their control away first."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from helpers import listening, wait_for


def message(exc) -> str:
    """The API server's message of a refused request (the Status in the ApiException's body)."""
    import json

    return json.loads(exc.value.body).get("message", "")


@pytest.fixture
def ns(kube_api):
    core = client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_version_is_pinned_release(kube_api):
    v = client.VersionApi(kube_api).get_code()
    assert v.git_version == "v1.36.3"


def test_fake_nodes_ready_with_capacity(kube_api):
    nodes = client.CoreV1Api(kube_api).list_node().items
    assert len(nodes) == 3
    for n in nodes:
        assert n.status.allocatable["cpu"] == "32"
        assert any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)


def test_deployment_pods_get_scheduled_and_run(kube_api, ns):
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "c", "image": "registry.local/web:1"}]}},
        },
    })

    def running():
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        ok = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return len(ok) == 2 and ok

    pods = wait_for("2 running pods", running)
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)


@pytest.mark.control("apiserver-admission-resourcequota")
def test_resource_quota_is_enforced_and_counted(platform, kube_api, ns):
    core = client.CoreV1Api(kube_api)
    wait_for("kube-root-ca.crt published", lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns))
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "3"}}})
    wait_for("quota status", lambda: (core.read_namespaced_resource_quota("q", ns).status.used or {}).get("configmaps"))
    created = 0
    with pytest.raises(client.ApiException) as exc:
        for i in range(10):
            core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{i}"}})
            created += 1
    assert exc.value.status == 403 and f'configmaps "c{created}" is forbidden: exceeded quota: q, requested: ' \
        "configmaps=1, used: configmaps=3, limited: configmaps=3" in message(exc), exc.value.body
    assert created == 2  # control: two admitted (kube-root-ca.crt is the third)


@pytest.mark.control("apiserver-admission-podsecurity")
def test_pod_security_restricted_is_enforced(platform, kube_api, ns):
    core = client.CoreV1Api(kube_api)
    wait_for("default SA", lambda: core.read_namespaced_service_account("default", ns))
    core.patch_namespace(ns, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    with pytest.raises(client.ApiException) as exc:
        core.create_namespaced_pod(ns, {"metadata": {"name": "p"},
                                        "spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert exc.value.status == 403 and \
        'pods "p" is forbidden: violates PodSecurity "restricted:latest": ' in message(exc), exc.value.body
    # control: the same pod, as the restricted profile asks, is admitted
    restricted = {"metadata": {"name": "p"}, "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "x", "securityContext": {
            "allowPrivilegeEscalation": False, "runAsUser": 10001, "capabilities": {"drop": ["ALL"]}}}]}}
    assert core.create_namespaced_pod(ns, restricted, dry_run="All").metadata.name == "p"


@pytest.mark.control("apiserver-authorization-rbac")
def test_rbac_and_impersonation(platform, kube_api, ns):
    from kubernetes import config

    api = config.new_client_from_config(str(platform.kubeconfig))
    api.default_headers["Impersonate-User"] = "alice"
    with pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api).list_namespaced_config_map(ns)
    assert exc.value.status == 403 and ('configmaps is forbidden: User "alice" cannot list resource "configmaps" '
                                        f'in API group "" in the namespace "{ns}"') in message(exc), exc.value.body
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "alice-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    })
    # control: the same request once a RoleBinding grants it
    wait_for("alice can list", lambda: client.CoreV1Api(api).list_namespaced_config_map(ns) is not None)


def test_service_account_tokens_work(control_plane, kube_api, ns):
    core = client.CoreV1Api(kube_api)
    wait_for("default SA", lambda: core.read_namespaced_service_account("default", ns))
    tok = core.create_namespaced_service_account_token(
        "default", ns, {"spec": {"expirationSeconds": 600}}).status.token
    cfg = client.Configuration()
    cfg.host = control_plane.server
    cfg.ssl_ca_cert = str(control_plane.pki / "ca.crt")
    cfg.api_key = {"authorization": "Bearer " + tok}
    review = client.AuthenticationV1Api(client.ApiClient(cfg))
    # a token with no RBAC can still ask who it is
    who = review.create_self_subject_review({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert who.status.user_info.username == f"system:serviceaccount:{ns}:default"


def test_namespace_deletion_and_garbage_collection(kube_api):
    core = client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    owner = core.create_namespaced_config_map(name, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    core.delete_namespaced_config_map("owner", name)

    def child_gone():
        try:
            core.read_namespaced_config_map("child", name)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_for("garbage collection of child", child_gone)
    core.delete_namespace(name)

    def ns_gone():
        try:
            core.read_namespace(name)
            return False
        except client.ApiException as e:
            return e.status == 404

    wait_for("namespace deletion", ns_gone, timeout=90)


def test_every_server_listens_on_loopback_only(control_plane):
    """Every listening TCP socket owned by a control-plane process is bound to 127.0.0.1."""
    addresses = listening(control_plane.pids.values())
    assert addresses, "found no listening sockets at all"
    loopback = {"0100007F", "00000000000000000000000001000000"}
    assert set(addresses) <= loopback, addresses


def test_a_component_that_fails_names_its_log_and_nothing_is_left(tmp_path, monkeypatch):
    from yunshang.dev import controlplane

    fake = tmp_path / "kube-apiserver"
    fake.write_text("#!/bin/sh\necho 'E0000 bad flag --etcd-servers: boom' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YUNSHANG_KUBE_APISERVER", str(fake))
    cp = controlplane.ControlPlane(state=tmp_path / "state")
    with pytest.raises(controlplane.StartError) as e:
        cp.up(timeout=20)
    msg = str(e.value)
    assert msg.splitlines()[0].startswith("kube-apiserver exited with code 3 while starting; see ")
    assert msg.splitlines()[0].endswith("logs/kube-apiserver.log") and "boom" in msg
    # etcd, started before, was stopped again: no process has this state dir on its command line
    left = [d.name for d in Path("/proc").iterdir() if d.name.isdigit() and _cmdline_has(d, str(cp.state))]
    assert left == []


def _cmdline_has(proc_dir: Path, needle: str) -> bool:
    try:
        return needle.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False
