"""Conformance: the Multi-Tenancy Benchmarks' profile-level-1 and isolation checks, plus the
platform's own controls (allowed registries, storage and ingress classes, Service types, the
platform's objects), each probed as a tenant owner would try it: through impersonation, against
the real API server, with server-side dry-run.  Each refused probe is a test that fails if the
API server lets it through; each has a control probe showing the compliant request IS admitted.

Written from the public MTB check list (block cluster resources, other tenants' resources,
privileged containers, privilege escalation, added capabilities, host path, host network and
ports, host PID and IPC, run as non-root, NodePort services, quota and limits present and
unmodifiable, role escalation, default-deny between tenants; tenants self-serve their own
network policies and role bindings)."""
from __future__ import annotations

import copy
import uuid

import pytest
from kubernetes import client

from factories import dept_groups
from helpers import Impersonated, ready_tenant
from yunshang.tenancy import LIMITRANGE_NAME, OWNERS_BINDING, QUOTA_NAME

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
ALLOWED_IMAGE = "registry.gz.gov.local/police/app:1"


def ready(co, name, **changes):
    ready_tenant(co, name, owners=[{"kind": "User", "name": f"owner-{name}"}], **changes)


@pytest.fixture(scope="module")
def tenants(operator, kube_api):
    """Tenant A allows one registry, one storage class, one ingress class; tenant B allows NodePort
    Services and names no registry (so it gets the platform's default list)."""
    co = client.CustomObjectsApi(kube_api)
    a, b = f"mta-{uuid.uuid4().hex[:5]}", f"mtb-{uuid.uuid4().hex[:5]}"
    ready(co, a, allowed={"registries": ["registry.gz.gov.local/police"], "storageClasses": ["ceph-rbd"],
                          "ingressClasses": ["gov-internal"]})
    ready(co, b, allowed={"serviceTypes": ["NodePort"]})
    return a, b


@pytest.fixture(scope="module")
def owner_a(tenants, kube_api):
    a, _ = tenants
    return Impersonated(kube_api, f"owner-{a}", [*dept_groups(a), "system:authenticated"])


@pytest.fixture(scope="module")
def owner_b(tenants, kube_api):
    _, b = tenants
    return Impersonated(kube_api, f"owner-{b}", [*dept_groups(b), "system:authenticated"])


DRY = "?dryRun=All"


def ns_of(t: str) -> str:
    return f"{t}-main"


