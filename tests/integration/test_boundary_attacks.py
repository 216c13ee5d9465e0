"""The tenant boundary, attacked as a hostile department, a careless reviewer and an over-eager
platform admin would (issue 18), against the real API server and the real operator.

Every test names the control it proves in its docstring (``Control:``) and fails when that control
is removed; each refusal asserts who refused (the rule's own words) and sits beside a control
request that is admitted, so that a broken platform cannot pass for a safe one.
"""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from kubernetes import client

from factories import ADMIN_GROUPS, approval, dept_groups, reviewer_groups, signoff, tenant
from helpers import Impersonated, grant, ready_tenant, wait_for

from yunshang.models.tenant import GROUP, VERSION

API = f"/apis/{GROUP}/{VERSION}"
TENANTS = f"{API}/tenants"
DRY = "?dryRun=All"
SUFFIX_WORDS = "namespace suffixes are lower-case letters and digits only"
PROVIDER_WORDS = "is not a namespace of provider"


def uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:5]}"


def status(co, name):
    return co.get_cluster_custom_object(GROUP, VERSION, "tenants", name).get("status") or {}


def admin(kube_api) -> Impersonated:
    """A member of the platform bureau (not system:masters)."""
    return Impersonated(kube_api, "bureau.admin", ADMIN_GROUPS)


def in_days(days: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- names

@pytest.mark.control("tenant-crd-rules")
@pytest.mark.parametrize("who", ["department", "platform-admin", "system:masters"])
def test_a_suffix_that_makes_another_tenants_namespace_is_refused(kube_api, platform, who):
    """Control: the Tenant CRD's rule on spec.namespaces (letters and digits only), for every identity.
    Tenant xq asking for suffix w-main would get xq-w-main, tenant xq-w's namespace."""
    name = uid("xq")
    caller = {"department": Impersonated(kube_api, f"clerk-{name}", dept_groups(name)),
              "platform-admin": admin(kube_api)}.get(who)
    send = (lambda body: caller.create(TENANTS + DRY, body)) if caller else \
        (lambda body: _as_masters(kube_api, body))
    for shape in ("w-main", "main-", "a-b-c"):
        code, body = send(tenant(name, namespaces=["app", shape]))
        assert code == 422 and SUFFIX_WORDS in body["message"], (shape, code, body)
    code, body = send(tenant(name, namespaces=["app", "wmain", "2"]))  # control
    assert code == 201, body


def _as_masters(kube_api, body):
    try:
        client.CustomObjectsApi(kube_api).create_cluster_custom_object(GROUP, VERSION, "tenants", body, dry_run="All")
        return 201, {}
    except client.ApiException as e:
        import json

        return e.status, json.loads(e.body)


@pytest.mark.control("tenant-crd-rules")
@pytest.mark.parametrize("name", ["kube", "kube-node", "kube-public", "yunshang", "yunshang-views", "default",
                                  "system", "openshift-x"])
def test_reserved_tenant_names_are_refused(kube_api, platform, name):
    """Control: the Tenant CRD's root rule on metadata.name (kube-node + lease = kube-node-lease,
    yunshang + system = yunshang-system, ...), for the platform bureau too."""
    code, body = admin(kube_api).create(TENANTS + DRY, tenant(name))
    assert code == 422 and "reserved for the platform's own namespaces" in body["message"], body
    code, body = admin(kube_api).create(TENANTS + DRY, tenant(f"{name.replace('-', '')}x"))  # control: kubex, ...
    assert code == 201, body


@pytest.mark.control("yunshang-namespace-ownership")
def test_the_operator_never_takes_a_namespace_it_did_not_create(kube_api, operator):
    """Control: the yunshang-namespace-ownership admission policy (the operator runs as
    system:masters here, and is refused all the same), and the operator's Conflict phase."""
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    name = uid("hand")
    core.create_namespace({"metadata": {"name": f"{name}-main", "labels": {"team": "someone-else"}}})
    core.create_namespaced_secret(f"{name}-main", {"metadata": {"name": "theirs"}, "stringData": {"k": "v"}})
    body = tenant(name)
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    st = wait_for("Conflict", lambda: (s := status(co, name)).get("phase") == "Conflict" and s)
    assert f"namespace {name}-main was not created for a tenant" in st["message"], st
    ns = core.read_namespace(f"{name}-main")
    assert "platform.yunshang.io/tenant" not in (ns.metadata.labels or {}) and not ns.metadata.owner_references
    assert not client.RbacAuthorizationV1Api(kube_api).list_namespaced_role_binding(f"{name}-main").items
    wait_for("audit record", lambda: any(
        r["spec"]["action"] == "TenantConflict" and r["spec"]["object"]["name"] == name
        for r in co.list_cluster_custom_object(GROUP, VERSION, "auditrecords")["items"]))
    # control: the same tenant shape with a free name is provisioned
    other = uid("free")
    ready_tenant(co, other)
    assert core.read_namespace(f"{other}-main").metadata.labels["platform.yunshang.io/tenant"] == other


@pytest.mark.control("yunshang-namespace-ownership")
def test_nobody_moves_a_namespace_to_another_tenant(kube_api, operator):
    """Control: the yunshang-namespace-ownership admission policy, for system:masters too."""
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    a, b = uid("ma"), uid("mb")
    ready_tenant(co, a)
    ready_tenant(co, b)
    for patch in ({"metadata": {"labels": {"platform.yunshang.io/tenant": b}}},
                  {"metadata": {"ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Tenant", "name": b,
                                                     "uid": co.get_cluster_custom_object(GROUP, VERSION, "tenants", b)
                                                     ["metadata"]["uid"]}]}}):
        with pytest.raises(client.ApiException) as e:
            core.patch_namespace(f"{a}-main", patch)
        assert e.value.status == 403 and "yunshang-namespace-ownership" in e.value.body \
            and f"belongs to tenant {a}" in e.value.body, e.value.body
    core.patch_namespace(f"{a}-main", {"metadata": {"labels": {"purpose": "ok"}}})  # control: another label
    assert core.read_namespace(f"{a}-main").metadata.labels["platform.yunshang.io/tenant"] == a


