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
