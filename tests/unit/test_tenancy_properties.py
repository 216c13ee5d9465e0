"""Property tests of the pure desired-state functions and of validation with hostile input."""
from __future__ import annotations

import copy
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from pydantic import ValidationError

from yunshang.operator.tenants import steps
from yunshang import tenancy
from yunshang.models.quantity import format_quantity, to_decimal
from yunshang.models.tenant import (RESERVED_NAMES, RESERVED_PREFIXES, Quota, TenantRequest, TenantSpec,
                                    check_tenant_name)

from factories import request

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
cpu = st.integers(0, 512_000).map(lambda m: f"{m}m")
mem = st.integers(0, 2**20).map(lambda m: f"{m}Mi")
counts = st.integers(0, 10_000)
quotas = st.builds(
    lambda c, m, s, p, sv: Quota(cpu=c, memory=m, storage=s, pods=p, services=sv),
    cpu, mem, mem, counts, st.integers(0, 10_000),
)


@given(quotas, st.integers(1, 16))
def test_split_never_exceeds_the_tenant_quota(q, parts):
    share = tenancy.split_quota(q, parts)
    for field, key in tenancy.QUOTA_KEYS.items():
        total = q.amounts()[field]
        each = to_decimal(share[key])
        assert each * parts <= total
        unit = Decimal("0.001") if field == "cpu" else Decimal(1)
        assert total - each * parts < unit * parts


