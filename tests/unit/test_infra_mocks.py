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
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs, "provider": args.provider}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def recorder():
    r = Recorder()
    pulumi.runtime.set_mocks(r, project="yunshang", stack="unit", preview=False)
    return r


def manifests(recorder) -> dict[str, dict]:
    """The Kubernetes objects declared (pulumi-kubernetes resources take the manifest's fields)."""
    return {n: r["inputs"] for n, r in recorder.resources.items() if r["type"].startswith("kubernetes:")}


@pulumi.runtime.test
def run_program(cfg, result):
    """Run the program under mocks; the decorator waits for every registration to finish."""
    from yunshang.infra.program import build

    result.update(build(cfg, ROOT))


def test_local_stack_declares_the_platform_and_catalog(recorder, tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cfg = parse({"kubeconfig": str(kubeconfig), "approveCatalog": True, "operator": {"mode": "process"},
                 "environment": "local", "cluster": "local"})
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
    assert len(tenants) == 6
    assert all(o["spec"]["approval"]["by"].startswith("git:tenants/") for o in tenants.values())
    assert not [o for o in m.values() if o["kind"] == "Deployment"], "process mode: no Deployment"
    components = {r["type"] for r in recorder.resources.values()}
    assert {"yunshang:platform:Namespaces", "yunshang:platform:CRDs", "yunshang:platform:Governance",
            "yunshang:tenants:Catalog", "yunshang:platform:Operator", "yunshang:platform:Monitoring"} <= components
    rules = m["configmap-yunshang-monitoring-yunshang-prometheus-rules"]["data"]
    assert "YunshangTenantProbing" in rules["yunshang.rules.yml"]
    assert m["configmap-yunshang-monitoring-yunshang-dashboards"]["metadata"]["labels"]["grafana_dashboard"] == "1"

    assert outputs["tenants"] == ["gy-health", "gy-police", "gz-bigdata", "xf-health", "xzb-health", "xzb-nanshan"]
    # typed resources of pulumi-kubernetes, every one through the stack's one explicit provider
    types = {n: r["type"] for n, r in recorder.resources.items()}
    assert types["namespace-yunshang-system"] == "kubernetes:core/v1:Namespace"
    assert types["customresourcedefinition-tenants.platform.yunshang.io"] == \
        "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
    assert types["validatingadmissionpolicy-yunshang-tenant-governance"] == \
        "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
    assert types["tenant-gz-bigdata"] == "kubernetes:platform.yunshang.io/v1alpha1:Tenant"
    providers = [r for r in recorder.resources.values() if r["type"] == "pulumi:providers:kubernetes"]
    assert len(providers) == 1
    assert providers[0]["inputs"]["clusterIdentifier"] == "local"
    assert all("pulumi:providers:kubernetes::kubernetes::" in r["provider"]
               for r in recorder.resources.values() if r["type"].startswith("kubernetes:"))
    # the catalog's approved tenants are awaited until the operator made them Ready
    assert tenants["tenant-gz-bigdata"]["metadata"]["annotations"]["pulumi.com/waitFor"] == \
        "jsonpath={.status.phase}=Ready"


def test_prod_stack_deploys_a_restricted_operator_and_leaves_approval_to_the_bureau(recorder):
    cfg = parse({"operator": {"mode": "deployment", "image": "reg/op:1", "replicas": 3},  # default kubeconfig
                 "alerting": {"ops": [{"name": "platform-oncall", "url": "https://im.gz.gov.local/hooks/oncall"}]}})
    run_program(cfg, {})
    m = manifests(recorder)
    dep = m["deployment-yunshang-system-yunshang-operator"]
    assert dep["spec"]["replicas"] == 3
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "reg/op:1" and c["args"][c["args"].index("--lease") + 1] == "yunshang-operator"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["imagePullPolicy"] == "IfNotPresent"  # placed by the scheduler wherever it fits, unasked
    assert "nodeSelector" not in dep["spec"]["template"]["spec"] and "tolerations" not in dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # its identity in the Lease
    assert env["YUNSHANG_ALERTMANAGER_SECRET"] == "yunshang-monitoring/yunshang-alertmanager"
    assert env["YUNSHANG_AUDIT_ANCHOR"] == "yunshang-system/yunshang-audit-anchor"
    # the alerting base the operator mounts: the ops team from stack config
    base = m["configmap-yunshang-system-yunshang-alerting"]["data"]["base.json"]
    assert "platform-oncall" in base
    # what tenants may use and the platform's own objects are enforced by the API server
    assert "validatingadmissionpolicy-yunshang-tenant-controls" in m
    assert "validatingadmissionpolicy-yunshang-platform-objects" in m
    assert all("approval" not in o["spec"] for o in m.values() if o["kind"] == "Tenant")
    # not approved by the catalog: nothing waits for the bureau
    assert all("pulumi.com/waitFor" not in o["metadata"]["annotations"] for o in m.values() if o["kind"] == "Tenant")


def test_the_operator_can_be_placed_on_chosen_nodes_with_an_image_the_nodes_already_hold(recorder):
    """What the local real node needs (its image imported, its taint) and a province's system nodes use."""
    toleration = {"key": "platform.yunshang.io/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    cfg = parse({"operator": {"mode": "deployment", "image": "yunshang.local/operator:0.1.0", "imagePullPolicy": "Never",
                              "nodeSelector": {"platform.yunshang.io/real-node": "true"}, "tolerations": [toleration]}})
    run_program(cfg, {})
    pod = manifests(recorder)["deployment-yunshang-system-yunshang-operator"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["nodeSelector"] == {"platform.yunshang.io/real-node": "true"} and pod["tolerations"] == [toleration]


def test_a_kubeconfig_that_is_not_there_is_one_line(recorder, tmp_path):
    with pytest.raises(pulumi.RunError, match=r"^config yunshang:kubeconfig: .*/nope does not exist; start"):
        run_program(parse({"kubeconfig": str(tmp_path / "nope")}), {})


@pytest.mark.parametrize("raw, message", [
    ({"operator": {"replicas": 0}}, "config yunshang:operator.replicas: Input should be greater than or equal to 1"),
    ({"operator": {"mode": "helm"}}, "config yunshang:operator.mode:"),
    ({"operator": {"imagePullPolicy": "Sometimes"}}, "config yunshang:operator.imagePullPolicy:"),
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


def _as_read(raw, typed) -> list[str]:
    """Where the typed settings differ from what the stack file says (nested keys as written;
    "true"/"false" and numbers compared as the values they stand for)."""
    if isinstance(raw, dict):
        if not isinstance(typed, dict):
            return [f": {raw!r} read as {typed!r}"]
        return [f".{k}{d}" for k, v in raw.items()
                for d in (_as_read(v, typed[k]) if k in typed else [f": {v!r} was dropped"])]
    if isinstance(raw, list):
        if not isinstance(typed, list) or len(raw) != len(typed):
            return [f": {raw!r} read as {typed!r}"]
        return [f"[{i}]{d}" for i, (r, t) in enumerate(zip(raw, typed)) for d in _as_read(r, t)]
    if isinstance(typed, bool):
        same = str(raw).lower() == str(typed).lower()
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        same = float(raw) == float(typed)
    else:
        same = raw == typed
    return [] if same else [f": {raw!r} read as {typed!r}"]


def test_stack_files_parse_to_what_they_say():
    import yaml

    from yunshang.infra.config import KEYS, NAMESPACE, from_stack_file

    stacks = {f.name.split(".")[1]: f for f in (ROOT / "stacks").glob("Pulumi.*.yaml")}
    assert set(stacks) == {"local", "prod"}
    typed = {}
    for stack, f in stacks.items():
        raw = yaml.safe_load(f.read_text())["config"]
        # every key is the program's (a key in another namespace would be ignored, silently)
        assert all(k.startswith(f"{NAMESPACE}:") for k in raw), f"{f.name}: {sorted(raw)}"
        cfg = typed[stack] = from_stack_file(stack, ROOT)  # what `yunshang report` and `dev` read
        dumped = cfg.model_dump(mode="json", by_alias=True)
        # every setting the file makes arrives as written (none dropped, defaulted or misread)
        wrong = [f"{k}{d}" for k, v in raw.items() for d in _as_read(v, dumped[KEYS[k.split(":", 1)[1]]])]
        assert not wrong, f"{f.name}: {wrong}"
    local, prod = typed["local"], typed["prod"]
    assert (local.environment, local.operator.mode.value, local.approve_catalog) == ("local", "process", True)
    assert (prod.environment, prod.operator.mode.value, prod.approve_catalog) == ("production", "deployment", False)
    # a real cluster runs the image that was built and pushed, by name, not the placeholder default
    assert prod.operator.image == "registry.gz.gov.local/yunshang/operator:0.1.0" and prod.operator.replicas == 2
    assert prod.context == "gov-cloud-prod" and [c.name for c in prod.alerting.ops] == ["platform-oncall"]


def test_monitoring_deployed_by_the_program_scrapes_every_replica_and_routes_to_the_leaders_webhook(recorder):
    """monitoring.mode deploy: Prometheus (rules from the ConfigMap, the operator's pods, the kubelets,
    alerts to Alertmanager's Service), Alertmanager on the Secret the operator keeps, and the operator's
    webhooks behind a Service without a selector (the leader keeps its EndpointSlice)."""
    import yaml as _yaml

    cfg = parse({"operator": {"mode": "deployment", "image": "reg/op:1", "webhookSecret": "op-webhook"},
                 "monitoring": {"mode": "deploy", "prometheusImage": "reg/prom:2", "alertmanagerImage": "reg/am:0",
                                "scrapeInterval": "5s"}})
    run_program(cfg, {})
    m = manifests(recorder)
    prom = _yaml.safe_load(m["configmap-yunshang-monitoring-yunshang-prometheus-config"]["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert {"yunshang-operator", "kubelet-resource", "kubelet-cadvisor", "kube-apiserver"} <= set(jobs)
    # Debian's Prometheus has no Kubernetes discovery: the replicas by DNS, the kubelets from the operator
    assert jobs["yunshang-operator"]["dns_sd_configs"][0]["names"] == ["yunshang-operator-metrics.yunshang-system.svc"]
    assert jobs["kubelet-cadvisor"]["http_sd_configs"][0]["url"] == \
        "http://yunshang-operator-metrics.yunshang-system.svc:8080/sd/kubelets"
    assert m["service-yunshang-system-yunshang-operator-metrics"]["spec"]["clusterIP"] == "None"
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"] and prom["global"]["scrape_interval"] == "5s"
    pod = m["deployment-yunshang-monitoring-yunshang-prometheus"]["spec"]["template"]["spec"]
    assert {v["name"]: v.get("configMap", {}).get("name") for v in pod["volumes"]}["rules"] == "yunshang-prometheus-rules"
    assert pod["containers"][0]["image"] == "reg/prom:2" and pod["serviceAccountName"] == "yunshang-prometheus"
    am = m["deployment-yunshang-monitoring-yunshang-alertmanager"]["spec"]["template"]["spec"]
    assert {v["name"]: v.get("secret", {}).get("secretName") for v in am["volumes"]} == {
        "config": "yunshang-alertmanager", "data": None, "operator-webhook": "op-webhook"}
    svc = m["service-yunshang-system-yunshang-operator-webhook"]
    assert "selector" not in svc["spec"] and svc["spec"]["ports"][0]["port"] == 8443
    c = m["deployment-yunshang-system-yunshang-operator"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["YUNSHANG_ALERTMANAGER_URL"] == "http://yunshang-alertmanager.yunshang-monitoring.svc:9093"
    assert env["YUNSHANG_WEBHOOK_SERVICE"] == "yunshang-system/yunshang-operator-webhook"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    base = json.loads(m["configmap-yunshang-system-yunshang-alerting"]["data"]["base.json"])
    assert base["operator"]["url"] == "https://yunshang-operator-webhook.yunshang-system.svc:8443/alerts"


def test_external_monitoring_deploys_no_prometheus(recorder):
    run_program(parse({"operator": {"mode": "deployment", "image": "reg/op:1"}}), {})
    m = manifests(recorder)
    assert not [k for k in m if "yunshang-prometheus-config" in k or k.startswith("deployment-yunshang-monitoring")]
    assert "configmap-yunshang-monitoring-yunshang-prometheus-rules" in m  # for the cluster's own Prometheus
    assert "operator" not in json.loads(m["configmap-yunshang-system-yunshang-alerting"]["data"]["base.json"])
