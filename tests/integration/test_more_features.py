"""README features no other test exercised, each on a control plane of its own (they change the
platform: `up` and `destroy`, or an operator with other sign-off settings):

- `yunshang platform preview|up|outputs|destroy` (the Automation API on the project's own stack
  `local`, its state under $YUNSHANG_STATE_DIR/pulumi, the cluster from $YUNSHANG_KUBECONFIG):
  preview creates nothing, up makes the platform and (the local stack approves its catalog) the
  catalog Ready, outputs name the tenants, a second up changes nothing, destroy keeps the CRDs, the
  catalog's Tenants and the audit anchor's namespace, and a later up takes them back;
- parallel sign-off with other roles and days (`YUNSHANG_SIGNOFF_ROLES=platform,security`,
  `YUNSHANG_SIGNOFF_TENANT_DAYS=1`): those two roles approve, no finance; each decision is due one
  day after the round opened; one of the two is not enough.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from conftest import OperatorProcess
from factories import dept_groups, reviewer_groups, signoff, tenant
from helpers import Impersonated, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "yunshang"
GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
TENANTS = f"/apis/{GROUP}/{VERSION}/tenants"
STACK_LABEL = "platform.yunshang.io/stack"


# =========================================================================== yunshang platform ...

def _catalog() -> set[str]:
    from yunshang import catalog

    return {e.name for e in catalog.load(ROOT / "tenants")}


def _declared() -> int:
    """What a fresh `up` of stack local creates: the stack, the provider, the eight components and
    every object the program declares (the same list its ownership check walks)."""
    from yunshang import catalog
    from yunshang.infra import config, program

    cfg = config.from_stack_file("local", ROOT).model_copy(update={"stack": "local"})
    return 1 + 1 + 8 + len(program.manifests(cfg, catalog.load(ROOT / "tenants")))


class PlatformCli:
    """The venv's `yunshang` as the platform engineer runs it, from another directory, with the
    project's stacks/; the Pulumi state under $YUNSHANG_STATE_DIR (automation.state_dir()) and the
    cluster named by $YUNSHANG_KUBECONFIG (a throwaway control plane's, never stacks/'s default)."""

    def __init__(self, cp, state: Path, cwd: Path):
        self.cwd = cwd
        self.env = {**os.environ, "YUNSHANG_STATE_DIR": str(state), "YUNSHANG_KUBECONFIG": str(cp.kubeconfig),
                    "KUBECONFIG": str(cp.kubeconfig), "COLUMNS": "200"}
        for var in ("PULUMI_BACKEND_URL", "YUNSHANG_TAKE_OVER"):
            self.env.pop(var, None)

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(BIN), "platform", *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                           timeout=540)
        assert "Traceback" not in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
        if ok:
            assert r.returncode == 0, f"yunshang platform {' '.join(args)} exited {r.returncode}:\n" \
                                      f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    def json(self, *args: str) -> dict:
        r = self(*args, "-o", "json")
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"yunshang platform {' '.join(args)} -o json is not JSON ({e}):\n{r.stdout[-3000:]}")


def _cluster(api) -> dict[str, object]:
    """What the platform program would create, as it is now in the cluster."""
    ns = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    crds = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    vaps = {p.metadata.name for p in
            client.AdmissionregistrationV1Api(api).list_validating_admission_policy().items}
    roles = {r.metadata.name for r in client.RbacAuthorizationV1Api(api).list_cluster_role().items
             if r.metadata.name.startswith("yunshang:")}
    return {"namespaces": ns, "crds": crds, "policies": vaps, "clusterroles": roles}


def _tenants(api) -> dict[str, dict]:
    items = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "tenants")["items"]
    return {t["metadata"]["name"]: t for t in items}


def _gone(api, ns: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(ns)
    except client.ApiException as e:
        return e.status == 404
    return False


def _stop(op) -> None:
    """Stop this module's operator and forget it (conftest.RUNNING lists the session's operators)."""
    import conftest

    if op is not None:
        op.stop()
        conftest.RUNNING[:] = [o for o in conftest.RUNNING if o is not op]


@pytest.fixture(scope="module")
def cli_platform(tmp_path_factory):
    """A control plane of this module's own (up and destroy change the platform), with an operator
    that picks up the CRDs once `up` installs them (the catalog gets Ready only through it)."""
    from kubernetes import config

    from yunshang.dev import controlplane

    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("cli-platform"), audit_webhook=False)
    cp.up()
    op = None
    api = config.new_client_from_config(str(cp.kubeconfig))
    try:
        op = OperatorProcess(cp, cp.state).start()
        yield cp, api
    finally:
        try:
            _stop(op)
            api.close()
        finally:
            cp.down()  # whatever stopping the operator did: the platform goes


@pytest.fixture(scope="module")
def first_up(cli_platform, tmp_path_factory):
    """`platform preview` on the fresh control plane (with the cluster before and after it), then
    the first `platform up` (each test reads what it needs, in whatever order they run)."""
    cp, api = cli_platform
    state = tmp_path_factory.mktemp("yunshang-state")
    run = PlatformCli(cp, state, tmp_path_factory.mktemp("elsewhere"))
    stack_file = (ROOT / "stacks" / "Pulumi.local.yaml").read_text()
    before = _cluster(api)
    preview = run.json("preview")
    after_preview = _cluster(api)
    up = run.json("up")
    return {"run": run, "state": state, "before": before, "preview": preview, "after_preview": after_preview,
            "up": up, "stack_file": stack_file}


def test_platform_preview_shows_creates_and_changes_nothing(first_up):
    assert first_up["preview"]["changes"] == {"create": _declared()}, first_up["preview"]
    assert first_up["after_preview"] == first_up["before"]
    assert not {"yunshang-system", "yunshang-monitoring"} & first_up["after_preview"]["namespaces"]
    assert f"tenants.{GROUP}" not in first_up["after_preview"]["crds"]


def test_platform_up_creates_the_platform_and_the_catalog_becomes_ready(first_up, cli_platform):
    cp, api = cli_platform
    up = first_up["up"]
    assert up["changes"] == {"create": _declared()}, up["changes"]
    now = _cluster(api)
    assert {"yunshang-system", "yunshang-monitoring", "yunshang-views"} <= now["namespaces"]
    assert {f"tenants.{GROUP}", f"shareagreements.{GROUP}", f"auditrecords.{GROUP}"} <= now["crds"]
    assert {"yunshang-tenant-signoff", "yunshang-tenant-governance", "yunshang-namespace-ownership"} <= now["policies"]
    gov = client.AdmissionregistrationV1Api(api).read_validating_admission_policy("yunshang-tenant-governance")
    assert gov.metadata.labels[STACK_LABEL] == "local"  # the stack it ran: stacks/Pulumi.local.yaml
    # `up` returned once the operator reported every catalog tenant Ready (approveCatalog: true)
    tenants = _tenants(api)
    assert set(tenants) == _catalog()
    assert {n: t.get("status", {}).get("phase") for n, t in tenants.items()} == {n: "Ready" for n in _catalog()}
    assert {n: t["spec"]["approval"]["by"] for n, t in tenants.items()} == \
        {n: f"git:tenants/{n}.yaml" for n in _catalog()}
    assert {n: t["metadata"]["labels"][STACK_LABEL] for n, t in tenants.items()} == {n: "local" for n in _catalog()}
    # it deployed to the cluster of $YUNSHANG_KUBECONFIG, with Pulumi's state under $YUNSHANG_STATE_DIR/pulumi
    assert up["outputs"]["kubeconfig"] == str(cp.kubeconfig) and up["outputs"]["cluster"] == "local"
    assert set(up["outputs"]["tenants"]) == _catalog()
    assert list((first_up["state"] / "pulumi" / "pulumi-backend").rglob("local.json*")), \
        sorted(str(p) for p in first_up["state"].rglob("*"))[:40]
    # and the project's stack file is as it was (no salt, no config written into it)
    assert (ROOT / "stacks" / "Pulumi.local.yaml").read_text() == first_up["stack_file"]


def test_platform_outputs_list_the_tenants(first_up, cli_platform):
    cp, _ = cli_platform
    run = first_up["run"]
    doc = run.json("outputs")
    assert set(doc["tenants"]) == _catalog()
    assert (doc["environment"], doc["cluster"], doc["operator"]) == ("local", "local", "process")
    assert {"yunshang-system", "yunshang-monitoring"} <= set(doc["namespaces"])
    assert doc["kubeconfig"] == str(cp.kubeconfig)
    table = run("outputs").stdout
    line = next((ln for ln in table.splitlines() if ln.startswith("tenants")), "")
    assert all(name in line for name in _catalog()), table


def test_a_second_platform_up_changes_nothing(first_up, cli_platform):
    _, api = cli_platform
    uids = {n: t["metadata"]["uid"] for n, t in _tenants(api).items()}
    again = first_up["run"].json("up")
    assert set(again["changes"]) == {"same"}, again["changes"]
    assert again["changes"]["same"] == _declared()
    assert set(again["outputs"]["tenants"]) == _catalog()
    assert {n: t["metadata"]["uid"] for n, t in _tenants(api).items()} == uids
    pv = first_up["run"].json("preview")
    assert set(pv["changes"]) == {"same"}, pv["changes"]


def test_the_kubeconfig_and_context_flags_reach_the_program(first_up, cli_platform, tmp_path):
    """`yunshang --kubeconfig F --context C platform up` deploys where F and C say, over the stack's
    setting ($YUNSHANG_KUBECONFIG here): a copy of the kubeconfig with a second context to the same
    cluster.  Control: without the flags the stack's own setting is used (and is again after)."""
    import yaml

    cp, _ = cli_platform
    run = first_up["run"]
    doc = yaml.safe_load(cp.kubeconfig.read_text())
    doc["contexts"].append({**doc["contexts"][0], "name": "second"})
    copy = tmp_path / "kubeconfig"
    copy.write_text(yaml.safe_dump(doc))

    def up(*flags: str) -> dict:
        r = subprocess.run([str(BIN), *flags, "platform", "up", "-o", "json"], cwd=run.cwd, env=run.env,
                           capture_output=True, text=True, timeout=540)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return json.loads(r.stdout)
    chosen = up("--kubeconfig", str(copy), "--context", "second")
    assert (chosen["outputs"]["kubeconfig"], chosen["outputs"]["context"]) == (str(copy), "second")
    # the same cluster by another way: at most the provider is updated, nothing replaced, created or deleted
    assert set(chosen["changes"]) <= {"same", "update"} and chosen["changes"].get("update", 0) <= 1, chosen
    back = up()  # control: the stack's own kubeconfig and context
    assert (back["outputs"]["kubeconfig"], back["outputs"]["context"]) == (str(cp.kubeconfig), "(its current one)")
    assert set(back["changes"]) <= {"same", "update"}, back


