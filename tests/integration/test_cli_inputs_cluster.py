"""Inputs people get wrong, against the real API server: one table of who runs what -> exit code,
the words its one line must hold, and what must not exist afterwards (read through the admin
client).  Every case of the tester's issue is here, beside those that need the cluster to know (a
parent of the wrong level, a provider, consumer, namespace, Service or port that does not exist, a
namespace that is not the provider's by record), and one control per kind of object that is
created, so that an object's absence means the check refused it.  Each row fails if its check is
taken out: the object would be created, or the API server would refuse it in other words.

The agreements are requested by an identity that may read the provider's namespaces and Services
(system:masters, in the consumer's department so that the consent policy lets it apply): a
department alone may not read another's (need-to-know), so for it the CLI checks only what it may
see and the operator refuses an agreement for a Service that does not exist.  The offers are
published by the provider's owner, who may read its own Services.  The cases that need no cluster
are in tests/unit/test_cli_inputs.py (this file has another name: two test modules of one
basename cannot be collected together without packages)."""
from __future__ import annotations

import re
import uuid

import pytest
from kubernetes import client

from factories import dept_groups, reviewer_groups, tenant
from helpers import ready_tenant
from yunshang.cli import app
from yunshang.cli.common import run_app
from yunshang.models.tenant import ADMIN_GROUP, DEPARTMENTS_GROUP, GROUP, VERSION, dept_group

CLASS_NAMES = re.compile(r"\b(\w+(Error|Exception)|BadParameter|NoSuchOption|UsageError|MissingParameter|Traceback)\b")
T = ["--department-code", "520000-T", "--department-name", "测试局", "--owner", "li.wei", "--purpose", "testing",
     "--project", "T-1", "--cpu", "1", "--memory", "1Gi", "--pods", "4"]


def agreement(n, **over):
    """share request for the provider's Service api:80, by the consumer, named {Q}.{P}.r<n>."""
    args = {"--consumer": "{Q}", "--provider": "{P}", "--namespace": "{P}-main", "--service": "api", "--port": "80",
            "--purpose": "case lookups", "--days": "30", "--name": f"{{Q}}.{{P}}.r{n}", **over}
    return ["share", "request", *[x for kv in args.items() if kv[1] is not None for x in kv]]


def offer(n, **over):
    args = {"--provider": "{P}", "--namespace": "{P}-main", "--service": "api", "--port": "80", "--title": "人口查询",
            "--classification": "internal", "--max-days": "30", **over}
    return ["share", "offer", f"{{P}}.o{n}", *[x for kv in args.items() for x in kv]]


