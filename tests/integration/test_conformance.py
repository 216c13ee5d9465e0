"""Conformance: the Multi-Tenancy Benchmarks' profile-level-1 and isolation checks, plus the
platform's own controls (allowed registries, storage and ingress classes, Service types, the
platform's objects), each probed as a tenant owner would try it: through impersonation, against
the real API server, with server-side dry-run.

Every test names the control it proves (``@pytest.mark.control``) and fails when that control is
removed (``tests/knockout.py``).  Each refusal asserts who refused — the policy's name, or the
rule's own words (``violates PodSecurity "restricted:latest"`` for Pod Security, ``is forbidden:
User … cannot …`` for RBAC) — and sits beside a control request that is admitted.  Several
probes are refused by Kubernetes itself rather than by anything of the platform: by the built-in
``admin`` role the owners hold (``rbac-builtin-admin``), or by the local control plane's
``--allow-privileged=false`` (``apiserver-allow-privileged``); their names say so.

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
from helpers import Impersonated, ready_tenant, wait_for
from yunshang.tenancy import LIMITRANGE_NAME, OWNERS_BINDING, QUOTA_NAME

GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
ALLOWED_IMAGE = "registry.gz.gov.local/police/app:1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
NET = "/apis/networking.k8s.io/v1"


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


# who refuses, by the control's name: the status and the words only that control writes
WHO = {
    "pod-security-restricted": (403, 'is forbidden: violates PodSecurity "restricted:latest": '),
    "apiserver-allow-privileged": (422, "privileged: Forbidden: disallowed by cluster policy"),
    "yunshang-tenant-controls": (403, "ValidatingAdmissionPolicy 'yunshang-tenant-controls' with binding "
                                      "'yunshang-tenant-controls' denied request: "),
    "yunshang-platform-objects": (403, "ValidatingAdmissionPolicy 'yunshang-platform-objects' with binding "
                                       "'yunshang-platform-objects' denied request: "),
    "rbac-builtin-admin": (403, " is forbidden: "),
    "rbac-tenant-owners": (403, " is forbidden: User "),
    "rbac-department": (403, " is forbidden: User "),
}


def refused(control: str, status: int, body: dict, *words: str) -> None:
    """Refused by ``control`` (its status and its own words), with ``words`` in the message."""
    code, marker = WHO[control]
    msg = body.get("message", "")
    assert status == code and marker in msg, f"not refused by {control}: {status} {msg or body}"
    for w in words:
        assert w in msg, (w, msg)
    if control.startswith("yunshang-"):
        assert "\n" not in msg, msg  # the platform's refusals are one line


def admitted(status: int, body: dict) -> None:
    assert status in (200, 201), f"refused ({status}): {body.get('message')}"


# --------------------------------------------------------------------------- host and privilege

def _host_port() -> dict:
    body = pod()
    body["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 8080}]
    return body


POD_PROBES = {  # probe -> (the pod, what Pod Security says of it)
    "privilege escalation": (lambda: with_container(allowPrivilegeEscalation=True),
                             ["allowPrivilegeEscalation != false"]),
    "added capability": (lambda: with_container(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]}),
                         ["unrestricted capabilities", '"NET_ADMIN"']),
    "run as root": (lambda: with_container(runAsUser=0), ["runAsUser=0"]),
    "run as non-root off": (lambda: pod(securityContext={"runAsNonRoot": False,
                                                         "seccompProfile": {"type": "RuntimeDefault"}}),
                            ["runAsNonRoot != true"]),
    "host path volume": (lambda: pod(volumes=[{"name": "h", "hostPath": {"path": "/etc"}}]),
                         ['restricted volume types (volume "h" uses restricted volume type "hostPath")']),
    "host network": (lambda: pod(hostNetwork=True), ["host namespaces (hostNetwork=true)"]),
    "host port": (_host_port, ['hostPort (container "c" uses hostPort 8080)']),
    "host PID": (lambda: pod(hostPID=True), ["host namespaces (hostPID=true)"]),
    "host IPC": (lambda: pod(hostIPC=True), ["host namespaces (hostIPC=true)"]),
}


@pytest.mark.control("pod-security-restricted")
@pytest.mark.parametrize("probe", sorted(POD_PROBES))
def test_host_and_privilege_probes_are_refused_by_pod_security(probe, owner_a, tenants):
    """Control: Pod Security, by the label pod-security.kubernetes.io/enforce=restricted the
    operator keeps on every tenant namespace."""
    path = f"/api/v1/namespaces/{ns_of(tenants[0])}/pods{DRY}"
    make, words = POD_PROBES[probe]
    refused("pod-security-restricted", *owner_a.create(path, make()), *words)
    admitted(*owner_a.create(path, pod()))  # control: the compliant pod


@pytest.mark.control("apiserver-allow-privileged")
def test_privileged_containers_are_refused_by_the_api_server(owner_a, tenants):
    """Control: the local control plane's kube-apiserver flag --allow-privileged=false, which
    refuses a privileged container in validation, before any admission: Pod Security never sees
    it here.  (Not the platform's policy: a flag of the API server.)"""
    path = f"/api/v1/namespaces/{ns_of(tenants[0])}/pods{DRY}"
    body = with_container(privileged=True, allowPrivilegeEscalation=True)  # valid otherwise
    refused("apiserver-allow-privileged", *owner_a.create(path, body), "spec.containers[0].securityContext.privileged")
    sneaky = pod()
    sneaky["spec"]["initContainers"] = [{**copy.deepcopy(body["spec"]["containers"][0]), "name": "i"}]
    refused("apiserver-allow-privileged", *owner_a.create(path, sneaky),
            "spec.initContainers[0].securityContext.privileged")
    admitted(*owner_a.create(path, pod()))  # control: the same pod, unprivileged


# --------------------------------------------------------------------------- allowances (spec.allowed)

@pytest.mark.control("yunshang-tenant-controls")
def test_images_only_from_the_tenants_registries(owner_a, tenants):
    """Control: the yunshang-tenant-controls policy (spec.allowed.registries, matched as a prefix)."""
    a, _ = tenants
    path = f"/api/v1/namespaces/{ns_of(a)}/pods{DRY}"
    refused("yunshang-tenant-controls", *owner_a.create(path, pod(image="docker.io/evil/miner:1")),
            f"tenant {a}: image docker.io/evil/miner:1 is not from an allowed registry "
            "(allowed: registry.gz.gov.local/police)")
    # a look-alike host is not the registry
    refused("yunshang-tenant-controls", *owner_a.create(path, pod(image="registry.gz.gov.local.evil.io/police/x:1")),
            "image registry.gz.gov.local.evil.io/police/x:1 is not from an allowed registry")
    # an init container counts too
    sneaky = pod()
    sneaky["spec"]["initContainers"] = [{**copy.deepcopy(sneaky["spec"]["containers"][0]), "name": "i",
                                         "image": "quay.io/x/y:1"}]
    refused("yunshang-tenant-controls", *owner_a.create(path, sneaky), "image quay.io/x/y:1 is not from")
    admitted(*owner_a.create(path, pod(image="registry.gz.gov.local/police/app:2")))  # control


@pytest.mark.control("yunshang-tenant-controls")
def test_workload_templates_are_checked_at_once(owner_a, tenants):
    """Control: the yunshang-tenant-controls policy, on Deployments and CronJobs' templates."""
    a, _ = tenants
    template = pod(image="docker.io/evil/miner:1")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner"},
           "spec": {"selector": {"matchLabels": {"app": "m"}},
                    "template": {"metadata": {"labels": {"app": "m"}}, "spec": template["spec"]}}}
    refused("yunshang-tenant-controls", *owner_a.create(f"/apis/apps/v1/namespaces/{ns_of(a)}/deployments{DRY}", dep),
            "image docker.io/evil/miner:1 is not from an allowed registry")
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "miner"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                "spec": {**template["spec"], "restartPolicy": "Never"}}}}}}
    refused("yunshang-tenant-controls", *owner_a.create(f"/apis/batch/v1/namespaces/{ns_of(a)}/cronjobs{DRY}", cron),
            "image docker.io/evil/miner:1 is not from an allowed registry")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = ALLOWED_IMAGE
    admitted(*owner_a.create(f"/apis/apps/v1/namespaces/{ns_of(a)}/deployments{DRY}", dep))  # control


