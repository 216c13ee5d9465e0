"""Need-to-know on the real API server: a department reads its own tenant, the agreements it is
a party to, the catalogue and the audit records that concern it, and nothing else of other
departments'; platform admins read everything. Every attempt is the department's own request
(impersonated), each beside the control that is allowed.

Each security test names the control it proves (``@pytest.mark.control``) and every refusal
asserts who refused, in the API server's authorization words (``is forbidden: User … cannot …``:
no authorizer allowed it, not an admission policy, not a 404):
- ``authz-need-to-know``: the operator's authorization webhook (yunshang.views.authorize), which
  the API server asks after RBAC about a department's request by name: its own tenant, the
  agreements it is a party to and its own view in ``yunshang-views``, nothing else (no RBAC
  object per department: the cost of a request does not grow with their number);
- ``rbac-department``: the departments' cluster-wide ClusterRole ``yunshang:department``, which
  creates tenants and agreements and reads the catalogue, and lists nothing else."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from kubernetes import client

from factories import ADMIN_GROUPS, approval, dept_groups
from helpers import Impersonated, granted, rbac_refused, ready_tenant, wait_for

from yunshang.models.tenant import GROUP, VERSION
from yunshang.views import VIEWS_NAMESPACE

API = f"/apis/{GROUP}/{VERSION}"
VIEWS = f"/api/v1/namespaces/{VIEWS_NAMESPACE}/configmaps"


@pytest.fixture
def three(operator, kube_api):
    """a consumes from b; c is a stranger to both."""
    co = client.CustomObjectsApi(kube_api)
    a, b, c = (f"nk{x}-{uuid.uuid4().hex[:4]}" for x in "abc")
    for t in (a, b, c):
        ready_tenant(co, t, namespaces=["main"])
    client.CoreV1Api(kube_api).create_namespaced_service(f"{b}-main", {
        "metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}})
    name = f"{a}.{b}.api"
    da = Impersonated(kube_api, f"clerk-{a}", dept_groups(a))
    code, body = da.create(f"{API}/shareagreements", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement", "metadata": {"name": name},
        "spec": {"consumer": a, "provider": b, "purpose": "lookups",
                 "service": {"namespace": f"{b}-main", "name": "api", "port": 80},
                 "expires": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ")}})
    assert code == 201, body
    return a, b, c, name, da, Impersonated(kube_api, f"clerk-{b}", dept_groups(b)), \
        Impersonated(kube_api, f"clerk-{c}", dept_groups(c))


@pytest.mark.control("authz-need-to-know")
def test_a_department_reads_its_own_tenant_and_not_anothers(three):
    """Control: the need-to-know webhook, which allows a department its own tenant by name only: a
    get or patch by name of another's is refused, the same get of its own admitted."""
    a, b, c, name, da, db, dc = three
    granted(da, f"{API}/tenants/{a}")  # control: its own, by name
    rbac_refused(da.request("GET", f"{API}/tenants/{b}"), da, "get", "tenants")
    rbac_refused(da.merge_patch(f"{API}/tenants/{b}", {"spec": {"purpose": "hijack"}}), da, "patch", "tenants")
    granted(db, f"{API}/tenants/{b}")  # control: the same get by b's own department


@pytest.mark.control("authz-need-to-know")
def test_only_the_parties_read_and_decide_an_agreement(three):
    """Control: the need-to-know webhook, which allows the agreements a department is a party to
    (consumer or provider, from the operator's cache): the stranger can neither read nor patch it
    (refused before any admission policy is asked), while the parties read it and the provider decides."""
    a, b, c, name, da, db, dc = three
    path = f"{API}/shareagreements/{name}"
    granted(da, path)  # control: the parties read it, once the operator has seen it
    granted(db, path)
    # control: the stranger is answered (its own tenant by name): refused below for not being a party,
    # not because nobody answers
    granted(dc, f"{API}/tenants/{c}")
    rbac_refused(dc.request("GET", path), dc, "get", "shareagreements")
    rbac_refused(dc.merge_patch(path, {"spec": {"revoked": {"by": f"clerk-{c}"}}}), dc, "patch", "shareagreements")
    # control: the same patch by name from the provider, deciding
    code, body = db.merge_patch(path, {"spec": {"decision": approval(by=f"clerk-{b}")}})
    assert code == 200, body


@pytest.mark.control("authz-need-to-know")
def test_a_department_reads_its_own_view_and_not_anothers(three):
    """Control: the need-to-know webhook, which allows a department exactly its own view in
    yunshang-views (get and watch by name)."""
    a, b, c, name, da, db, dc = three
    granted(da, f"{VIEWS}/dept-{a}")
    granted(dc, f"{VIEWS}/dept-{c}")
    # control: its own view, with its agreement (and its audit records); the stranger's own, empty
    wait_for("a's view names its agreement", lambda: [x["metadata"]["name"] for x in json.loads(
        da.request("GET", f"{VIEWS}/dept-{a}")[1]["data"]["agreements.json"])] == [name], timeout=20, interval=0.5)
    code, view = dc.request("GET", f"{VIEWS}/dept-{c}")
    assert code == 200 and json.loads(view["data"]["agreements.json"]) == [], view
    rbac_refused(dc.request("GET", f"{VIEWS}/dept-{a}"), dc, "get", "configmaps", group="",
                 namespace=VIEWS_NAMESPACE)
    rbac_refused(da.request("GET", f"{VIEWS}/dept-{c}"), da, "get", "configmaps", group="",
                 namespace=VIEWS_NAMESPACE)


@pytest.fixture
def one(operator, kube_api):
    name = f"nkd-{uuid.uuid4().hex[:4]}"
    ready_tenant(client.CustomObjectsApi(kube_api), name, namespaces=["main"])
    return name, Impersonated(kube_api, f"clerk-{name}", dept_groups(name))


@pytest.mark.control("rbac-department")
@pytest.mark.parametrize("resource", ["tenants", "shareagreements", "auditrecords"])
def test_a_department_lists_none_of_the_cluster_scoped_kinds(one, kube_api, resource):
    """Control: ClusterRole yunshang:department (bound to yunshang:departments), which lets a department
    create tenants and agreements but list none of them (RBAC cannot filter a cluster-scoped list by
    name: a list would show every department's); the audit trail only through its view."""
    t, dept = one
    granted(dept, f"{API}/tenants/{t}")  # its own tenant by name, as the need-to-know webhook allows
    rbac_refused(dept.request("GET", f"{API}/{resource}"), dept, "list", resource)
    # control: the same list of the catalogue, which the department role grants (offers are meant to be found)
    code, offers = dept.request("GET", f"{API}/shareoffers")
    assert code == 200 and "items" in offers, offers
    # control: the same list by the platform bureau
    admin = Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)
    code, listed = admin.request("GET", f"{API}/{resource}")
    assert code == 200 and "items" in listed, listed


def test_the_cli_shows_a_department_its_own(three, platform, capsys, monkeypatch):
    from yunshang.cli import app
    from yunshang.cli.common import run_app

    a, b, c, name, *_ = three

    def run(*args):
        kc = str(platform.identity_kubeconfig(f"clerk-{a}", dept_groups(a)))
        monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", kc, *args])
        capsys.readouterr()
        code = run_app(app)
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    wait_for("its own tenant", lambda: [t["name"] for t in run("tenant", "list", "-o", "json")] == [a], timeout=20)
    wait_for("its agreement in its view", lambda: [x["name"] for x in run("share", "list", "-o", "json")] == [name],
             timeout=20)
    records = run("audit", "-o", "json", "--limit", "0")
    assert records and all(a in r["tenants"] for r in records)