# id, who, argv, exit code, words, what must not exist afterwards ((plural, name) or ("quota", tenant, field, amount))
CASES = [
    # --- the issue: accepted, and the object created
    ("city-under-a-county", "bureau", ["tenant", "request", "{new}", *T, "--level", "city", "--parent", "{K}"], 1,
     ["--parent '{K}': is a county tenant", "a city tenant's parent is a province tenant"], ("tenants", "{new}")),
    ("expires-in-the-past", "consumer", agreement(1, **{"--days": None, "--expires": "2020-01-01"}), 2,
     ["--expires 2020-01-01:", "not in the future"], ("shareagreements", "{Q}.{P}.r1")),
    ("provider-missing", "consumer", agreement(2, **{"--provider": "{P}x"}), 1,
     ["--provider '{P}x': no such tenant"], ("shareagreements", "{Q}.{P}.r2")),
    ("provider-missing-own-namespace", "consumer", agreement(3, **{"--provider": "{P}x", "--namespace": "{P}x-main"}),
     1, ["--provider '{P}x': no such tenant"], ("shareagreements", "{Q}.{P}.r3")),
    ("namespace-missing", "consumer", agreement(4, **{"--namespace": "{P}-nope"}), 1,
     ["--namespace '{P}-nope': no such namespace", "{P}-data, {P}-main"], ("shareagreements", "{Q}.{P}.r4")),
    ("service-missing", "consumer", agreement(5, **{"--service": "nope"}), 1,
     ["--service 'nope': no Service of that name in {P}-main", "api, db"], ("shareagreements", "{Q}.{P}.r5")),
    ("port-missing", "consumer", agreement(6, **{"--port": "8080"}), 1,
     ["--port 8080: Service {P}-main/api has no TCP port 8080", "80"], ("shareagreements", "{Q}.{P}.r6")),
    ("cpu-zero", "bureau", ["tenant", "request", "{new}", *T, "--level", "province", "--cpu", "0"], 2,
     ["--cpu 0: must be more than 0"], ("tenants", "{new}")),
    ("expires-beyond-366-days", "consumer", agreement(7, **{"--days": None, "--expires": "2030-01-01"}), 2,
     ["--expires 2030-01-01:", "at most 366 days"], ("shareagreements", "{Q}.{P}.r7")),
    ("expires-with-days", "consumer", agreement(8, **{"--expires": "2027-01-01"}), 2,
     ["--expires and --days exclude each other"], ("shareagreements", "{Q}.{P}.r8")),
    ("audit-limit-negative", "bureau", ["audit", "--limit", "-5"], 2, ["--limit -5: must be at least 0"], None),
    # --- the issue: messages without the option, the value or with Python class names
    ("pods-not-a-number", "bureau", ["tenant", "request", "{new}", *T, "--level", "province", "--pods", "ten"], 2,
     ["--pods 'ten': must be a whole number"], ("tenants", "{new}")),
    ("port-not-a-number", "consumer", agreement(9, **{"--port": "http"}), 2, ["--port 'http': must be a whole number"],
     ("shareagreements", "{Q}.{P}.r9")),
    ("score-over-5", "consumer", ["share", "rate", "{Q}.{P}.r0", "--score", "9"], 2, ["--score 9: must be at most 5"],
     None),
    ("tenant-file-gbk", "bureau", ["tenant", "request", "-f", "{tmp}/gbk.yaml"], 1,
     ["{tmp}/gbk.yaml is not UTF-8 (byte 0x", "save it as UTF-8"], ("tenants", "{P}g")),
    ("kubeconfig-pem", "{tmp}/ca.pem", ["tenant", "list"], 1,
     ["--kubeconfig {tmp}/ca.pem: not a kubeconfig (no clusters/contexts)"], None),
    ("unknown-option", "bureau", ["tenant", "request", "{new}", *T, "--level", "province", "--bogus"], 2,
     ["no such option --bogus"], ("tenants", "{new}")),
    ("missing-argument", "bureau", ["tenant", "show"], 2, ["missing argument NAME"], None),
    # --- the issue: misleading
    ("name-leading-dash", "bureau", ["tenant", "request", *T, "--level", "province", "--", "-{new}"], 2,
     ["tenant name '-{new}' starts with '-'"], ("tenants", "-{new}")),
    ("kubeconfig-missing", "{tmp}/nowhere", ["tenant", "list"], 1, ["--kubeconfig {tmp}/nowhere: no such file"], None),
    ("catalog-classification-unknown", "consumer", ["share", "catalog", "--classification", "topsecret"], 2,
     ["--classification 'topsecret': must be one of public, internal, sensitive, secret"], None),
    # --- more: the hierarchy, the quota, the namespace by record, offers
    ("county-under-a-province", "bureau", ["tenant", "request", "{new}", *T, "--level", "county", "--parent", "{P}"],
     1, ["--parent '{P}': is a province tenant", "a county tenant's parent is a city tenant"], ("tenants", "{new}")),
    ("city-under-a-city", "bureau", ["tenant", "request", "{new}", *T, "--level", "city", "--parent", "{C}"], 1,
     ["--parent '{C}': is a city tenant", "under a city: a county tenant"], ("tenants", "{new}")),
    ("parent-missing", "bureau", ["tenant", "request", "{new}", *T, "--level", "city", "--parent", "{P}-none"], 1,
     ["--parent '{P}-none': no such tenant"], ("tenants", "{new}")),
    ("parent-of-a-province", "bureau", ["tenant", "request", "{new}", *T, "--level", "province", "--parent", "{P}"], 2,
     ["--parent '{P}': a province tenant has no parent"], ("tenants", "{new}")),
    ("namespace-twice", "bureau", ["tenant", "request", "{new}", *T, "--level", "province", "--namespace", "a",
                                   "--namespace", "a"], 2, ["--namespace 'a' is given twice"], ("tenants", "{new}")),
    ("tenant-file-list", "bureau", ["tenant", "request", "-f", "{tmp}/list.yaml"], 1, ["holds a list of 2"],
     ("tenants", "{P}l")),
    ("tenant-file-kind", "bureau", ["tenant", "request", "-f", "{tmp}/namespace.yaml"], 1, ["kind 'Namespace'"],
     ("tenants", "{P}n")),
    ("quota-pods-per-namespace", "bureau", ["tenant", "quota", "{P}", "--pods", "1"], 1,
     ["--pods 1: split evenly over 2 namespaces", "at least 2"], ("quota", "{P}", "pods", 40)),
    ("quota-cpu-zero", "bureau", ["tenant", "quota", "{P}", "--cpu", "0"], 2, ["--cpu 0: must be more than 0"],
     ("quota", "{P}", "cpu", "8")),
    ("consumer-missing", "consumer", agreement(10, **{"--consumer": "{Q}x"}), 1, ["--consumer '{Q}x': no such tenant"],
     ("shareagreements", "{Q}.{P}.r10")),
    ("namespace-not-the-providers-by-record", "consumer", agreement(11, **{"--namespace": "{P}-hand"}), 1,
     ["--namespace '{P}-hand': is no tenant's", "not provider {P}'s"], ("shareagreements", "{Q}.{P}.r11")),
    ("namespace-of-another-tenant", "consumer", agreement(12, **{"--namespace": "{Q}-main"}), 2,
     ["--namespace '{Q}-main': is not one of provider {P}'s namespaces"], ("shareagreements", "{Q}.{P}.r12")),
    ("consumer-is-provider", "consumer", agreement(13, **{"--consumer": "{P}"}), 2,
     ["--provider '{P}': is the consumer too"], ("shareagreements", "{P}.{P}.r13")),
    ("purpose-empty", "consumer", agreement(14, **{"--purpose": ""}), 2, ["--purpose '': must not be empty"],
     ("shareagreements", "{Q}.{P}.r14")),
    ("offer-service-missing", "owner", offer(1, **{"--service": "nope"}), 1,
     ["--service 'nope': no Service of that name in {P}-main"], ("shareoffers", "{P}.o1")),
    ("offer-port-missing", "owner", offer(2, **{"--port": "443"}), 1,
     ["--port 443: Service {P}-main/api has no TCP port 443"], ("shareoffers", "{P}.o2")),
    ("offer-port-zero", "owner", offer(3, **{"--port": "0"}), 2, ["--port 0: must be at least 1"],
     ("shareoffers", "{P}.o3")),
    ("offer-max-days-over", "owner", offer(4, **{"--max-days": "400"}), 2, ["--max-days 400: must be at most 366"],
     ("shareoffers", "{P}.o4")),
]

