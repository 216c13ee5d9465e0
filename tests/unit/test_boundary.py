"""The tenant boundary's pure parts (issue 18): names that can never collide, reserved names,
hostnames held by one tenant, sharing by the namespace's record, probing blamed on the prober,
and the reconciler holding a tenant whose namespace is another's (against a fake API)."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, strategies as st

from factories import request, signed, tenant
from test_reconciler import FakeKube, body
from yunshang import sharing, tenancy
from yunshang.models.agreement import AgreementSpec, provider_namespace_problem
from yunshang.models.tenant import (
    SUFFIX, TenantRequest, TenantSpec, check_tenant_name, namespace_names, reserved_problem, suffix_problem)
from yunshang.operator import webhooks
from yunshang.operator.tenants.reconciler import Reconciler
from yunshang.operator.runtime.settings import Settings

def _run(coro):
    """Run on a loop of its own (asyncio.run would leave the thread without one for later modules)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
suffix = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)


@given(t1=label, s1=suffix, t2=label, s2=suffix)
def test_two_tenants_never_name_the_same_namespace(t1, s1, t2, s2):
    """By construction: a suffix has no '-', so <tenant>-<suffix> splits one way only."""
    assert (f"{t1}-{s1}" == f"{t2}-{s2}") == ((t1, s1) == (t2, s2))


def test_the_collision_of_the_issue_is_refused_in_one_line():
    req = TenantRequest.model_validate(request(namespaces=["w-main"]))
    with pytest.raises(ValueError) as e:
        check_tenant_name("xq", req)
    assert str(e.value) == ("tenant xq: namespace suffix 'w-main' may contain only lower-case letters and digits: "
                            "xq-w-main could be tenant xq-w's namespace 'main'; use e.g. 'wmain'")
    assert check_tenant_name("xq", TenantRequest.model_validate(request(namespaces=["wmain"]))) == "xq"


@pytest.mark.parametrize("name", ["kube", "kube-node", "kube-system", "yunshang", "yunshang-monitoring", "default",
                                  "system", "openshift", "openshift-infra"])
def test_reserved_names(name):
    assert reserved_problem(name) and "reserved" in reserved_problem(name)


@pytest.mark.parametrize("name", ["kubex", "kubernetesx", "yunshangx", "defaults", "gz-kube"])
def test_names_that_only_look_reserved_are_free(name):
    assert reserved_problem(name) is None


def test_provider_namespace_by_name_shape():
    assert provider_namespace_problem("x", "x-main") is None
    assert "not one of provider x's namespaces" in provider_namespace_problem("x", "x-b-main")
    assert provider_namespace_problem("gy", "gy-police-cases") is not None  # the catalogue's gy and gy-police
    assert provider_namespace_problem("gy-police", "gy-police-cases") is None


def _agreement(provider="xa", ns="xa-main"):
    return AgreementSpec.model_validate({"consumer": "c1", "provider": provider, "purpose": "p",
                                         "expires": "2030-01-01T00:00:00Z",
                                         "service": {"namespace": ns, "name": "api", "port": 80}})


def test_sharing_opens_only_where_the_record_says_the_provider_owns_the_namespace():
    owners = {"xa-main": "xa", "xa-other": "yb"}
    assert sharing.ownership_problem(_agreement(), owners.get) is None
    assert sharing.ownership_problem(_agreement(ns="xa-other"), owners.get) == (
        "namespace xa-other belongs to tenant yb, not to provider xa: nothing was opened")
    assert "belongs to no tenant" in sharing.ownership_problem(_agreement(ns="xa-gone"), owners.get)


def _spec(**allowed):
    return TenantSpec.model_validate(request(allowed=allowed))


SUFFIXES = ["apps.gz.gov.local"]


def test_hostnames_under_the_platform_suffix_are_each_tenants_own():
    none = {}
    assert tenancy.hostname_problem("a", _spec(hostnames=["a.apps.gz.gov.local", "*.a.apps.gz.gov.local"]), none,
                                    lambda o: True, SUFFIXES) is None
    for host in ("b.apps.gz.gov.local", "*.apps.gz.gov.local", "x.b.apps.gz.gov.local", "*.b.apps.gz.gov.local"):
        problem = tenancy.hostname_problem("a", _spec(hostnames=[host]), none, lambda o: True, SUFFIXES)
        assert problem and "under the platform's suffix" in problem, host


