"""Need-to-know on the real API server: a department reads its own tenant, the agreements it is
a party to, the catalogue and the audit records that concern it, and nothing else of other
departments'; platform admins read everything. Every attempt is the department's own request
(impersonated), each beside the control that is allowed."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from kubernetes import client

from factories import ADMIN_GROUPS, approval, dept_groups
from helpers import Impersonated, ready_tenant, wait_for

from yunshang.models.tenant import GROUP, VERSION

API = f"/apis/{GROUP}/{VERSION}"
VIEWS = "/api/v1/namespaces/yunshang-views/configmaps"


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


def test_a_department_reads_what_concerns_it_and_nothing_else(three, kube_api):
    a, b, c, name, da, db, dc = three
    # tenants: its own by name (once the operator granted it), neither the list nor another's
    wait_for("its own tenant", lambda: da.request("GET", f"{API}/tenants/{a}")[0] == 200, timeout=20)
    assert da.request("GET", f"{API}/tenants/{b}")[0] == 403
    assert da.request("GET", f"{API}/tenants")[0] == 403
    # agreements: the parties read it (once the operator named it in their roles), a stranger does not
    wait_for("parties may read", lambda: da.request("GET", f"{API}/shareagreements/{name}")[0] == 200
             and db.request("GET", f"{API}/shareagreements/{name}")[0] == 200, timeout=20)
    assert dc.request("GET", f"{API}/shareagreements/{name}")[0] == 403
    assert da.request("GET", f"{API}/shareagreements")[0] == 403
    # the provider still decides (patch by name), the stranger cannot even see it
    assert db.merge_patch(f"{API}/shareagreements/{name}", {"spec": {"decision": approval(by=f"clerk-{b}")}})[0] == 200
    assert dc.merge_patch(f"{API}/shareagreements/{name}", {"spec": {"revoked": {"by": "x"}}})[0] == 403
    # views: its own, with its agreement and its audit records; not another's
    code, view = da.request("GET", f"{VIEWS}/dept-{a}")
    assert code == 200 and [x["metadata"]["name"] for x in json.loads(view["data"]["agreements.json"])] == [name]
    assert dc.request("GET", f"{VIEWS}/dept-{a}")[0] == 403
    code, view = dc.request("GET", f"{VIEWS}/dept-{c}")
    assert code == 200 and json.loads(view["data"]["agreements.json"]) == []
    # the audit trail itself only through the view; the catalogue for everyone
    assert da.request("GET", f"{API}/auditrecords")[0] == 403
    assert dc.request("GET", f"{API}/shareoffers")[0] == 200
    # platform admins see all
    admin = Impersonated(kube_api, "bureau.chen", ADMIN_GROUPS)
    assert admin.request("GET", f"{API}/tenants")[0] == 200 and admin.request("GET", f"{API}/shareagreements")[0] == 200


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