def test_platform_destroy_keeps_crds_catalog_and_the_anchor_namespace_and_up_takes_them_back(first_up, cli_platform):
    _, api = cli_platform
    run = first_up["run"]
    before = _tenants(api)
    system_uid = client.CoreV1Api(api).read_namespace("yunshang-system").metadata.uid
    r = run("destroy", "--yes")
    assert "destroyed" in r.stdout, r.stdout[-2000:]
    after = _cluster(api)
    # retained: the CRDs, every catalog Tenant (the same objects, still provisioned) and the audit anchor's namespace
    assert {f"tenants.{GROUP}", f"shareagreements.{GROUP}", f"auditrecords.{GROUP}"} <= after["crds"]
    kept = _tenants(api)
    assert {n: t["metadata"]["uid"] for n, t in kept.items()} == {n: t["metadata"]["uid"] for n, t in before.items()}
    assert _catalog() <= set(kept)
    assert {n: kept[n].get("status", {}).get("phase") for n in _catalog()} == {n: "Ready" for n in _catalog()}
    assert client.CoreV1Api(api).read_namespace("yunshang-system").metadata.uid == system_uid
    client.CoreV1Api(api).read_namespace("gz-bigdata-exchange")  # a department's namespace and its data
    # removed: the rest (policies, RBAC, the other system namespaces)
    assert not {"yunshang-tenant-signoff", "yunshang-tenant-governance"} & after["policies"], after["policies"]
    assert "yunshang:platform-admin" not in after["clusterroles"]
    for ns in ("yunshang-monitoring", "yunshang-views"):
        wait_for(f"{ns} gone", lambda ns=ns: _gone(api, ns), timeout=90, interval=0.5)
    # a later up takes the retained objects back (they carry this stack's mark: no --take-over)
    up = run.json("up")
    assert up["changes"].get("create"), up["changes"]
    assert not {"delete", "replace"} & set(up["changes"]), up["changes"]
    assert {n: t["metadata"]["uid"] for n, t in _tenants(api).items()} == \
        {n: t["metadata"]["uid"] for n, t in before.items()}
    assert "yunshang-tenant-governance" in _cluster(api)["policies"]