def test_overlapping_hostnames_stay_with_the_older_tenant():
    first = {"first": _spec(hostnames=["portal.gz.gov.cn"])}
    for host in ("portal.gz.gov.cn", "*.gz.gov.cn"):
        assert "allowed to tenant first first" in tenancy.hostname_problem(
            "second", _spec(hostnames=[host]), first, lambda o: True, SUFFIXES)
        assert tenancy.hostname_problem("second", _spec(hostnames=[host]), first, lambda o: False, SUFFIXES) is None
    assert tenancy.hostname_problem("second", _spec(hostnames=["www.gz.gov.cn"]), first, lambda o: True, SUFFIXES) is None


def _event(verb="create", code=403, groups=(), user="u", message=" is forbidden: User \"u\" cannot", ns="victim-main"):
    return webhooks.AuditEvent.model_validate({
        "stage": "ResponseComplete", "verb": verb, "user": {"username": "admin", "groups": ["system:masters"]},
        "impersonatedUser": {"username": user, "groups": list(groups)}, "objectRef": {"namespace": ns},
        "responseStatus": {"code": code, "message": message}, "annotations": {}})


def test_a_refusal_is_blamed_on_the_prober_never_on_the_namespace_it_aimed_at():
    owned = lambda user, groups: ["owned-by-name"] if user == "li.wei" else []  # noqa: E731
    ev = _event(groups=["yunshang:departments", "yunshang:dept:attacker"])
    assert webhooks.tenants_of(ev, owned, "yunshang:dept:") == ["attacker"]
    assert webhooks.tenants_of(_event(user="li.wei"), owned, "yunshang:dept:") == ["owned-by-name"]
    assert webhooks.tenants_of(_event(user="nobody"), owned, "yunshang:dept:") == []  # not the victim's


@pytest.mark.parametrize("verb,code,message,reason", [
    ("create", 403, ' is forbidden: User "u" cannot create', "rbac"),
    ("get", 403, ' is forbidden: User "u" cannot get', "rbac-read"),
    ("list", 403, ' is forbidden: User "u" cannot list', "rbac-read"),
    ("create", 403, 'pods "p" is forbidden: violates PodSecurity "restricted:latest"', "podsecurity"),
    ("create", 403, "ValidatingAdmissionPolicy 'x' with binding 'x' denied request: no", "policy"),
    ("create", 409, "already exists", None),
    ("get", 404, "not found", None),
])
def test_denial_reasons(verb, code, message, reason):
    assert webhooks.denial_reason(_event(verb=verb, code=code, message=message)) == reason


def test_the_reconciler_holds_a_tenant_whose_namespace_is_anothers():
    """Control: Reconciler._conflict (the record in the cache beats the name)."""
    fake = FakeKube()
    appended = []

    class Audit:
        on_append = None

        def append(self, *args, **kwargs):
            appended.append(args[1])

    r = Reconciler(api=None, settings=Settings(concurrency=2), k=fake, audit=Audit())
    # legacy shapes the API server refuses now: tenant xq asked for suffix w-main before the rule
    other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "xq-w-main", "resourceVersion": "7", "labels": {tenancy.LABEL_TENANT: "xq-w", **tenancy.MANAGED_BY}}}
    r.child_event("ADDED", other)
    legacy = body("xq", finalizers=("platform.yunshang.io/finalizer",))
    legacy["spec"]["namespaces"] = ["w-main"]
    legacy["spec"]["signoffs"] = signed(legacy["spec"])
    r.tenant_event("ADDED", legacy)
    _run(r.reconcile("xq"))
    assert not [c for c in fake.calls if c[0] == "apply"], fake.calls
    assert r._written["xq"]["phase"] == "Conflict"
    assert "namespace xq-w-main belongs to tenant xq-w" in r._written["xq"]["message"]
    assert appended == ["TenantConflict"]
    _run(r.reconcile("xq"))  # once per transition
    assert appended == ["TenantConflict"]
    # control: the same tenant with its own suffix is provisioned
    fine = body("xr", finalizers=("platform.yunshang.io/finalizer",))
    r.tenant_event("ADDED", fine)
    _run(r.reconcile("xr"))
    assert ("apply", "Namespace", "xr-main") in fake.calls