# ---------------------------------------------------------------------------- sharing by the record

@pytest.fixture
def prefix_pair(operator, kube_api):
    """Tenant p and tenant p-b: p's name is a prefix of p-b's namespace p-b-main."""
    co = client.CustomObjectsApi(kube_api)
    p = uid("pf")
    ready_tenant(co, p)
    ready_tenant(co, f"{p}-b")
    for ns in (f"{p}-main", f"{p}-b-main"):
        client.CoreV1Api(kube_api).create_namespaced_service(ns, {
            "metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})
    return co, p


@pytest.mark.control("yunshang-provider-namespace")
def test_an_offer_for_a_namespace_whose_name_only_starts_with_the_provider_is_refused(kube_api, prefix_pair):
    """Control: the yunshang-provider-namespace admission policy (p-b-main is tenant p-b's, not p's)."""
    _, p = prefix_pair
    owner = Impersonated(kube_api, f"owner-{p}", dept_groups(p))

    def offer(ns):
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareOffer", "metadata": {"name": f"{p}.x"},
                "spec": {"provider": p, "service": {"namespace": ns, "name": "api", "port": 80}, "title": "t",
                         "classification": "internal", "maxDays": 30, "approvalRequired": False}}
    code, body = owner.create(f"{API}/shareoffers{DRY}", offer(f"{p}-b-main"))
    assert code == 403 and PROVIDER_WORDS in body["message"], body
    code, body = owner.create(f"{API}/shareoffers{DRY}", offer(f"{p}-main"))  # control: its own namespace
    assert code == 201, body


@pytest.mark.control("yunshang-provider-namespace")
def test_an_agreement_naming_another_tenants_namespace_is_refused(kube_api, prefix_pair):
    """Control: the yunshang-provider-namespace admission policy."""
    co, p = prefix_pair
    consumer = uid("cs")
    ready_tenant(co, consumer)
    clerk = Impersonated(kube_api, f"clerk-{consumer}", dept_groups(consumer))

    def agreement(ns):
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement",
                "metadata": {"name": f"{consumer}.{p}.{uuid.uuid4().hex[:4]}"},
                "spec": {"consumer": consumer, "provider": p, "purpose": "case lookups", "expires": in_days(10),
                         "service": {"namespace": ns, "name": "api", "port": 80}}}
    code, body = clerk.create(f"{API}/shareagreements{DRY}", agreement(f"{p}-b-main"))
    assert code == 403 and PROVIDER_WORDS in body["message"], body
    code, body = clerk.create(f"{API}/shareagreements{DRY}", agreement(f"{p}-main"))  # control
    assert code == 201, body