# =========================================================================== sign-off roles and days

ROLES = ("platform", "security")


@pytest.fixture(scope="module")
def two_role_platform(tmp_path_factory):
    """A control plane whose platform is installed for reviewer roles platform and security (the
    RBAC binding of reviewers is rendered from the roles too) and an operator with those roles and a
    one-day time limit: what stack config `yunshang:signoff: {roles: [platform, security],
    tenantDays: 1}` gives a platform."""
    from kubernetes import config

    from yunshang import platform as plat
    from yunshang import policies
    from yunshang.dev import controlplane

    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("two-roles"), audit_webhook=False)
    cp.up()
    api = config.new_client_from_config(str(cp.kubeconfig))
    op = None
    try:
        plat.install(api, [*plat.system_namespaces(), *plat.crds(), plat.operator_account(),
                           *policies.governance(roles=ROLES)])
        op = OperatorProcess(cp, cp.state, extra_env={"YUNSHANG_SIGNOFF_ROLES": ",".join(ROLES),
                                                       "YUNSHANG_SIGNOFF_TENANT_DAYS": "1"}).start()
        yield api, op
    finally:
        try:
            _stop(op)
            api.close()
        finally:
            cp.down()  # whatever stopping the operator did: the platform goes


def _reviewer(api, role: str) -> Impersonated:
    return Impersonated(api, f"{role}.reviewer", reviewer_groups(role))