@pytest.mark.control("yunshang-tenant-controls")
def test_a_tenant_naming_no_registry_gets_the_platforms_default(owner_b, tenants):
    """Control: the yunshang-tenant-controls policy (the platform's default registries)."""
    _, b = tenants
    path = f"/api/v1/namespaces/{ns_of(b)}/pods{DRY}"
    refused("yunshang-tenant-controls", *owner_b.create(path, pod(image="docker.io/library/nginx:1")),
            f"tenant {b}: image docker.io/library/nginx:1 is not from an allowed registry "
            "(allowed: registry.gz.gov.local)")
    admitted(*owner_b.create(path, pod(image="registry.gz.gov.local/any/app:1")))  # control


def pvc(storage_class: str | None) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": spec}


@pytest.mark.control("yunshang-tenant-controls")
def test_pvcs_only_of_allowed_storage_classes(owner_a, owner_b, tenants):
    """Control: the yunshang-tenant-controls policy (spec.allowed.storageClasses)."""
    a, b = tenants
    refused("yunshang-tenant-controls",
            *owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/persistentvolumeclaims{DRY}", pvc("fast-ssd")),
            f"tenant {a}: storage class fast-ssd is not allowed (allowed: ceph-rbd)")
    refused("yunshang-tenant-controls",
            *owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/persistentvolumeclaims{DRY}", pvc("ceph-rbd")),
            f"tenant {b}: storage class ceph-rbd is not allowed (allowed: none)")
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/persistentvolumeclaims{DRY}", pvc("ceph-rbd")))
    admitted(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/persistentvolumeclaims{DRY}", pvc(None)))


def ingress(cls: str, tenant: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"ingressClassName": cls, "rules": [{"host": f"x.{tenant}.apps.gz.gov.local", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


@pytest.mark.control("yunshang-tenant-controls")
def test_ingresses_only_of_allowed_classes(owner_a, tenants):
    """Control: the yunshang-tenant-controls policy (spec.allowed.ingressClasses)."""
    a, _ = tenants
    path = f"{NET}/namespaces/{ns_of(a)}/ingresses{DRY}"
    refused("yunshang-tenant-controls", *owner_a.create(path, ingress("public-internet", a)),
            f"tenant {a}: ingress class public-internet is not allowed (allowed: gov-internal)")
    admitted(*owner_a.create(path, ingress("gov-internal", a)))  # control: its class, and a host of its own


def service(kind: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{kind.lower()}"},
            "spec": {"type": kind, "selector": {"app": "x"}, "ports": [{"port": 80}]}}


@pytest.mark.control("yunshang-tenant-controls")
@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_nodeport_and_loadbalancer_services_are_refused(kind, owner_a, tenants):
    """Control: the yunshang-tenant-controls policy (spec.allowed.serviceTypes, none for tenant A)."""
    a, _ = tenants
    path = f"/api/v1/namespaces/{ns_of(a)}/services{DRY}"
    refused("yunshang-tenant-controls", *owner_a.create(path, service(kind)),
            f"tenant {a}: a Service of type {kind} is not allowed (allowed beyond ClusterIP: none)")
    admitted(*owner_a.create(path, service("ClusterIP")))  # control


@pytest.mark.control("yunshang-tenant-controls")
def test_service_types_a_tenant_is_allowed(owner_a, owner_b, tenants):
    """Control: the yunshang-tenant-controls policy (tenant B is allowed NodePort, not LoadBalancer)."""
    a, b = tenants
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/services{DRY}", service("ClusterIP")))
    admitted(*owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/services{DRY}", service("NodePort")))
    refused("yunshang-tenant-controls",
            *owner_b.create(f"/api/v1/namespaces/{ns_of(b)}/services{DRY}", service("LoadBalancer")),
            f"tenant {b}: a Service of type LoadBalancer is not allowed (allowed beyond ClusterIP: NodePort)")


# --------------------------------------------------------------------------- cluster and other tenants

@pytest.mark.control("rbac-department")
@pytest.mark.parametrize("method, path, verb, resource", [
    ("GET", "/api/v1/nodes", "list", '"nodes" in API group ""'),
    ("GET", "/api/v1/namespaces", "list", '"namespaces" in API group ""'),
    ("GET", f"{RBAC}/clusterroles", "list", '"clusterroles" in API group "rbac.authorization.k8s.io"'),
    ("GET", "/api/v1/persistentvolumes", "list", '"persistentvolumes" in API group ""'),
    ("GET", "/apis/storage.k8s.io/v1/storageclasses", "list", '"storageclasses" in API group "storage.k8s.io"'),
    ("GET", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies", "list",
     '"validatingadmissionpolicies" in API group "admissionregistration.k8s.io"'),
    ("POST", "/api/v1/namespaces", "create", '"namespaces" in API group ""'),
])
def test_cluster_resources_are_blocked(method, path, verb, resource, owner_a, tenants):
    """Control: RBAC.  A tenant owner's only cluster-wide grant is its department's, ClusterRole
    yunshang:department (tenants, agreements, offers); its `admin` is bound inside its namespaces.
    RBAC denies what no grant names; the knock-out gives the department role everything."""
    a, _ = tenants
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mine"}} if method == "POST" else None
    refused("rbac-department", *owner_a.request(method, path + (DRY if method == "POST" else ""), body),
            f'User "owner-{a}" cannot {verb} resource {resource} at the cluster scope')
    # control: what the department role does grant cluster-wide
    status, offers = owner_a.request("GET", f"/apis/{GROUP}/{VERSION}/shareoffers")
    assert status == 200 and "items" in offers, offers


@pytest.mark.control("rbac-tenant-owners")
def test_other_tenants_resources_are_blocked(owner_a, tenants):
    """Control: RBAC, the owners' RoleBinding to `admin` (the operator's `tenant-owners`) inside
    their own namespaces only."""
    a, b = tenants
    for kind in ("pods", "secrets", "configmaps"):
        refused("rbac-tenant-owners", *owner_a.request("GET", f"/api/v1/namespaces/{ns_of(b)}/{kind}"),
                f'User "owner-{a}" cannot list resource "{kind}" in API group "" in the namespace "{ns_of(b)}"')
    refused("rbac-tenant-owners", *owner_a.create(f"/api/v1/namespaces/{ns_of(b)}/pods{DRY}", pod()),
            f'User "owner-{a}" cannot create resource "pods" in API group "" in the namespace "{ns_of(b)}"')
    # control: the same requests in its own namespace
    for kind in ("pods", "secrets", "configmaps"):
        assert owner_a.request("GET", f"/api/v1/namespaces/{ns_of(a)}/{kind}")[0] == 200, kind
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/pods{DRY}", pod()))


def _binding(role: str, kind: str = "ClusterRole", name: str | None = None) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name or f"to-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "colleague", "apiGroup": "rbac.authorization.k8s.io"}]}


@pytest.mark.control("rbac-builtin-admin")
def test_role_escalation_is_refused(owner_a, tenants):
    """Control: Kubernetes' built-in `admin` role the owners hold, and RBAC's escalation check (no
    one grants what they do not hold).  Not the platform's policy: Kubernetes'."""
    a, _ = tenants
    words = f'user "owner-{a}" (groups=['
    path = f"{RBAC}/namespaces/{ns_of(a)}/rolebindings{DRY}"
    refused("rbac-builtin-admin", *owner_a.create(path, _binding("cluster-admin")), words,
            "is attempting to grant RBAC permissions not currently held")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "nodes"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    refused("rbac-builtin-admin", *owner_a.create(f"{RBAC}/namespaces/{ns_of(a)}/roles{DRY}", role), words,
            "is attempting to grant RBAC permissions not currently held")
    # control: sharing what it has (admin, edit, view) with a colleague inside its namespace
    for r in ("view", "edit", "admin"):
        admitted(*owner_a.create(path, _binding(r)))


# --------------------------------------------------------------------------- quota, limits, own objects

@pytest.mark.control("rbac-builtin-admin")
@pytest.mark.parametrize("resource, name", [("resourcequotas", QUOTA_NAME), ("limitranges", LIMITRANGE_NAME)])
def test_quota_and_limits_are_present_and_the_owner_cannot_change_them(resource, name, owner_a, tenants):
    """Control: Kubernetes' built-in `admin` role the owners hold, which reads quotas and limits
    and never writes them.  Not the platform's policy: RBAC refuses before it is asked (the
    policy's own refusal is the next test's)."""
    a, _ = tenants
    path = f"/api/v1/namespaces/{ns_of(a)}/{resource}"
    status, items = owner_a.request("GET", path)  # control: present, and the owner's to read
    assert status == 200 and [i["metadata"]["name"] for i in items["items"]] == [name], items
    assert items["items"][0]["spec"]["hard" if resource == "resourcequotas" else "limits"]
    refused("rbac-builtin-admin", *owner_a.delete(f"{path}/{name}{DRY}"),
            f'User "owner-{a}" cannot delete resource "{resource}" in API group "" in the namespace "{ns_of(a)}"')
    refused("rbac-builtin-admin", *owner_a.merge_patch(f"{path}/{name}{DRY}", {"metadata": {"labels": {"t": "y"}}}),
            f'User "owner-{a}" cannot patch resource "{resource}" in API group "" in the namespace "{ns_of(a)}"')


@pytest.fixture(scope="module")
def quota_writer(tenants, kube_api):
    """An identity RBAC lets write quotas and limits in tenant A's namespace (a deploy robot the
    bureau granted too much): only the policy stands between it and the platform's objects."""
    a, _ = tenants
    ns, user = ns_of(a), f"robot-{a}"
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": "quota-writer"}, "rules": [{
        "apiGroups": [""], "resources": ["resourcequotas", "limitranges"],
        "verbs": ["get", "list", "create", "update", "patch", "delete"]}]})
    rbac.create_namespaced_role_binding(ns, {"metadata": {"name": "quota-writer"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "quota-writer"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]})
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "resourceAttributes": {"verb": "delete", "resource": "limitranges", "namespace": ns}}}
    wait_for("RBAC grants the robot", lambda: client.AuthorizationV1Api(kube_api)
             .create_subject_access_review(review).status.allowed, timeout=30)
    yield Impersonated(kube_api, user, ["system:authenticated"])
    rbac.delete_namespaced_role_binding("quota-writer", ns)
    rbac.delete_namespaced_role("quota-writer", ns)