# ---------------------------------------------------------------------------- sign-off

@pytest.mark.control("yunshang-tenant-signoff")
def test_a_platform_admin_cannot_create_a_tenant_already_decided(kube_api, platform):
    """Control: the yunshang-tenant-signoff policy (no create with an approval or sign-offs)."""
    name = uid("pre")
    body = tenant(name)
    body["spec"]["approval"] = approval(by="bureau.admin")
    code, resp = admin(kube_api).create(TENANTS + DRY, body)
    assert code == 403 and "cannot carry an approval or sign-offs" in resp["message"], resp
    body = tenant(name)
    body["spec"]["signoffs"] = [signoff(body["spec"], "platform", by="bureau.admin")]
    both = Impersonated(kube_api, "bureau.admin", [*ADMIN_GROUPS, *reviewer_groups()])  # holds the roles too
    code, resp = both.create(TENANTS + DRY, body)
    assert code == 403 and "cannot carry an approval or sign-offs" in resp["message"], resp
    code, resp = admin(kube_api).create(TENANTS + DRY, tenant(name))  # control: an undecided request
    assert code == 201, resp


@pytest.mark.control("yunshang-tenant-signoff")
def test_a_platform_admin_cannot_raise_quota_past_the_approved_ceiling(kube_api, operator):
    """Control: the yunshang-tenant-signoff policy (quota above the approved ceiling is a new round)."""
    co = client.CustomObjectsApi(kube_api)
    name = uid("qa")
    ready_tenant(co, name, elastic={"enabled": True, "ceiling": {"cpu": "12"}})  # quota cpu 8, ceiling 12
    path = f"{TENANTS}/{name}{DRY}"
    bureau = admin(kube_api)
    for spec in ({"quota": {"cpu": "13"}}, {"quota": {"pods": 41, "cpu": "8"}}, {"quota": {"memory": "17Gi"}},
                 {"elastic": {"ceiling": {"cpu": "64"}}}):
        code, resp = bureau.merge_patch(path, {"spec": spec})
        assert code == 403 and "new request even for the platform bureau" in resp["message"], (spec, resp)
    for spec in ({"quota": {"cpu": "12"}}, {"quota": {"cpu": "4"}},  # controls: within the ceiling
                 {"quota": {"cpu": "64"}, "requestRound": 2}):  # and more as a new round
        code, resp = bureau.merge_patch(path, {"spec": spec})
        assert code == 200, (spec, resp)


@pytest.mark.control("yunshang-tenant-signoff")
def test_a_reviewer_never_signs_for_their_own_department(kube_api, platform, operator):
    """Control: the yunshang-tenant-signoff policy (separation of duties: the department's group and
    its owners)."""
    name = uid("sod")
    dept = Impersonated(kube_api, f"clerk-{name}", dept_groups(name))
    assert dept.create(TENANTS, tenant(name, owners=[{"kind": "User", "name": "li.wei"},
                                                     {"kind": "Group", "name": f"owners-of-{name}"}]))[0] == 201
    grant(kube_api, name)
    spec = dept.request("GET", f"{TENANTS}/{name}")[1]["spec"]

    def sign(user, groups):
        return Impersonated(kube_api, user, groups).merge_patch(
            f"{TENANTS}/{name}", {"spec": {"signoffs": [signoff(spec, "security", by=user)]}})
    for user, groups in ((f"clerk-{name}", [*dept_groups(name), *reviewer_groups("security")]),  # its member
                         ("li.wei", reviewer_groups("security")),  # an owner by name
                         ("wang.fang", [f"owners-of-{name}", *reviewer_groups("security")])):  # an owner by group
        code, resp = sign(user, groups)
        assert code == 403 and "cannot sign off its request" in resp["message"], (user, resp)
    code, resp = sign("security.reviewer", reviewer_groups("security"))  # control: an independent reviewer
    assert code == 200, resp


# ---------------------------------------------------------------------------- external IPs and hostnames