@given(st.lists(label, min_size=1, max_size=6, unique=True), quotas, st.booleans())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
def test_every_namespace_gets_the_full_isolation_set(suffixes, q, suspended):
    spec = TenantSpec.model_validate({**request(namespaces=suffixes), "quota": q.model_dump(), "suspended": suspended})
    objs = steps.desired_objects("dept", "uid-1", spec)
    keys = [tenancy.key_of(o) for o in objs]
    assert len(keys) == len(set(keys)), "no duplicates"
    for s in suffixes:
        ns = f"dept-{s}"
        kinds = sorted(k for k, n, _ in keys if n == ns)
        assert kinds == ["LimitRange", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy",
                         "ResourceQuota", "RoleBinding"]
        assert ("Namespace", "", ns) in keys
    for o in objs:
        assert o["metadata"]["labels"][tenancy.LABEL_TENANT] == "dept"
        assert o["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        if o["kind"] == "Namespace":
            assert o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        if o["kind"] == "ResourceQuota" and suspended:
            assert o["spec"]["hard"]["pods"] == "0"
    # the default-deny policy selects every pod and both directions
    deny = [o for o in objs if o["metadata"]["name"] == "default-deny"]
    assert all(d["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]} for d in deny)


@given(st.lists(label, min_size=1, max_size=4, unique=True))
def test_desired_is_pure(suffixes):
    spec = TenantSpec.model_validate(request(namespaces=suffixes))
    assert steps.desired_objects("d", "u", spec) == steps.desired_objects("d", "u", spec)


def _with_server_defaults(obj):
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="x", resourceVersion="1", creationTimestamp="2026-01-01T00:00:00Z")
    live["metadata"]["labels"]["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    live["status"] = {"phase": "Active"}
    return live


@given(st.lists(label, min_size=1, max_size=3, unique=True))
@settings(max_examples=30)
def test_in_sync_ignores_server_additions_but_not_edits(suffixes):
    spec = TenantSpec.model_validate(request(namespaces=suffixes))
    for obj in steps.desired_objects("d", "u", spec):
        live = _with_server_defaults(obj)
        assert tenancy.in_sync(obj, live)
        edited = copy.deepcopy(live)
        edited["metadata"]["labels"][tenancy.LABEL_TENANT] = "someone-else"
        assert not tenancy.in_sync(obj, edited)
        assert not tenancy.in_sync(obj, None)
        foreign = copy.deepcopy(live)
        foreign["metadata"]["ownerReferences"] = [{"uid": "other"}]
        assert not tenancy.in_sync(obj, foreign)


def test_quantities_compare_by_value():
    assert tenancy.is_subset({"cpu": "1"}, {"cpu": "1000m"})
    assert tenancy.is_subset({"memory": "1Gi"}, {"memory": "1073741824"})
    assert not tenancy.is_subset({"cpu": "1"}, {"cpu": "999m"})


@given(st.integers(1, 2**40))
def test_format_quantity_round_trips(n):
    for binary in (True, False):
        assert to_decimal(format_quantity(Decimal(n), binary)) == n
    assert to_decimal(format_quantity(Decimal(n) / 1000)) == Decimal(n) / 1000


def _spec(level="city", parent="prov", cpu="4", ceiling=None, approved=True):
    r = request(level=level, parent=parent, quota={"cpu": cpu, "memory": "4Gi", "pods": 10})
    if level == "province":
        r.pop("parent")
    if ceiling:
        r["elastic"] = {"ceiling": {"cpu": ceiling}}
    if approved:
        r["approval"] = {"decision": "Approved", "by": "admin"}
    return TenantSpec.model_validate(r)


@given(st.integers(1, 64), st.lists(st.integers(1, 16), max_size=6), st.integers(1, 32))
def test_children_never_exceed_parent(parent_cpu, sibling_cpus, mine):
    parent = _spec(level="province", parent=None, cpu=str(parent_cpu))
    roomy = {"memory": "1Ti", "storage": "1Pi", "pods": 10_000, "services": 10_000, "configmaps": 100_000,
             "secrets": 100_000, "persistentvolumeclaims": 10_000}
    parent = parent.model_copy(update={"quota": parent.quota.model_copy(update=roomy)})
    siblings = {f"s{i}": _spec(cpu=str(c)) for i, c in enumerate(sibling_cpus)}
    problem = tenancy.hierarchy_problem("me", _spec(cpu=str(mine)), "prov", parent, siblings)
    fits = sum(sibling_cpus) + mine <= parent_cpu
    assert (problem is None) == fits
    if not fits:
        left = parent_cpu - sum(sibling_cpus)
        assert f"left cpu {max(left, 0)}" in problem


def test_ceiling_counts_against_parent_not_just_quota():
    parent = _spec(level="province", parent=None, cpu="8")
    child = _spec(cpu="4", ceiling="12")
    assert "quota over parent" in tenancy.hierarchy_problem("c", child, "prov", parent, {})


def test_wrong_level_and_unapproved_parent():
    prov = _spec(level="province", parent=None)
    county = _spec(level="county", parent="prov")
    assert "needs a city parent" in tenancy.hierarchy_problem("c", county, "prov", prov, {})
    pending = _spec(level="province", parent=None, approved=False)
    assert "not approved" in tenancy.hierarchy_problem("c", _spec(), "prov", pending, {})


@given(st.dictionaries(label, st.one_of(st.none(), label), max_size=8))
def test_cycle_detection_terminates(parents):
    for name in parents:
        tenancy.parent_chain_has_cycle(name, parents)  # must not hang
    assert tenancy.parent_chain_has_cycle("a", {"a": "b", "b": "a"})
    assert not tenancy.parent_chain_has_cycle("a", {"a": "b", "b": None})


# ---------------------------------------------------------------- hostile input

@pytest.mark.parametrize("bad", ["-1", "-500m", "1e400", "9" * 40, "lots", "", "1.5.5", "NaN", True, [], {}])
def test_bad_quantities_are_refused_with_the_field_name(bad):
    with pytest.raises(ValidationError) as e:
        TenantRequest.model_validate(request(quota={"cpu": bad}))
    assert e.value.errors()[0]["loc"][:2] == ("quota", "cpu")


@given(st.integers(max_value=-1) | st.integers(min_value=100_001))
def test_out_of_range_counts(n):
    with pytest.raises(ValidationError):
        TenantRequest.model_validate(request(quota={"pods": n}))


# names close to valid ones (where mistakes hide: case, edge dashes, length, reserved words, a
# trailing newline) as well as any text at all
near_names = st.one_of(
    st.from_regex(r"[a-zA-Z0-9-]{1,34}", fullmatch=True),
    st.sampled_from([*RESERVED_NAMES, *RESERVED_PREFIXES]).flatmap(
        lambda word: st.sampled_from([word, f"{word}-x", f"{word}x", f"x-{word}"])),
    st.from_regex(r"[a-z0-9]{2,10}", fullmatch=True).map(lambda n: n + "\n"),
)


def is_tenant_name(name: str) -> bool:
    """The rule, stated independently: a DNS label (RFC 1123) of 2-30 characters, not the
    platform's own (reserved names, and names that start with a reserved prefix and a dash)."""
    dns = re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) is not None
    reserved = name in RESERVED_NAMES or any(name == p or name.startswith(p + "-") for p in RESERVED_PREFIXES)
    return dns and 2 <= len(name) <= 30 and not reserved


@example("ab\n")  # `$` in a Python regex also matches before a final newline
@example("kube-x")
@example("kubex")
@example("a")
@example("a" * 31)
@example("a-")
@example("A1")
@given(st.text(min_size=1, max_size=80) | near_names)
def test_tenant_names_are_dns_labels_or_refused(name):
    try:
        check_tenant_name(name)
    except ValueError as e:
        accepted, message = False, str(e)
    else:
        accepted, message = True, ""
    assert accepted == is_tenant_name(name), f"{name!r}: accepted={accepted}, the rule says {is_tenant_name(name)}"
    if not accepted:  # one line that names the name and says what is wrong
        assert message.startswith(f"tenant name {name!r}") and ("must be" in message or "reserved" in message)


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=100).filter(str.strip))
def test_department_names_may_be_any_script(name):
    r = TenantRequest.model_validate(request(department={"code": "520000-X", "name": name}))
    assert r.department.name in name and r.department.name