@pytest.mark.control("yunshang-platform-objects")
@pytest.mark.parametrize("resource, kind, name", [("resourcequotas", "ResourceQuota", QUOTA_NAME),
                                                  ("limitranges", "LimitRange", LIMITRANGE_NAME)])
def test_quota_and_limits_are_the_platforms_even_for_whom_rbac_lets_write_them(resource, kind, name, quota_writer,
                                                                               tenants):
    """Control: the yunshang-platform-objects policy (managed-by yunshang: only the operator and
    the platform admins change them), for an identity RBAC allows."""
    a, _ = tenants
    path = f"/api/v1/namespaces/{ns_of(a)}/{resource}"
    words = f"tenant {a}: {kind} {name} belongs to the platform (managed-by yunshang) and cannot be created, " \
            f"changed or deleted by robot-{a}"
    refused("yunshang-platform-objects", *quota_writer.delete(f"{path}/{name}{DRY}"), words)
    refused("yunshang-platform-objects", *quota_writer.merge_patch(
        f"{path}/{name}{DRY}", {"spec": {"hard": {"pods": "1000"}} if resource == "resourcequotas" else
                                {"limits": [{"type": "Container", "default": {"cpu": "64"}}]}}), words)
    # control: the same identity, an object of the same kind of its own
    own = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "robots-own"},
           "spec": {"hard": {"pods": "1"}} if resource == "resourcequotas" else
           {"limits": [{"type": "Container", "default": {"cpu": "100m"}}]}}
    admitted(*quota_writer.create(f"{path}{DRY}", own))


