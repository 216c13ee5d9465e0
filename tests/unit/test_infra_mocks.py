"""Fast tests of the Pulumi program with Pulumi's mocks (no engine, no cluster)."""
from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from yunshang.infra.config import ConfigError, parse

ROOT = Path(__file__).resolve().parents[2]


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs}
        return f"{args.name}-id", {**args.inputs, "uid": "mock-uid"}

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def recorder():
    r = Recorder()
    pulumi.runtime.set_mocks(r, project="yunshang", stack="unit", preview=False)
    return r


def manifests(recorder) -> dict[str, dict]:
    return {n: json.loads(r["inputs"]["manifest"]) for n, r in recorder.resources.items() if "manifest" in r["inputs"]}


@pulumi.runtime.test
def run_program(cfg, result):
    """Run the program under mocks; the decorator waits for every registration to finish."""
    from yunshang.infra.program import build

    result.update(build(cfg, ROOT))


def test_local_stack_declares_the_platform_and_catalog(recorder):
    cfg = parse({"kubeconfig": "/tmp/kc", "approveCatalog": True, "operator": {"mode": "process"},
                 "environment": "local"})
    outputs: dict = {}
    run_program(cfg, outputs)
    m = manifests(recorder)
    # stable, readable names
    assert {"namespace-yunshang-system", "namespace-yunshang-monitoring",
            "customresourcedefinition-tenants.platform.yunshang.io", "tenant-gz-bigdata",
            "validatingadmissionpolicy-yunshang-tenant-governance"} <= set(m)
    for name, obj in m.items():
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline", name
    tenants = {n: o for n, o in m.items() if o["kind"] == "Tenant"}
    assert len(tenants) == 4
    assert all(o["spec"]["approval"]["by"].startswith("git:tenants/") for o in tenants.values())
    assert not [o for o in m.values() if o["kind"] == "Deployment"], "process mode: no Deployment"
    components = {r["type"] for r in recorder.resources.values()}
    assert {"yunshang:platform:Namespaces", "yunshang:platform:CRDs", "yunshang:platform:Governance",
            "yunshang:tenants:Catalog", "yunshang:platform:Operator", "yunshang:platform:Monitoring"} <= components
    rules = m["configmap-yunshang-monitoring-yunshang-prometheus-rules"]["data"]
    assert "YunshangTenantProbing" in rules["yunshang.rules.yml"]
    assert m["configmap-yunshang-monitoring-yunshang-dashboards"]["metadata"]["labels"]["grafana_dashboard"] == "1"

    assert outputs["tenants"] == ["gy-health", "gy-police", "gz-bigdata", "xf-health"]


def test_prod_stack_deploys_a_restricted_operator_and_leaves_approval_to_the_bureau(recorder):
    cfg = parse({"operator": {"mode": "deployment", "image": "reg/op:1", "replicas": 3}})
    run_program(cfg, {})
    m = manifests(recorder)
    dep = m["deployment-yunshang-system-yunshang-operator"]
    assert dep["spec"]["replicas"] == 3
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "reg/op:1" and "--peering" in c["args"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert all("approval" not in o["spec"] for o in m.values() if o["kind"] == "Tenant")


@pytest.mark.parametrize("raw, message", [
    ({"operator": {"replicas": 0}}, "config yunshang:operator.replicas: Input should be greater than or equal to 1"),
    ({"operator": {"mode": "helm"}}, "config yunshang:operator.mode:"),
    ({"approveCatalog": "maybe"}, "config yunshang:approveCatalog:"),
    ({"kubeconfg": "/x"}, "config yunshang:kubeconfg is not a setting"),
    ({"environment": "staging"}, "config yunshang:environment:"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        parse(raw)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_invalid_catalog_names_file_and_field(tmp_path):
    from yunshang.catalog import CatalogError, load

    (tmp_path / "a.yaml").write_text((ROOT / "tenants" / "gz-bigdata.yaml").read_text().replace("level: province", "level: planet"))
    with pytest.raises(CatalogError) as e:
        load(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'a.yaml'}: invalid spec.level")


def test_catalog_parent_must_be_in_catalog(tmp_path):
    from yunshang.catalog import CatalogError, load

    (tmp_path / "c.yaml").write_text((ROOT / "tenants" / "gy-police.yaml").read_text())
    with pytest.raises(CatalogError, match="spec.parent 'gz-bigdata' is not in the catalog"):
        load(tmp_path)


def test_stack_files_parse():
    import yaml

    for f in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        raw = {k.split(":", 1)[1]: v for k, v in yaml.safe_load(f.read_text())["config"].items()}
        parse(raw)