@given(st.text(st.characters(whitelist_categories=("Cc",)), min_size=1, max_size=5))
def test_control_characters_in_names_are_refused(junk):
    with pytest.raises(ValidationError):
        TenantRequest.model_validate(request(department={"code": "520000-X", "name": "局" + junk + "局"}))


def test_unicode_and_long_namespaces_are_refused():
    with pytest.raises(ValidationError):
        TenantRequest.model_validate(request(namespaces=["数据"]))
    spec = TenantRequest.model_validate(request(namespaces=["a" * 40]))
    with pytest.raises(ValueError, match="longer than 63"):
        check_tenant_name("b" * 30, spec)


def test_level_parent_consistency():
    with pytest.raises(ValidationError, match="needs a parent"):
        TenantRequest.model_validate(request(level="county"))
    with pytest.raises(ValidationError, match="has no parent"):
        TenantRequest.model_validate(request(parent="xy"))


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError) as e:
        TenantRequest.model_validate({**request(), "quotas": {}})
    assert e.value.errors()[0]["loc"] == ("quotas",)


def test_quota_within_floor_and_ceiling():
    with pytest.raises(ValidationError, match="above elastic.ceiling"):
        TenantRequest.model_validate(request(elastic={"ceiling": {"cpu": "1"}}))
    with pytest.raises(ValidationError, match="floor is above"):
        TenantRequest.model_validate(request(elastic={"floor": {"cpu": "100"}}))


# ---------------------------------------------------------------------------- five levels (五级)

FIVE = ["province", "city", "county", "township", "village"]


@pytest.mark.parametrize("depth", range(1, 5))
def test_each_level_is_carved_out_of_the_one_above_only(depth):
    """Township under county, village under township; any other parent level is refused, naming both."""
    level = FIVE[depth]
    for parent_level in FIVE:
        parent = _spec(level=parent_level, parent=None if parent_level == "province" else "up", cpu="64")
        problem = tenancy.hierarchy_problem("me", _spec(level=level, parent="pp", cpu="1"), "pp", parent, {})
        if parent_level == FIVE[depth - 1]:
            assert problem is None, problem
        else:
            assert f"a {level} tenant needs a {FIVE[depth - 1]} parent, but 'pp' is a {parent_level}" == problem


@given(st.lists(st.integers(1, 8), min_size=1, max_size=6), st.integers(1, 8), st.integers(8, 40))
def test_a_village_fits_what_its_township_has_left(village_cpus, mine, township_cpu):
    """The same carving rule at the bottom of the tree: refused naming the remainder."""
    township = _spec(level="township", parent="county", cpu=str(township_cpu))
    roomy = {"memory": "1Ti", "storage": "1Pi", "pods": 10_000, "services": 10_000, "configmaps": 100_000,
             "secrets": 100_000, "persistentvolumeclaims": 10_000}
    township = township.model_copy(update={"quota": township.quota.model_copy(update=roomy)})
    villages = {f"v{i}": _spec(level="village", parent="tt", cpu=str(c)) for i, c in enumerate(village_cpus)}
    problem = tenancy.hierarchy_problem("me", _spec(level="village", parent="tt", cpu=str(mine)), "tt", township, villages)
    left = township_cpu - sum(village_cpus)
    assert (problem is None) == (mine <= left)
    if problem:
        assert problem.startswith("quota over parent 'tt'") and f"left cpu {max(left, 0)}" in problem


def test_a_village_has_exactly_one_namespace():
    ok = TenantRequest.model_validate(request(level="village", parent="xzb-health"))
    assert ok.namespaces == ["main"]
    with pytest.raises(ValidationError, match="a village tenant has exactly one namespace"):
        TenantRequest.model_validate(request(level="village", parent="xzb-health", namespaces=["main", "app"]))
    # a township may have several, as every other level
    TenantRequest.model_validate(request(level="township", parent="xf-health", namespaces=["main", "app"]))


def test_the_crd_holds_the_same_rules():
    from yunshang.models.crd import tenant_crd

    schema = tenant_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert schema["properties"]["level"]["enum"] == FIVE
    assert "self.level != 'village' || size(self.namespaces) == 1" in [r["rule"] for r in schema["x-kubernetes-validations"]]
