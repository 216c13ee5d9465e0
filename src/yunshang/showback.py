"""Showback: what each department's share of the platform costs per month, and what the same
capacity would cost on servers of its own (pure functions; prices come from the stack config).
"""
from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from .models.quantity import to_decimal

GIB = Decimal(2**30)


class PriceTable(BaseModel):
    """Monthly prices per unit (configured in the stack: yunshang:pricing / yunshang:ownServerPricing)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    currency: str = "CNY"
    cpu_core_month: Decimal = Field(alias="cpuCoreMonth", ge=0)
    memory_gib_month: Decimal = Field(alias="memoryGiBMonth", ge=0)
    storage_gib_month: Decimal = Field(alias="storageGiBMonth", ge=0)

    def cost(self, cpu: Decimal, memory_bytes: Decimal, storage_bytes: Decimal) -> Decimal:
        return (cpu * self.cpu_core_month + memory_bytes / GIB * self.memory_gib_month
                + storage_bytes / GIB * self.storage_gib_month)


# The defaults document where the numbers come from; a stack overrides them.
PLATFORM_DEFAULT = PriceTable(cpuCoreMonth=Decimal("95"), memoryGiBMonth=Decimal("12"), storageGiBMonth=Decimal("0.35"))
"""Shared platform: the province cloud's internal rate (hardware amortised over 5 years at ~65 %
utilisation, power, rack space and the platform team, per unit requested)."""
OWN_SERVERS_DEFAULT = PriceTable(cpuCoreMonth=Decimal("260"), memoryGiBMonth=Decimal("30"), storageGiBMonth=Decimal("1.2"))
"""A department's own servers: the same costs at the ~20 % utilisation a single department's
machines typically run at, plus its own maintenance contract and machine room."""


@dataclasses.dataclass(frozen=True)
class Usage:
    tenant: str
    department: str
    level: str
    requested: dict[str, Decimal]  # cpu (cores), memory, storage (bytes)
    used: dict[str, Decimal]


@dataclasses.dataclass(frozen=True)
class Row:
    tenant: str
    department: str
    level: str
    cpu_requested: Decimal
    memory_gib_requested: Decimal
    cpu_used: Decimal
    memory_gib_used: Decimal
    cost_requested: Decimal
    cost_used: Decimal
    own_servers: Decimal
    saving: Decimal
    currency: str


def _money(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def report(usages: Iterable[Usage], platform: PriceTable = PLATFORM_DEFAULT,
           own: PriceTable = OWN_SERVERS_DEFAULT) -> list[Row]:
    rows = []
    for u in sorted(usages, key=lambda u: u.tenant):
        r, s = u.requested, u.used
        requested = platform.cost(r["cpu"], r["memory"], r["storage"])
        used = platform.cost(s.get("cpu", Decimal(0)), s.get("memory", Decimal(0)), s.get("storage", Decimal(0)))
        own_cost = own.cost(r["cpu"], r["memory"], r["storage"])
        rows.append(Row(u.tenant, u.department, u.level, r["cpu"], _money(r["memory"] / GIB),
                        s.get("cpu", Decimal(0)), _money(s.get("memory", Decimal(0)) / GIB),
                        _money(requested), _money(used), _money(own_cost), _money(own_cost - requested),
                        platform.currency))
    return rows


def usage_of(tenant: dict, quota_used: dict | None = None) -> Usage:
    """From a Tenant object: requested = spec.quota; used = what its namespaces' ResourceQuotas use
    (``quota_used``: cpu, memory, storage summed over them, as `Tenants.usage` reads them; without
    it, the namespaces' usage in the tenant's status, where a status carries it)."""
    spec, st = tenant["spec"], tenant.get("status") or {}
    q = spec.get("quota") or {}
    requested = {"cpu": to_decimal(q.get("cpu", "0")), "memory": to_decimal(q.get("memory", "0")),
                 "storage": to_decimal(q.get("storage", "0"))}
    keys = {"cpu": "requests.cpu", "memory": "requests.memory", "storage": "requests.storage"}
    if quota_used is not None:
        used = {k: Decimal(quota_used.get(k, 0)) for k in keys}
    else:
        used = {k: sum((to_decimal(ns.get("used", {}).get(v, "0")) for ns in st.get("namespaces", [])), Decimal(0))
                for k, v in keys.items()}
    return Usage(tenant["metadata"]["name"], spec.get("department", {}).get("name", ""), spec.get("level", ""),
                 requested, used)


# ------------------------------------------------------------------------------- roll-ups

BY = ("tenant", "level", "parent")
SUMMED = ("cpu_requested", "memory_gib_requested", "cpu_used", "memory_gib_used", "cost_requested", "cost_used",
          "own_servers", "saving")


@dataclasses.dataclass(frozen=True)
class Group(Row):
    """A roll-up row: ``tenant`` holds the level (`--by level`) or the tenant whose subtree it sums
    (`--by parent`); ``tenants``: how many tenant rows it sums."""

    tenants: int = 0


def _sum(key: str, department: str, level: str, rows: list[Row], currency: str) -> Group:
    sums = {f: sum((getattr(r, f) for r in rows), Decimal(0)) for f in SUMMED}
    return Group(key, department, level, **sums, currency=currency, tenants=len(rows))


def by_level(rows: Iterable[Row]) -> list[Group]:
    """One row per level (province first; unknown levels last), summing its tenants' rows."""
    from .tree import level_key

    rows = list(rows)
    levels = sorted({r.level for r in rows}, key=level_key)
    cur = rows[0].currency if rows else PLATFORM_DEFAULT.currency
    return [_sum(lv, "", lv, [r for r in rows if r.level == lv], cur) for lv in levels]


def by_parent(rows: Iterable[Row], parents: Mapping[str, str | None]) -> list[Group]:
    """One row per tenant that has children (``parents``: tenant -> the parent it names), summing
    its whole subtree: itself and all its descendants that have a row."""
    from .tree import children_of, roll_up_keys, subtree

    rows = list(rows)
    by_name = {r.tenant: r for r in rows}
    levels = {r.tenant: r.level for r in rows}
    kids = children_of(parents)
    cur = rows[0].currency if rows else PLATFORM_DEFAULT.currency
    out = []
    for name in roll_up_keys(parents, levels):
        own = by_name.get(name)
        members = [by_name[n] for n in subtree(name, kids) if n in by_name]
        out.append(_sum(name, own.department if own else "", own.level if own else "", members, cur))
    return out
