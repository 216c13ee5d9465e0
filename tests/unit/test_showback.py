from decimal import Decimal

from hypothesis import given, strategies as st

from yunshang.showback import GIB, OWN_SERVERS_DEFAULT, PLATFORM_DEFAULT, PriceTable, Usage, report, usage_of


def test_costs_and_saving():
    u = Usage("t", "局", "city", {"cpu": Decimal(8), "memory": 16 * GIB, "storage": 100 * GIB},
              {"cpu": Decimal(2), "memory": 4 * GIB})
    p = PriceTable(cpuCoreMonth=10, memoryGiBMonth=1, storageGiBMonth=Decimal("0.1"))
    o = PriceTable(cpuCoreMonth=30, memoryGiBMonth=3, storageGiBMonth=Decimal("0.3"))
    [row] = report([u], p, o)
    assert row.cost_requested == Decimal("106.00")  # 80 + 16 + 10
    assert row.cost_used == Decimal("24.00")  # 20 + 4
    assert row.own_servers == Decimal("318.00") and row.saving == Decimal("212.00")


@given(st.integers(0, 512), st.integers(0, 4096), st.integers(0, 10_000))
def test_shared_platform_never_costs_more_than_own_servers_with_default_tables(cpu, mem_gib, sto_gib):
    u = Usage("t", "d", "county", {"cpu": Decimal(cpu), "memory": mem_gib * GIB, "storage": sto_gib * GIB}, {})
    [row] = report([u], PLATFORM_DEFAULT, OWN_SERVERS_DEFAULT)
    assert row.saving >= 0 and row.cost_used == 0


def test_usage_from_a_tenant_object():
    t = {"metadata": {"name": "x"}, "spec": {"department": {"name": "局"}, "level": "city",
                                              "quota": {"cpu": "4", "memory": "8Gi", "storage": "10Gi"}},
         "status": {"namespaces": [{"used": {"requests.cpu": "500m", "requests.memory": "1Gi"}},
                                   {"used": {"requests.cpu": "1", "requests.memory": "512Mi"}}]}}
    u = usage_of(t)
    assert u.requested["cpu"] == 4 and u.used["cpu"] == Decimal("1.5") and u.used["memory"] == Decimal(1.5) * GIB


def test_usage_from_the_quotas_when_the_status_carries_none():
    """`report costs` reads what the ResourceQuotas use (the operator keeps usage out of the status):
    without that, every tenant's used cost was 0."""
    t = {"metadata": {"name": "x"}, "spec": {"level": "city", "quota": {"cpu": "4", "memory": "8Gi"}}, "status": {}}
    assert usage_of(t).used["cpu"] == 0
    u = usage_of(t, {"cpu": Decimal("1.5"), "memory": Decimal(GIB), "storage": Decimal(0)})
    assert u.used == {"cpu": Decimal("1.5"), "memory": GIB, "storage": 0}


# ------------------------------------------------------------------ roll-ups by level and by parent

from yunshang.showback import SUMMED, by_level, by_parent  # noqa: E402
from yunshang.tree import LEVELS, children_of  # noqa: E402


@st.composite
def forests(draw):
    """Tenants whose parent comes before them (a forest), one level below it; now and then an
    unknown level or a parent that is not there."""
    usages, parents = [], {}
    for i in range(draw(st.integers(0, 12))):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1).map(lambda j: f"t{j}"))) if i else None
        if parent is not None and draw(st.integers(0, 9)) == 0:
            parent = "gone"  # an orphan: a root of its own in the roll-ups
        if parent is None or parent == "gone":
            level = draw(st.sampled_from(LEVELS + ("district",)))
        else:
            up = next(u.level for u in usages if u.tenant == parent)
            level = LEVELS[min(LEVELS.index(up) + 1, 4)] if up in LEVELS else up
        cpu, mem = draw(st.integers(0, 64)), draw(st.integers(0, 256))
        usages.append(Usage(f"t{i}", "局", level, {"cpu": Decimal(cpu), "memory": mem * GIB, "storage": 10 * GIB},
                            {"cpu": Decimal(draw(st.integers(0, cpu))), "memory": GIB}))
        parents[f"t{i}"] = parent
    return usages, parents


def test_by_level_and_by_parent_of_a_small_hierarchy():
    rows = report([Usage("p", "省", "province", {"cpu": Decimal(8), "memory": 8 * GIB, "storage": 0 * GIB}, {}),
                   Usage("c", "市", "city", {"cpu": Decimal(4), "memory": 4 * GIB, "storage": 0 * GIB}, {}),
                   Usage("x", "县", "county", {"cpu": Decimal(2), "memory": 2 * GIB, "storage": 0 * GIB}, {}),
                   Usage("v", "村", "village", {"cpu": Decimal(1), "memory": GIB, "storage": 0 * GIB}, {}),
                   Usage("o", "?", "mystery", {"cpu": Decimal(1), "memory": GIB, "storage": 0 * GIB}, {})])
    levels = by_level(rows)
    assert [g.tenant for g in levels] == ["province", "city", "county", "village", "mystery"]  # unknown last
    assert [g.tenants for g in levels] == [1, 1, 1, 1, 1]
    groups = by_parent(rows, {"p": None, "c": "p", "x": "c", "v": "x", "o": None})
    assert [(g.tenant, g.level, g.tenants, g.cpu_requested) for g in groups] == [
        ("p", "province", 4, 15), ("c", "city", 3, 7), ("x", "county", 2, 3)]  # v has no children: no row
    assert groups[0].cost_requested == sum(r.cost_requested for r in rows if r.tenant != "o")


@given(forests())
def test_roll_ups_add_up(forest):
    usages, parents = forest
    rows = report(usages)
    levels = by_level(rows)
    for f in SUMMED:  # the level rows share the tenant rows out, nothing lost or counted twice
        assert sum(getattr(g, f) for g in levels) == sum(getattr(r, f) for r in rows)
    assert sum(g.tenants for g in levels) == len(rows)
    groups = {g.tenant: g for g in by_parent(rows, parents)}
    own = {r.tenant: r for r in rows}
    kids = children_of(parents)
    assert set(groups) == set(kids)  # one row per tenant that has children
    for name, g in groups.items():  # a parent's roll-up is its own row plus its children's roll-ups
        parts = [own[name]] + [groups.get(c, own[c]) for c in kids[name]]
        for f in SUMMED:
            assert getattr(g, f) == sum(getattr(p, f) for p in parts)
        assert g.tenants == 1 + sum(getattr(groups.get(c), "tenants", 1) for c in kids[name])