# ---------------------------------------------------------------------------- stacks (issue 24)

def test_a_stack_adopts_only_its_own_objects_unless_told():
    from yunshang.infra import ownership

    mine = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}
    theirs = {"apiVersion": "v1", "kind": "ClusterRole", "metadata": {"name": "b"}}
    loose = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}
    new = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "d"}}
    live = {"ConfigMap/ns/a": ownership.mark(mine, "prod"), "ClusterRole/b": ownership.mark(theirs, "local"),
            "Namespace/c": loose}
    found = ownership.problems([mine, theirs, loose, new], lambda m: live.get(ownership.key(m)), "prod")
    assert found == [
        "ClusterRole/b is managed by stack 'local', not 'prod': nothing was changed; run the stack 'local' instead, "
        "or take it over on purpose with --take-over ClusterRole/b",
        "Namespace/c exists and no stack manages it (made by the operator, a department or by hand, or by a stack "
        "from before stacks marked their objects): nothing was changed; take it over on purpose with --take-over "
        "Namespace/c (or --take-over unmarked for all such)"]
    assert ownership.problems([mine, theirs, loose], lambda m: live.get(ownership.key(m)), "prod",
                              frozenset({"ClusterRole/b", "unmarked"})) == []
    assert ownership.problems([theirs], lambda m: live.get(ownership.key(m)), "prod", frozenset({"unmarked"}))


def test_an_unknown_stack_is_refused_naming_the_stacks(tmp_path):
    from yunshang.infra import automation

    (tmp_path / "stacks").mkdir()
    for n in ("local", "prod"):
        (tmp_path / "stacks" / f"Pulumi.{n}.yaml").write_text("config: {}\n")
    with pytest.raises(automation.UnknownStack) as e:
        automation.check_stack("nosuch", tmp_path)
    assert "--stack 'nosuch': no such stack (the stacks are local, prod" in str(e.value)
    assert automation.check_stack("prod", tmp_path) == "prod"
    assert sorted(p.name for p in (tmp_path / "stacks").iterdir()) == ["Pulumi.local.yaml", "Pulumi.prod.yaml"]


@pytest.mark.parametrize("command", [["up"], ["preview"], ["outputs"], ["destroy", "-y"]])
def test_a_mistyped_stack_is_refused_and_writes_nothing(monkeypatch, capfd, tmp_path, command):
    """Issue 24: `platform up --stack nosuch` created stacks/Pulumi.nosuch.yaml and took over the platform."""
    from test_cli_basics import cli
    from yunshang.infra.config import PROJECT_ROOT

    monkeypatch.setenv("YUNSHANG_STATE_DIR", str(tmp_path))  # never the user's Pulumi state
    before = sorted(p.name for p in (PROJECT_ROOT / "stacks").iterdir())
    code, _, err = cli(monkeypatch, capfd, "platform", *command, "--stack", "loclaX")
    assert code == 1 and err.count("\n") == 1, err
    assert "--stack 'loclaX': no such stack (the stacks are local, prod" in err
    assert sorted(p.name for p in (PROJECT_ROOT / "stacks").iterdir()) == before
    assert not list(tmp_path.rglob("*loclaX*"))


def test_a_catalog_file_that_is_not_utf8_is_named_as_such(tmp_path):
    """Issue 24: the Pulumi catalogue path too (a GBK file used to fail with a Python decode error)."""
    from yunshang import catalog

    f = tmp_path / "gy-x.yaml"
    f.write_bytes("apiVersion: platform.yunshang.io/v1alpha1\nkind: Tenant\nmetadata: {name: gy-x}\n"
                  "spec: {department: {code: AB, name: 贵阳}}\n".encode("gbk"))
    with pytest.raises(catalog.CatalogError) as e:
        catalog.load(tmp_path)
    assert str(e.value).startswith(f"{f} is not UTF-8 (byte 0x") and str(e.value).endswith("save it as UTF-8")


def test_dev_status_names_a_state_dir_that_does_not_exist(monkeypatch, capfd, tmp_path):
    from test_cli_basics import cli

    code, _, err = cli(monkeypatch, capfd, "dev", "status", "--state-dir", str(tmp_path / "nowhere"))
    assert code == 1 and f"--state-dir {tmp_path / 'nowhere'}: no such directory" in err