@pytest.fixture
def ready(operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = uid("net")
    ready_tenant(co, name, allowed={"externalIPs": ["10.20.0.15"]})
    return name, Impersonated(kube_api, "li.wei", dept_groups(name))


@pytest.mark.control("yunshang-tenant-controls")
def test_external_ips_only_as_allowed(kube_api, ready):
    """Control: the yunshang-tenant-controls policy (spec.allowed.externalIPs), on create and on update."""
    name, owner = ready
    ns = f"{name}-main"
    path = f"/api/v1/namespaces/{ns}/services"

    def svc(*ips):
        spec = {"selector": {"app": "a"}, "ports": [{"port": 80}], **({"externalIPs": list(ips)} if ips else {})}
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}
    code, resp = owner.create(path + DRY, svc("8.8.8.8"))
    assert code == 403 and "external IP 8.8.8.8 is not allowed (allowed: 10.20.0.15)" in resp["message"], resp["message"]
    code, resp = owner.create(path + DRY, svc("10.20.0.15", "10.96.0.1"))
    assert code == 403 and "external IP 10.96.0.1 is not allowed" in resp["message"], resp
    assert owner.create(path + DRY, svc("10.20.0.15"))[0] == 201  # control: the allowed address
    assert owner.create(path, svc())[0] == 201  # control: a plain Service, then an update that adds one
    code, resp = owner.merge_patch(f"{path}/s", {"spec": {"externalIPs": ["1.1.1.1"]}})
    assert code == 403 and "external IP 1.1.1.1 is not allowed" in resp["message"], resp
    # nor through the status (the other half of CVE-2020-8554): RBAC refuses services/status to owners
    code, resp = owner.merge_patch(f"{path}/s/status", {"status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}})
    assert code == 403 and "services/status" in resp["message"], resp


def ingress(*hosts, tls=(), default_backend=False):
    rules = [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "s", "port": {"number": 80}}}}]}} if h else
             {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                 "service": {"name": "s", "port": {"number": 80}}}}]}} for h in hosts]
    spec = {"rules": rules}
    if tls:
        spec["tls"] = [{"hosts": list(tls), "secretName": "cert"}]
    if default_backend:
        spec["defaultBackend"] = {"service": {"name": "s", "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": spec}


@pytest.mark.control("yunshang-tenant-controls")
def test_ingress_hosts_only_the_tenants_own(kube_api, ready):
    """Control: the yunshang-tenant-controls policy (hostnames: the tenant's own under the platform's
    suffix, no host-less rule, no default backend)."""
    name, owner = ready
    path = f"/apis/networking.k8s.io/v1/namespaces/{name}-main/ingresses{DRY}"
    own = f"{name}.apps.gz.gov.local"
    for body, words in ((ingress("gz-bigdata.apps.gz.gov.local"), "hostname gz-bigdata.apps.gz.gov.local is not allowed"),
                        (ingress(f"api.{name}x.apps.gz.gov.local"), "is not allowed"),
                        (ingress(f"evil{own}"), "is not allowed"),
                        (ingress(own, None), "without a host"),
                        (ingress(own, default_backend=True), "defaultBackend"),
                        (ingress(own, tls=["www.gz.gov.cn"]), "TLS host")):
        code, resp = owner.create(path, body)
        assert code == 403 and words in resp["message"], (body["spec"], resp)
    code, resp = owner.create(path, ingress(own, f"api.{own}", tls=[own]))  # control: its own hosts
    assert code == 201, resp


def test_a_hostname_allowed_to_one_tenant_is_not_given_to_another(kube_api, operator):
    """Control: the operator's hostname check (phase Conflict, nothing applied) beside the controls
    policy that holds each tenant to its granted hostnames."""
    co = client.CustomObjectsApi(kube_api)
    first, second, squatter = uid("h1"), uid("h2"), uid("h3")
    ready_tenant(co, first, allowed={"hostnames": ["portal.gz.gov.cn"]})
    for name, hosts, words in ((second, ["*.gz.gov.cn"], f"overlaps portal.gz.gov.cn, allowed to tenant {first}"),
                               (squatter, [f"*.{first}.apps.gz.gov.local"], "under the platform's suffix")):
        body = tenant(name, allowed={"hostnames": hosts})
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
        st = wait_for(f"{name} Conflict", lambda n=name: (s := status(co, n)).get("phase") == "Conflict" and s)
        assert words in st["message"], st
        with pytest.raises(client.ApiException):
            client.CoreV1Api(kube_api).read_namespace(f"{name}-main")  # nothing was provisioned
    owner = Impersonated(kube_api, "li.wei", dept_groups(first))  # control: the first keeps its hostname
    code, resp = owner.create(f"/apis/networking.k8s.io/v1/namespaces/{first}-main/ingresses{DRY}",
                              ingress("portal.gz.gov.cn"))
    assert code == 201, resp


# ---------------------------------------------------------------------------- probing is the prober's

def _quarantined(co, name):
    return co.get_cluster_custom_object(GROUP, VERSION, "tenants", name)["spec"].get("quarantine")


@pytest.mark.parametrize("probe", ["writes", "reads"])
def test_probing_quarantines_the_prober_not_its_victim(monitoring, kube_api, probe):
    """Control: the operator's audit webhook counting a refusal against the departments of the identity
    that made it (writes, and reads as rbac-read), and the YunshangTenantProbing rule acting on it."""
    from conftest import prom_query
    from kubernetes import config

    cp, co = monitoring, client.CustomObjectsApi(kube_api)
    attacker, victim = uid("atk"), uid("vic")
    ready_tenant(co, attacker)
    ready_tenant(co, victim)
    for t in (attacker, victim):
        wait_for(f"{t}'s counters scraped",
                 lambda t=t: prom_query(cp, f'yunshang_tenant_denied_requests_total{{tenant="{t}"}}'), timeout=30)
    hostile = client.CoreV1Api(config.new_client_from_config(
        str(cp.identity_kubeconfig(f"clerk-{attacker}", dept_groups(attacker)))))
    if probe == "writes":  # pods into the victim's namespace, refused by RBAC
        attempts = [lambda i=i: hostile.create_namespaced_pod(f"{victim}-main", {"metadata": {"name": f"p{i}"}, "spec": {
            "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1"}]}}) for i in range(6)]
    else:  # gets and lists of the victim's secrets and config maps, refused by RBAC
        attempts = [lambda: hostile.read_namespaced_secret("x", f"{victim}-main"),
                    lambda: hostile.list_namespaced_secret(f"{victim}-main"),
                    lambda: hostile.list_namespaced_config_map(f"{victim}-main")] * 11
    for attempt in attempts:
        with pytest.raises(client.ApiException) as e:
            attempt()
        assert e.value.status == 403
    q = wait_for("the attacker quarantined", lambda: _quarantined(co, attacker), timeout=120)
    assert q["alert"] == "YunshangTenantProbing" and attacker in q["reason"]
    # the positive case arrived; now the victim: never counted, never quarantined
    assert not _quarantined(co, victim)
    counted = prom_query(cp, f'sum(yunshang_tenant_denied_requests_total{{tenant="{victim}"}})')
    assert counted and float(counted[0]["value"][1]) == 0, counted
    from yunshang.client import Tenants

    Tenants(str(cp.kubeconfig)).resume(attacker)  # leave the platform as found