PLATFORM_OBJECTS = [  # (path under the namespace, kind, name) of what the operator applies there
    (f"{RBAC}/namespaces/{{ns}}/rolebindings/{OWNERS_BINDING}", "RoleBinding", OWNERS_BINDING),
    (f"{NET}/namespaces/{{ns}}/networkpolicies/default-deny", "NetworkPolicy", "default-deny"),
    (f"{NET}/namespaces/{{ns}}/networkpolicies/allow-intra-tenant", "NetworkPolicy", "allow-intra-tenant"),
    (f"{NET}/namespaces/{{ns}}/networkpolicies/allow-dns", "NetworkPolicy", "allow-dns"),
    (f"{NET}/namespaces/{{ns}}/networkpolicies/allow-monitoring", "NetworkPolicy", "allow-monitoring"),
]

OWN = {  # control: an object of the same kind, the tenant's own
    "RoleBinding": _binding("view", name="viewer"),
    "NetworkPolicy": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "allow-web"},
                      "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 8080}]}]}},
}


@pytest.mark.control("yunshang-platform-objects")
@pytest.mark.parametrize("path, kind, name", PLATFORM_OBJECTS, ids=[f"{k}-{n}" for _, k, n in PLATFORM_OBJECTS])
def test_the_platforms_objects_cannot_be_deleted_or_changed(path, kind, name, owner_a, tenants):
    """Control: the yunshang-platform-objects policy.  The owners' `admin` may write RoleBindings
    and NetworkPolicies (RBAC lets these through); the policy refuses the platform's, naming the
    tenant and the object."""
    a, _ = tenants
    p = path.format(ns=ns_of(a))
    words = f"tenant {a}: {kind} {name} belongs to the platform (managed-by yunshang) and cannot be created, " \
            f"changed or deleted by owner-{a}; ask the platform bureau"
    refused("yunshang-platform-objects", *owner_a.delete(p + DRY), words)
    refused("yunshang-platform-objects", *owner_a.merge_patch(p + DRY, {"metadata": {"labels": {"tampered": "yes"}}}),
            words)
    admitted(*owner_a.create(p.rsplit("/", 1)[0] + DRY, OWN[kind]))


