"""The platform program through plain `pulumi` (the pinned CLI, its language host, the real
kubernetes provider) on a control plane of this module's own: up creates everything and the
operator makes the catalog Ready; a second up changes nothing; a catalog edit previews as
exactly that change; reaching the same cluster through a copied kubeconfig or another context
name replaces and deletes nothing; destroy removes the platform and keeps what is retained.
State and config live in a temp dir, never in your stacks."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from helpers import changes, make_project, pulumi, wait_for

pytestmark = pytest.mark.pulumi
ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
CATALOG = {p.stem for p in (ROOT / "tenants").glob("*.yaml")}  # each file is named after its tenant


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    """A control plane of this module's own: `destroy` removes the policies the other tests rely
    on.  The operator starts before Pulumi installs its CRDs and picks them up."""
    from conftest import OperatorProcess
    from yunshang.dev import controlplane

    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("pulumi-platform"))
    cp.up()
    op = OperatorProcess(cp, cp.state).start()
    yield cp
    op.stop()
    cp.down()


@pytest.fixture(scope="module")
def own_api(own_platform):
    from kubernetes import config

    api = config.new_client_from_config(str(own_platform.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def first_up(tmp_path_factory, own_platform):
    """The project, its stack `test`, and the result of its first `up` (each test of this module
    starts from a platform that stack made, whatever order the tests run in)."""
    root = make_project(tmp_path_factory.mktemp("project") / "yunshang", own_platform.kubeconfig)
    state = tmp_path_factory.mktemp("pulumi-state")
    pulumi(["stack", "init", "test"], root, state)
    return root, state, pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)


@pytest.fixture
def project(first_up):
    return first_up[:2]


def counts(api) -> dict[str, int]:
    co = client.CustomObjectsApi(api)
    return {plural: len(co.list_cluster_custom_object(GROUP, VERSION, plural)["items"])
            for plural in ("tenants", "shareagreements", "auditrecords")}


def expected_objects() -> int:
    from yunshang import platform as plat
    from yunshang.infra import components
    from yunshang.infra.config import StackConfig

    return (len(plat.system_namespaces()) + len(plat.crds()) + len(components.governance_manifests(StackConfig()))
            + len(components.priority_classes())
            + len(components.operator_manifests(StackConfig(operator={"mode": "process"})))
            + len(components.monitoring_manifests(StackConfig())) + len(components.demo_manifests()) + len(CATALOG))


def test_up_is_ready_then_noop_then_one_update(first_up, own_api):
    root, state, up = first_up
    # the stack + the provider + 8 components + the objects
    assert changes(up) == {"create": 1 + 1 + 8 + expected_objects()}
    co = client.CustomObjectsApi(own_api)
    # `up` returned only when the operator had made every catalog tenant Ready (pulumi.com/waitFor)
    for name in CATALOG:
        t = co.get_cluster_custom_object(GROUP, VERSION, "tenants", name)
        assert t["status"]["phase"] == "Ready", name
    assert co.get_cluster_custom_object(GROUP, VERSION, "tenants", "xf-health")["spec"]["approval"]["by"] == \
        "git:tenants/xf-health.yaml"
    out = pulumi(["stack", "output", "tenants", "--json", "--stack", "test"], root, state)
    assert set(out) == CATALOG

    # up is idempotent: another up changes nothing.  (Once more first: the module's other tests, in
    # whatever order they ran, may have left a change for the next up, e.g. another context name.)
    pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)
    again = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)
    assert changes(again) == {}

    f = root / "tenants" / "gy-police.yaml"
    original = f.read_text()
    f.write_text(original.replace('cpu: "8"', 'cpu: "10"'))
    try:
        assert changes(pulumi(["preview", "--json", "--stack", "test"], root, state)) == {"update": 1}
    finally:
        f.write_text(original)


def test_a_second_stack_takes_over_nothing_and_destroys_nothing(project, own_api):
    """Issue 24: a second stack on the same platform (a copy of the first's settings) stops before
    adopting what the first manages, naming the object and its stack; its destroy deletes nothing.
    Control: ownership.problems (the marks the program puts on every object it declares)."""
    root, state = project
    other = root / "stacks" / "Pulumi.other.yaml"
    other.write_text((root / "stacks" / "Pulumi.test.yaml").read_text())
    try:
        pulumi(["stack", "init", "other"], root, state)
        before = client.AdmissionregistrationV1Api(own_api).read_validating_admission_policy(
            "yunshang-tenant-governance").metadata
        assert before.labels["platform.yunshang.io/stack"] == "test"
        for verb in (["preview"], ["up", "--yes"]):
            r = pulumi([*verb, "--stack", "other"], root, state, check=False)
            assert r.returncode != 0
            assert "is managed by stack 'test', not 'other': nothing was changed" in r.stdout + r.stderr, r.stdout[-2000:]
        pulumi(["destroy", "--yes", "--stack", "other"], root, state)
        after = client.AdmissionregistrationV1Api(own_api).read_validating_admission_policy(
            "yunshang-tenant-governance").metadata
        assert (after.uid, after.labels["platform.yunshang.io/stack"]) == (before.uid, "test")
        client.CoreV1Api(own_api).read_namespace("yunshang-monitoring")
        # control: the first stack itself still previews (its own objects pass the check) and would
        # replace or delete nothing
        pv = changes(pulumi(["preview", "--json", "--stack", "test"], root, state))
        assert not {"create", "delete", "replace", "create-replacement", "delete-replaced"} & set(pv), pv
    finally:
        pulumi(["stack", "rm", "other", "--yes", "--force"], root, state, check=False)
        other.unlink(missing_ok=True)


def test_a_catalog_file_removed_keeps_its_department(project, own_api):
    """A file removed from tenants/ lets go of the Tenant in the state and leaves it in the cluster
    (retainOnDelete): the department, its namespaces and data stay; put back, `up` takes it again (it
    carries this stack's mark, so nothing needs --take-over).  The village clinic: a file whose
    tenant is no other's parent (a parent's file removed is refused: its children name it)."""
    root, state = project
    co = client.CustomObjectsApi(own_api)
    before = co.get_cluster_custom_object(GROUP, VERSION, "tenants", "xzb-nanshan")["metadata"]["uid"]
    f = root / "tenants" / "xzb-nanshan.yaml"
    original = f.read_text()
    f.unlink()
    try:
        up = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)
        # (an earlier test may leave the provider to update, e.g. the context renamed and back)
        assert changes(up).get("delete") == 1 and not {"create", "replace"} & set(changes(up)), changes(up)
        assert co.get_cluster_custom_object(GROUP, VERSION, "tenants", "xzb-nanshan")["metadata"]["uid"] == before
        client.CoreV1Api(own_api).read_namespace("xzb-nanshan-main")
    finally:
        f.write_text(original)
    up = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)
    assert changes(up).get("create") == 1 and not {"delete", "replace"} & set(changes(up)), changes(up)
    assert co.get_cluster_custom_object(GROUP, VERSION, "tenants", "xzb-nanshan")["metadata"]["uid"] == before


def test_reaching_the_cluster_another_way_loses_nothing(project, own_platform, own_api, tmp_path):
    """The data-loss defect: a copied kubeconfig at another path (another $HOME, a CI runner) or
    another context name for the same cluster must never replace or delete anything."""
    from yunshang.models.audit import ObjectRef
    from yunshang.operator.runtime.audit import AuditLog

    root, state = project
    co = client.CustomObjectsApi(own_api)
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    co.create_cluster_custom_object(GROUP, VERSION, "shareagreements", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement", "metadata": {"name": "gy-police.gz-bigdata.api"},
        "spec": {"consumer": "gy-police", "provider": "gz-bigdata", "purpose": "case lookups",
                 "service": {"namespace": "gz-bigdata-exchange", "name": "api", "port": 80}, "expires": expires}})
    log = AuditLog(lambda: own_api)
    for i in range(3):
        log.append("test", "Probe", ObjectRef(kind="Tenant", name="gy-police"), ["gy-police"], {"i": str(i)})
    before = counts(own_api)
    assert before["tenants"] >= 4 and before["shareagreements"] == 1 and before["auditrecords"] >= 3

    copy = tmp_path / "another-home" / ".kube" / "config"
    copy.parent.mkdir(parents=True)
    shutil.copy(own_platform.kubeconfig, copy)
    through_copy = {"YUNSHANG_KUBECONFIG": str(copy)}
    pv = pulumi(["preview", "--json", "--stack", "test"], root, state, env=through_copy)
    assert changes(pv) == {}
    up = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state, env=through_copy)
    assert changes(up) == {}

    # the same cluster under another context name: at most an update of the provider
    kc = yaml.safe_load(copy.read_text())
    kc["contexts"][0]["name"] = "renamed"
    kc["current-context"] = "renamed"
    copy.write_text(yaml.safe_dump(kc))
    pulumi(["config", "set", "yunshang:context", "renamed", "--stack", "test"], root, state)
    try:
        pv = pulumi(["preview", "--json", "--stack", "test"], root, state, env=through_copy)
        assert not {"replace", "delete", "create-replacement", "delete-replaced"} & set(changes(pv)), changes(pv)
        up = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state, env=through_copy)
        assert not {"replace", "delete", "create-replacement", "delete-replaced"} & set(changes(up)), changes(up)
    finally:
        pulumi(["config", "rm", "yunshang:context", "--stack", "test"], root, state)
    after = counts(own_api)  # the operator may have added audit records meanwhile; nothing may be gone
    assert all(after[k] >= before[k] for k in before), (before, after)


def test_destroy_removes_the_platform_and_keeps_crds_and_departments(project, own_api):
    root, state = project
    before = counts(own_api)
    pulumi(["destroy", "--yes", "--stack", "test"], root, state)
    ext = client.ApiextensionsV1Api(own_api)
    # retained: the CRDs (with every Tenant, ShareAgreement and AuditRecord) and the catalog's tenants
    for crd in ("tenants", "shareagreements", "auditrecords"):
        ext.read_custom_resource_definition(f"{crd}.{GROUP}")
    after = counts(own_api)
    assert all(after[k] >= before[k] for k in before), (before, after)
    client.CoreV1Api(own_api).read_namespace("gz-bigdata-exchange")
    # removed: the platform's own namespaces, policies, RBAC
    adm = client.AdmissionregistrationV1Api(own_api)
    with pytest.raises(client.ApiException) as e:
        adm.read_validating_admission_policy("yunshang-tenant-governance")
    assert e.value.status == 404
    wait_for("yunshang-monitoring gone", lambda: _gone(own_api, "yunshang-monitoring"), timeout=60)
    # and `up` takes the retained objects back without a conflict
    up = pulumi(["up", "--yes", "--json", "--stack", "test"], root, state)
    assert up["changeSummary"].get("create")


def _gone(api, ns) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(ns)
    except client.ApiException as e:
        return e.status == 404
    return False


def test_invalid_catalog_file_fails_preview_with_file_and_field(tmp_path, own_platform):
    root = make_project(tmp_path / "yunshang", own_platform.kubeconfig)
    bad = root / "tenants" / "gy-health.yaml"
    bad.write_text(bad.read_text().replace('cpu: "8"', 'cpu: "eight"'))
    state = tmp_path / "state"
    pulumi(["stack", "init", "test"], root, state)
    r = pulumi(["preview", "--stack", "test"], root, state, check=False)
    assert r.returncode != 0
    assert "gy-health.yaml: invalid spec.quota.cpu" in r.stdout + r.stderr
