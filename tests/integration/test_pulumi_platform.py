"""The platform program through the real Pulumi engine on the tests' own control plane:
up creates everything, a second up changes nothing, a catalog edit previews as exactly that
change, destroy removes it all.  State and config live in a temp dir, never in your stacks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from helpers import wait_for

pytestmark = pytest.mark.pulumi
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    """A control plane of this module's own: `destroy` removes the CRDs and policies the other
    tests rely on.  The operator starts before Pulumi installs its CRD and picks it up."""
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


@pytest.fixture
def project(tmp_path, own_platform):
    platform = own_platform
    root = tmp_path / "project"
    (root / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(ROOT / "tenants", root / "tenants")
    shutil.copytree(ROOT / "infra", root / "infra")
    cfg = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    cfg["config"]["yunshang:kubeconfig"] = str(platform.kubeconfig)
    (root / "stacks" / "Pulumi.test.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _stack(project, tmp_path):
    from yunshang.infra import automation

    return automation.stack("test", root=project, state=tmp_path / "pulumi")


def test_up_noop_preview_destroy(project, tmp_path, own_api):
    kube_api = own_api
    stack = _stack(project, tmp_path)
    up = stack.up()
    from yunshang import platform as plat, policies
    from yunshang.infra import components
    from yunshang.infra.config import StackConfig

    objects = (len(plat.system_namespaces()) + len(plat.crds()) + len(policies.rbac()) + len(policies.admission_policy()) + len(policies.agreement_policy()) + len(policies.audit_policy())
               + len(components.priority_classes()) + len(components.operator_manifests(StackConfig(operator={"mode": "process"})))
               + len(components.monitoring_manifests()) + len(components.demo_manifests())
               + 4)  # the catalog
    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes == {"create": 1 + 8 + objects}  # stack + 8 components + objects
    assert set(up.outputs["tenants"].value) == {"gz-bigdata", "gy-police", "gy-health", "xf-health"}
    co = client.CustomObjectsApi(kube_api)
    t = co.get_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", "xf-health")
    assert t["spec"]["approval"]["by"] == "git:tenants/xf-health.yaml"
    # the operator provisions the catalog (county under city under province)
    wait_for("catalog Ready", lambda: all(
        (co.get_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", n).get("status") or {}).get("phase")
        == "Ready" for n in ("gz-bigdata", "gy-police", "gy-health", "xf-health")), timeout=90)

    again = stack.up()
    assert set(again.summary.resource_changes) == {"same"}

    f = project / "tenants" / "gy-police.yaml"
    f.write_text(f.read_text().replace('cpu: "8"', 'cpu: "10"'))
    pv = stack.preview()
    changes = {k: v for k, v in pv.change_summary.items() if k != "same"}
    assert changes == {"update": 1}

    down = stack.destroy()
    assert down.summary.result == "succeeded"
    # tenants went through the operator's finalizer: Retain kept their namespaces, detached
    ns = client.CoreV1Api(kube_api).read_namespace("gz-bigdata-exchange")
    assert ns.metadata.labels["platform.yunshang.io/retained-from"] == "gz-bigdata"
    ext = client.ApiextensionsV1Api(kube_api)
    with pytest.raises(client.ApiException):
        ext.read_custom_resource_definition("tenants.platform.yunshang.io")


def test_invalid_catalog_file_fails_preview_with_file_and_field(project, tmp_path):
    from pulumi import automation as auto

    bad = project / "tenants" / "gy-health.yaml"
    bad.write_text(bad.read_text().replace('cpu: "8"', 'cpu: "eight"'))
    stack = _stack(project, tmp_path)
    with pytest.raises(auto.errors.CommandError) as e:
        stack.preview()
    assert "gy-health.yaml: invalid spec.quota.cpu" in str(e.value)