def pod(name="probe", image=ALLOWED_IMAGE, **spec_changes) -> dict:
    """A pod the restricted Pod Security profile admits; probes change one thing."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "c", "image": image,
                                     "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 10001,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}
    body["spec"].update(spec_changes)
    return body


def with_container(**sc) -> dict:
    body = pod()
    body["spec"]["containers"][0]["securityContext"].update(sc)
    return body


def refused(status: int, body: dict, *words: str) -> None:
    assert status in (403, 422), f"admitted ({status}): {body}"
    msg = body.get("message", "")
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def admitted(status: int, body: dict) -> None:
    assert status in (200, 201), f"refused ({status}): {body.get('message')}"


# --------------------------------------------------------------------------- host and privilege

POD_PROBES = {
    "privileged container": lambda: with_container(privileged=True),
    "privilege escalation": lambda: with_container(allowPrivilegeEscalation=True),
    "added capability": lambda: with_container(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}),
    "run as root": lambda: with_container(runAsUser=0),
    "run as non-root off": lambda: pod(securityContext={"runAsNonRoot": False,
                                                        "seccompProfile": {"type": "RuntimeDefault"}}),
    "host path volume": lambda: pod(volumes=[{"name": "h", "hostPath": {"path": "/etc"}}]),
    "host network": lambda: pod(hostNetwork=True),
    "host port": lambda: _host_port(),
    "host PID": lambda: pod(hostPID=True),
    "host IPC": lambda: pod(hostIPC=True),
}


def _host_port() -> dict:
    body = pod()
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 8080}]
    return body


def test_control_a_compliant_pod_is_admitted(owner_a, tenants):
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(tenants[0])}/pods{DRY}", pod()))


@pytest.mark.parametrize("probe", sorted(POD_PROBES))
def test_host_and_privilege_probes_are_refused(probe, owner_a, tenants):
    refused(*owner_a.create(f"/api/v1/namespaces/{ns_of(tenants[0])}/pods{DRY}", POD_PROBES[probe]()))


# --------------------------------------------------------------------------- allowances (spec.allowed)

def test_images_only_from_the_tenants_registries(owner_a, tenants):
    a, _ = tenants
    path = f"/api/v1/namespaces/{ns_of(a)}/pods{DRY}"
    refused(*owner_a.create(path, pod(image="docker.io/evil/miner:1")),
            f"tenant {a}", "docker.io/evil/miner:1", "registry.gz.gov.local/police")
    # a look-alike host is not the registry
    refused(*owner_a.create(path, pod(image="registry.gz.gov.local.evil.io/police/x:1")))
    # an init container counts too
    sneaky = pod()
    sneaky["spec"]["initContainers"] = [{**copy.deepcopy(sneaky["spec"]["containers"][0]), "name": "i",
                                         "image": "quay.io/x/y:1"}]
    refused(*owner_a.create(path, sneaky), "quay.io/x/y:1")
    admitted(*owner_a.create(path, pod(image="registry.gz.gov.local/police/app:2")))


def test_workload_templates_are_checked_at_once(owner_a, tenants):
    a, _ = tenants
    template = pod(image="docker.io/evil/miner:1")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner"},
           "spec": {"selector": {"matchLabels": {"app": "m"}},
                    "template": {"metadata": {"labels": {"app": "m"}}, "spec": template["spec"]}}}
    refused(*owner_a.create(f"/apis/apps/v1/namespaces/{ns_of(a)}/deployments{DRY}", dep), "docker.io/evil/miner:1")
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "miner"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {**template["spec"], "restartPolicy": "Never"}}}}}}
    refused(*owner_a.create(f"/apis/batch/v1/namespaces/{ns_of(a)}/cronjobs{DRY}", cron), "docker.io/evil/miner:1")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = ALLOWED_IMAGE
    admitted(*owner_a.create(f"/apis/apps/v1/namespaces/{ns_of(a)}/deployments{DRY}", dep))


def test_a_tenant_naming_no_registry_gets_the_platforms_default(owner_b, tenants):
    _, b = tenants
    path = f"/api/v1/namespaces/{ns_of(b)}/pods{DRY}"
    refused(*owner_b.create(path, pod(image="docker.io/library/nginx:1")), "registry.gz.gov.local")
    admitted(*owner_b.create(path, pod(image="registry.gz.gov.local/any/app:1")))


def pvc(storage_class: str | None) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": spec}


def test_pvcs_only_of_allowed_storage_classes(owner_a, owner_b, tenants):
    a, b = tenants
    refused(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/persistentvolumeclaims{DRY}", pvc("fast-ssd")),
            f"tenant {a}", "fast-ssd", "ceph-rbd")
    refused(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/persistentvolumeclaims{DRY}", pvc("ceph-rbd")),
            "allowed: none")
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/persistentvolumeclaims{DRY}", pvc("ceph-rbd")))
    admitted(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/persistentvolumeclaims{DRY}", pvc(None)))


def ingress(cls: str, tenant: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"ingressClassName": cls, "rules": [{"host": f"x.{tenant}.apps.gz.gov.local", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def test_ingresses_only_of_allowed_classes(owner_a, tenants):
    a, _ = tenants
    path = f"/apis/networking.k8s.io/v1/namespaces/{ns_of(a)}/ingresses{DRY}"
    refused(*owner_a.create(path, ingress("public-internet", a)), "public-internet", "gov-internal")
    admitted(*owner_a.create(path, ingress("gov-internal", a)))  # its class, and a host of its own


def service(kind: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{kind.lower()}"},
            "spec": {"type": kind, "selector": {"app": "x"}, "ports": [{"port": 80}]}}


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_nodeport_and_loadbalancer_services_are_refused(kind, owner_a, tenants):
    a, _ = tenants
    refused(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/services{DRY}", service(kind)),
            f"tenant {a}", kind)


def test_service_types_a_tenant_is_allowed(owner_a, owner_b, tenants):
    a, b = tenants
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/services{DRY}", service("ClusterIP")))
    admitted(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/services{DRY}", service("NodePort")))
    refused(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/services{DRY}", service("LoadBalancer")),
            "allowed beyond ClusterIP: NodePort")


# --------------------------------------------------------------------------- cluster and other tenants

@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/nodes"),
    ("GET", "/api/v1/namespaces"),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    ("GET", "/api/v1/persistentvolumes"),
    ("GET", "/apis/storage.k8s.io/v1/storageclasses"),
    ("GET", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"),
    ("POST", "/api/v1/namespaces"),
])
def test_cluster_resources_are_blocked(method, path, owner_a):
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}} if method == "POST" else None
    status, resp = owner_a.request(method, path + (DRY if method == "POST" else ""), body)
    assert status == 403, resp


def test_other_tenants_resources_are_blocked(owner_a, tenants):
    a, b = tenants
    for path in (f"/api/v1/namespaces/{ns_of(b)}/pods", f"/api/v1/namespaces/{ns_of(b)}/secrets",
                 f"/api/v1/namespaces/{ns_of(b)}/configmaps"):
        status, resp = owner_a.request("GET", path)
        assert status == 403, (path, resp)
    status, resp = owner_a.create(f"/api/v1/namespaces/{ns_of(b)}/pods{DRY}", pod())
    assert status == 403, resp
    # control: the same reads in its own namespace
    for path in (f"/api/v1/namespaces/{ns_of(a)}/pods", f"/api/v1/namespaces/{ns_of(a)}/configmaps"):
        assert owner_a.request("GET", path)[0] == 200


def test_role_escalation_is_refused(owner_a, tenants):
    a, _ = tenants

    def binding(role: str) -> dict:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": f"to-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": "colleague", "apiGroup": "rbac.authorization.k8s.io"}]}

    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns_of(a)}/rolebindings{DRY}"
    status, resp = owner_a.create(path, binding("cluster-admin"))
    assert status == 403, resp
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "nodes"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    status, resp = owner_a.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns_of(a)}/roles{DRY}", role)
    assert status == 403, resp
    # control: sharing what it has (admin, edit, view) with a colleague inside its namespace
    for r in ("view", "edit", "admin"):
        admitted(*owner_a.create(path, binding(r)))


# --------------------------------------------------------------------------- quota, limits, own objects

def test_quota_and_limits_are_present(owner_a, tenants):
    a, _ = tenants
    status, quotas = owner_a.request("GET", f"/api/v1/namespaces/{ns_of(a)}/resourcequotas")
    assert status == 200 and quotas["items"][0]["spec"]["hard"]["pods"]
    status, limits = owner_a.request("GET", f"/api/v1/namespaces/{ns_of(a)}/limitranges")
    assert status == 200 and limits["items"][0]["spec"]["limits"]


PLATFORM_OBJECTS = [
    f"/api/v1/namespaces/{{ns}}/resourcequotas/{QUOTA_NAME}",
    f"/api/v1/namespaces/{{ns}}/limitranges/{LIMITRANGE_NAME}",
    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{{ns}}/rolebindings/{OWNERS_BINDING}",
    "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/default-deny",
    "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/allow-intra-tenant",
]


@pytest.mark.parametrize("path", PLATFORM_OBJECTS)
def test_the_platforms_objects_cannot_be_deleted_or_changed(path, owner_a, tenants):
    a, _ = tenants
    p = path.format(ns=ns_of(a))
    status, resp = owner_a.delete(p + DRY)
    refused(status, resp)
    status, resp = owner_a.merge_patch(p + DRY, {"metadata": {"labels": {"tampered": "yes"}}})
    refused(status, resp)


def test_platform_object_refusal_names_tenant_and_object(owner_a, tenants):
    a, _ = tenants
    status, resp = owner_a.delete(f"/apis/networking.k8s.io/v1/namespaces/{ns_of(a)}/networkpolicies/default-deny{DRY}")
    refused(status, resp, f"tenant {a}", "NetworkPolicy default-deny belongs to the platform")


def test_tenants_keep_self_service_of_their_own_objects(owner_a, tenants, kube_api):
    """Control: a tenant's own NetworkPolicies, RoleBindings and Services are its to create and delete,
    and it cannot dress one up as the platform's."""
    a, _ = tenants
    base = f"/apis/networking.k8s.io/v1/namespaces/{ns_of(a)}/networkpolicies"
    mine = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-web"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 8080}]}]}}
    admitted(*owner_a.create(base, mine))
    admitted(*owner_a.merge_patch(f"{base}/allow-web", {"metadata": {"labels": {"team": "web"}}}))
    admitted(*owner_a.delete(f"{base}/allow-web"))
    fake = copy.deepcopy(mine)
    fake["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "yunshang"}
    refused(*owner_a.create(base + DRY, fake), "belongs to the platform")
    rb = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns_of(a)}/rolebindings"
    admitted(*owner_a.create(rb, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                  "metadata": {"name": "viewer"},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                              "name": "view"},
                                  "subjects": [{"kind": "User", "name": "auditor",
                                                "apiGroup": "rbac.authorization.k8s.io"}]}))
    admitted(*owner_a.delete(f"{rb}/viewer"))
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/services", service("ClusterIP")))
    admitted(*owner_a.delete(f"/api/v1/namespaces/{ns_of(a)}/services/s-clusterip"))


def test_default_deny_between_tenants(kube_api, tenants):
    """The live NetworkPolicies of both tenants, evaluated: nothing crosses; within a tenant it flows."""
    from yunshang.sharing import Pod, allowed

    a, b = tenants
    net, core = client.NetworkingV1Api(kube_api), client.CoreV1Api(kube_api)
    pols = [kube_api.sanitize_for_serialization(p) for ns in (ns_of(a), ns_of(b))
            for p in net.list_namespaced_network_policy(ns).items]
    assert {p["metadata"]["name"] for p in pols} >= {"default-deny", "allow-intra-tenant"}
    labels = {ns: core.read_namespace(ns).metadata.labels for ns in (ns_of(a), ns_of(b))}
    pa, pb = Pod(ns_of(a), (("app", "x"),)), Pod(ns_of(b), (("app", "x"),))
    assert not allowed(pols, pa, pb, 8080, "TCP", labels)
    assert not allowed(pols, pb, pa, 8080, "TCP", labels)
    assert allowed(pols, pa, Pod(ns_of(a), (("app", "y"),)), 8080, "TCP", labels)