@pytest.mark.control("yunshang-platform-objects")
def test_tenants_keep_self_service_of_their_own_objects(owner_a, tenants, kube_api):
    """Control: the yunshang-platform-objects policy refuses an object dressed up as the platform's;
    beside it (admitted) a tenant's own NetworkPolicies, RoleBindings and Services are its to
    create, change and delete."""
    a, _ = tenants
    base = f"{NET}/namespaces/{ns_of(a)}/networkpolicies"
    mine = copy.deepcopy(OWN["NetworkPolicy"])
    admitted(*owner_a.create(base, mine))
    admitted(*owner_a.merge_patch(f"{base}/allow-web", {"metadata": {"labels": {"team": "web"}}}))
    admitted(*owner_a.delete(f"{base}/allow-web"))
    fake = copy.deepcopy(mine)
    fake["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "yunshang"}
    refused("yunshang-platform-objects", *owner_a.create(base + DRY, fake),
            f"tenant {a}: NetworkPolicy allow-web belongs to the platform")
    rb = f"{RBAC}/namespaces/{ns_of(a)}/rolebindings"
    admitted(*owner_a.create(rb, OWN["RoleBinding"]))
    admitted(*owner_a.delete(f"{rb}/viewer"))
    fake = {**copy.deepcopy(OWN["RoleBinding"]), "metadata": {"name": "viewer", "labels": {
        "app.kubernetes.io/managed-by": "yunshang"}}}
    refused("yunshang-platform-objects", *owner_a.create(rb + DRY, fake),
            f"tenant {a}: RoleBinding viewer belongs to the platform")
    admitted(*owner_a.create(f"/api/v1/namespaces/{ns_of(a)}/services", service("ClusterIP")))
    admitted(*owner_a.delete(f"/api/v1/namespaces/{ns_of(a)}/services/s-clusterip"))


@pytest.mark.control("networkpolicy-tenant-isolation")
def test_default_deny_between_tenants(kube_api, tenants):
    """Control: the NetworkPolicies the operator applies in every tenant namespace (default-deny,
    and allow-lists that select every pod: its own tenant's namespaces, DNS, monitoring).  The live
    policies of both tenants, evaluated: nothing crosses; within a tenant it flows (the control)."""
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
    assert allowed(pols, pa, Pod(ns_of(a), (("app", "y"),)), 8080, "TCP", labels)  # control