@pytest.mark.control("yunshang-namespace-ownership")
def test_a_new_tenant_of_a_deleted_ones_name_does_not_inherit_its_namespaces(kube_api, operator):
    """Control: the yunshang-namespace-ownership admission policy (a retained namespace carries no
    tenant's mark: nobody's apply may give it one).  The attack: the second right after a department's
    tenant is deleted (Retain keeps its data), another asks for a tenant of the same name."""
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    name = uid("rt")
    ready_tenant(co, name)
    core.create_namespaced_secret(f"{name}-main", {"metadata": {"name": "records"}, "stringData": {"k": "v"}})
    co.delete_cluster_custom_object(GROUP, VERSION, "tenants", name)
    wait_for("deleted", lambda: name not in {t["metadata"]["name"] for t in
                                            co.list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]})
    ns = core.read_namespace(f"{name}-main")
    assert ns.metadata.labels.get("platform.yunshang.io/retained-from") == name
    body = tenant(name, owners=[{"kind": "User", "name": "someone.else"}])
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    st = wait_for("Conflict", lambda: (s := status(co, name)).get("phase") == "Conflict" and s)
    assert f"namespace {name}-main was kept from deleted tenant {name}" in st["message"], st
    ns = core.read_namespace(f"{name}-main")
    assert "platform.yunshang.io/tenant" not in ns.metadata.labels
    grants = client.RbacAuthorizationV1Api(kube_api).list_namespaced_role_binding(f"{name}-main").items
    assert not [b for b in grants if any(s.name == "someone.else" for s in b.subjects or [])]
    # control: the bureau releases the namespace on purpose (deletes it) and the tenant is provisioned
    core.delete_namespace(f"{name}-main")
    wait_for("Ready once the bureau released it", lambda: status(co, name).get("phase") == "Ready", timeout=120)