# the same commands, right: what they create exists (so the absences above are the checks' doing)
CONTROLS = [
    ("tenant-city-under-its-province", "bureau",
     ["tenant", "request", "{new}", *T, "--level", "city", "--parent", "{P}"], ("tenants", "{new}")),
    ("agreement-for-a-service-port", "consumer", agreement(0), ("shareagreements", "{Q}.{P}.r0")),
    ("offer-of-a-service-port", "owner", offer(0), ("shareoffers", "{P}.o0")),
]


@pytest.fixture(scope="module")
def world(platform, operator, kube_api, tmp_path_factory):
    """Province P (Ready: namespaces main and data, Services api:80 and db:5432 in main), city C under
    it and county K under C (requested), consumer Q, and a namespace {P}-hand made by hand (no tenant's)."""
    co, core = client.CustomObjectsApi(kube_api), client.CoreV1Api(kube_api)
    hexa = uuid.uuid4().hex[:5]
    P, C, K, Q = f"ip{hexa}", f"ic{hexa}", f"ik{hexa}", f"iq{hexa}"
    ready_tenant(co, P, namespaces=["main", "data"], quota={  # room for a city with the defaults
        "cpu": "8", "memory": "16Gi", "storage": "100Gi", "pods": 40, "services": 10, "configmaps": 200,
        "secrets": 200, "persistentvolumeclaims": 10})
    for name, changes in ((C, {"level": "city", "parent": P}), (K, {"level": "county", "parent": C}), (Q, {})):
        body = tenant(name, **changes)
        body["spec"]["quota"] = {"cpu": "1", "memory": "1Gi", "pods": 4}
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
    for svc, port in (("api", 80), ("db", 5432)):
        core.create_namespaced_service(f"{P}-main", {"metadata": {"name": svc}, "spec": {
            "selector": {"app": svc}, "ports": [{"port": port, "targetPort": port}]}})
    core.create_namespace({"metadata": {"name": f"{P}-hand"}})
    tmp = tmp_path_factory.mktemp("inputs")
    (tmp / "gbk.yaml").write_bytes(f"# 贵州省卫生健康委员会\nkind: Tenant\nmetadata: {{name: {P}g}}\n".encode("gbk"))
    (tmp / "list.yaml").write_text(f"- {{kind: Tenant, metadata: {{name: {P}l}}}}\n- {{kind: Tenant}}\n")
    (tmp / "namespace.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {P}n}}\n")
    (tmp / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n")
    who = {
        "bureau": platform.identity_kubeconfig("bureau.chen", [ADMIN_GROUP, *reviewer_groups()]),
        # may read every namespace and Service, and is in the consumer's department (the consent policy)
        "consumer": platform.identity_kubeconfig("ops.wang", ["system:masters", DEPARTMENTS_GROUP, dept_group(Q)]),
        # the provider's owner (spec.owners: li.wei): reads its own Services
        "owner": platform.identity_kubeconfig("li.wei", dept_groups(P)),
    }
    yield {"P": P, "C": C, "K": K, "Q": Q, "tmp": str(tmp), "who": who, "co": co}
    gone = [(plural, item["metadata"]["name"]) for plural in ("shareoffers", "shareagreements", "tenants")
            for item in co.list_cluster_custom_object(GROUP, VERSION, plural)["items"] if hexa in item["metadata"]["name"]]
    for plural, name in gone:
        try:
            co.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except client.ApiException:
            pass  # e.g. already on its way out
    core.delete_namespace(f"{P}-hand")


def run(world, capsys, monkeypatch, who, argv):
    fill = {k: v for k, v in world.items() if isinstance(v, str)}
    # a name of this case's own: a hash of the argv modulo 1000 once gave two cases the same name,
    # and "nothing was created" then saw the other case's tenant
    fill["new"] = f"{world['P']}n{uuid.uuid4().hex[:6]}"
    argv = [a.format(**fill) for a in argv]
    kubeconfig = str(world["who"].get(who) or who.format(**fill))
    monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", kubeconfig, *argv])
    capsys.readouterr()
    code = run_app(app)
    out, err = capsys.readouterr()
    return code, out, err, fill


def exists(world, what, fill) -> bool | object:
    co = world["co"]
    if what[0] == "quota":
        _, name, field, _ = what
        return co.get_cluster_custom_object(GROUP, VERSION, "tenants", name.format(**fill))["spec"]["quota"][field]
    plural, name = what
    try:
        co.get_cluster_custom_object(GROUP, VERSION, plural, name.format(**fill))
        return True
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise


@pytest.mark.parametrize("who,argv,code,words,absent", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_input_is_named_in_one_line_and_nothing_is_written(world, capsys, monkeypatch, who, argv, code, words,
                                                                  absent):
    got, _, err, fill = run(world, capsys, monkeypatch, who, argv)
    assert got == code, err
    for w in words:
        assert w.format(**fill) in err, f"{w.format(**fill)!r} not in {err!r}"
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not CLASS_NAMES.search(err), err
    if absent and absent[0] == "quota":
        assert str(exists(world, absent, fill)) == str(absent[3]), "the quota changed"
    elif absent:
        assert exists(world, absent, fill) is False, f"{absent[0]} {absent[1].format(**fill)} was created"


@pytest.mark.parametrize("who,argv,created", [c[1:] for c in CONTROLS], ids=[c[0] for c in CONTROLS])
def test_the_same_commands_right_are_admitted(world, capsys, monkeypatch, who, argv, created):
    got, _, err, fill = run(world, capsys, monkeypatch, who, argv)
    assert got == 0, err
    assert exists(world, created, fill) is True