def _get(who: Impersonated, name: str) -> dict:
    code, body = who.request("GET", f"{TENANTS}/{name}")
    assert code == 200, body
    return body


def _sign(api, role: str, name: str) -> None:
    who = _reviewer(api, role)
    wait_for(f"{role} may read tenants", lambda: who.request("GET", f"{TENANTS}/{name}")[0] == 200, timeout=30,
             interval=0.5)
    spec = _get(who, name)["spec"]
    code, body = who.merge_patch(f"{TENANTS}/{name}", {"spec": {"signoffs": [*(spec.get("signoffs") or []),
                                                                             signoff(spec, role)]}})
    assert code == 200, body


def _status(api, name: str) -> dict:
    return client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, "tenants", name).get("status") or {}


def _request(api, name: str) -> dt.datetime:
    """A department asks for a tenant; returns its creation time (round 1 opens with it)."""
    dept = Impersonated(api, f"clerk-{name}", dept_groups(name))
    wait_for("department may create tenants", lambda: dept.create(TENANTS, tenant(name))[0] == 201, timeout=30,
             interval=0.5)
    created = client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, "tenants", name)
    return _time(created["metadata"]["creationTimestamp"])


def _time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))


def _has_namespace(api, ns: str) -> bool:
    return not _gone(api, ns)


def test_platform_and_security_approve_without_finance_each_due_one_day_after_the_round_opened(two_role_platform):
    api, op = two_role_platform
    name = f"two-{uuid.uuid4().hex[:6]}"
    created = _request(api, name)
    st = wait_for("pending sign-off in status", lambda: (_status(api, name).get("signoff") or {}).get("roles")
                  and _status(api, name), timeout=30)
    so = st["signoff"]
    assert st["phase"] == "Pending" and "waiting for sign-off by platform, security" in st["message"], st
    assert [r["role"] for r in so["roles"]] == list(ROLES)  # no finance
    assert _time(so["opened"]) == created
    assert {r["role"]: _time(r["deadline"]) for r in so["roles"]} == {r: created + dt.timedelta(days=1) for r in ROLES}
    assert not any(r.get("overdue") for r in so["roles"])  # false: left out of the status
    due = f"yunshang_decision_deadline_timestamp_seconds{{kind=tenant,name={name},party=security}}"
    assert wait_for("deadline exported", lambda: op.metrics().get(due)) == (created + dt.timedelta(days=1)).timestamp()
    assert not [k for k in op.metrics() if k.startswith("yunshang_decision_deadline_timestamp_seconds")
                and f"name={name}," in k and "party=finance" in k]
    # a finance reviewer is not a reviewer on this platform: RBAC binds only the configured roles
    assert _reviewer(api, "finance").request("GET", f"{TENANTS}/{name}")[0] == 403

    _sign(api, "platform", name)  # one of the two: still pending, nothing provisioned
    wait_for("waiting for security only",
             lambda: "waiting for sign-off by security" in _status(api, name).get("message", ""), timeout=30)
    st = _status(api, name)
    assert st["phase"] == "Pending" and not _has_namespace(api, f"{name}-main")
    sec = next(r for r in st["signoff"]["roles"] if r["role"] == "security")
    assert sec["decision"] == "Pending" and _time(sec["deadline"]) == created + dt.timedelta(days=1)

    _sign(api, "security", name)  # the second: approved, no finance needed
    wait_for(f"{name} Ready", lambda: _status(api, name).get("phase") == "Ready", timeout=60)
    assert _has_namespace(api, f"{name}-main")
    spec = client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, "tenants", name)["spec"]
    assert sorted(s["role"] for s in spec["signoffs"]) == ["platform", "security"]
    assert due not in op.metrics()  # nothing pending any more


def test_with_only_one_of_the_two_roles_the_tenant_stays_pending(two_role_platform):
    api, op = two_role_platform
    name = f"one-{uuid.uuid4().hex[:6]}"
    created = _request(api, name)
    wait_for("pending", lambda: _status(api, name).get("phase") == "Pending", timeout=30)
    _sign(api, "security", name)
    wait_for("waiting for platform only",
             lambda: "waiting for sign-off by platform" in _status(api, name).get("message", "")
             and "security" not in _status(api, name).get("message", ""), timeout=30)
    # and it stays so: through two resyncs of the operator (its reconcile counter says they happened)
    seen = op.reconciles()
    n = len(client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "tenants")["items"])

    def two_resyncs_and_still_pending() -> bool:
        assert _status(api, name).get("phase") == "Pending" and not _has_namespace(api, f"{name}-main")
        return op.reconciles() >= seen + 2 * n
    wait_for("two resyncs, still pending", two_resyncs_and_still_pending, timeout=op.resync * 10 + 30, interval=0.5)
    st = _status(api, name)
    assert st["phase"] == "Pending" and st["signoff"]["state"] == "Pending", st
    assert {r["role"]: r["decision"] for r in st["signoff"]["roles"]} == {"platform": "Pending", "security": "Approved"}
    plat_role = next(r for r in st["signoff"]["roles"] if r["role"] == "platform")
    assert _time(plat_role["deadline"]) == created + dt.timedelta(days=1)
    assert not _has_namespace(api, f"{name}-main")
