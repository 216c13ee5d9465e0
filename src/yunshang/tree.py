"""The tenant hierarchy (province → city → county → township → village) as pure functions of the
Tenant objects (no I/O here): the order of the levels, each tenant's children and subtree, and the
tree `yunshang tenant list --tree` draws, with each tenant's quota used, carved out for its
children and left.

Levels are plain strings ordered by `LEVELS`; a level not in it sorts last.  Carving follows
`yunshang.tenancy.hierarchy_problem`: what a child takes from its parent is its ceiling (the quota
raised by elastic.ceiling), and only approved children take anything.
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from .models.tenant import Level

LEVELS = tuple(level.value for level in Level)  # top to bottom: the model's five levels
RESOURCES = ("cpu", "memory")  # what the tree shows; memory in bytes


def level_rank(level: Any) -> int:
    """0 for province ... 4 for village; an unknown level (or none) after them all."""
    level = getattr(level, "value", level)
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


def level_key(level: Any) -> tuple[int, str]:
    """Sort key: the levels in order, unknown ones after them by name."""
    return level_rank(level), str(getattr(level, "value", level) or "")


def parents_of(tenants: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    """tenant -> the parent its spec names (None for none)."""
    return {t["metadata"]["name"]: (t.get("spec") or {}).get("parent") or None for t in tenants}


def levels_of(tenants: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """tenant -> its level ("" for none)."""
    return {t["metadata"]["name"]: str((t.get("spec") or {}).get("level") or "") for t in tenants}


def children_of(parents: Mapping[str, str | None]) -> dict[str, list[str]]:
    """parent -> its children (sorted by name), for the parents that are in ``parents`` themselves."""
    out: dict[str, list[str]] = {}
    for name, parent in sorted(parents.items()):
        if parent is not None and parent in parents and parent != name:
            out.setdefault(parent, []).append(name)
    return out


def subtree(name: str, children: Mapping[str, list[str]]) -> list[str]:
    """``name`` and all its descendants (each once, even if the parents form a cycle)."""
    seen, todo = [name], [name]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    return seen


def roll_up_keys(parents: Mapping[str, str | None], levels: Mapping[str, str]) -> list[str]:
    """The tenants that have children, in level order then by name: one `--by parent` row each."""
    return sorted(children_of(parents), key=lambda n: (level_key(levels.get(n, "")), n))


# ------------------------------------------------------------------------------- the tree

@dataclasses.dataclass
class Node:
    name: str
    level: str
    phase: str
    used: dict[str, Decimal]  # what its namespaces' ResourceQuotas use
    carved: dict[str, Decimal]  # the ceilings of its approved children
    left: dict[str, Decimal]  # its own ceiling minus carved (negative: over-carved)
    children: list["Node"] = dataclasses.field(default_factory=list)
    orphan: str | None = None  # the parent it names but that is not there

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape: quantities as Kubernetes quantity strings (memory in Ki/Mi/Gi)."""
        d: dict[str, Any] = {"name": self.name, "level": self.level, "phase": self.phase,
                             **{k: amounts_text(getattr(self, k)) for k in ("used", "carved", "left")},
                             "children": [c.as_dict() for c in self.children]}
        if self.orphan is not None:
            d["orphanOf"] = self.orphan
        return d


def quantity_text(resource: str, amount: Decimal) -> str:
    from .models.quantity import format_quantity

    return format_quantity(amount, binary=resource == "memory")


def amounts_text(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {k: quantity_text(k, v) for k, v in amounts.items()}


def ceiling(spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """cpu and memory of the tenant's ceiling: its quota (the model's defaults for what it leaves
    out), raised where elastic.ceiling says (as TenantSpec.ceiling)."""
    from .models.tenant import Quota, QuotaBound

    quota = Quota.model_validate(spec.get("quota") or {})
    bound = (spec.get("elastic") or {}).get("ceiling")
    amounts = (QuotaBound.model_validate(bound).over(quota) if bound else quota).amounts()
    return {k: amounts[k] for k in RESOURCES}


def used_of(tenant: Mapping[str, Any]) -> dict[str, Decimal]:
    """What the tenant's status says its namespaces' quotas use (requests.cpu, requests.memory)."""
    from .models.quantity import to_decimal

    nss = (tenant.get("status") or {}).get("namespaces") or []
    return {k: sum((to_decimal((ns.get("used") or {}).get(f"requests.{k}", "0")) for ns in nss), Decimal(0))
            for k in RESOURCES}


def _zero() -> dict[str, Decimal]:
    return {k: Decimal(0) for k in RESOURCES}


def build(tenants: Iterable[Mapping[str, Any]], usage: Mapping[str, Mapping[str, Any]] | None = None,
          approved: Callable[[Mapping[str, Any]], bool] | None = None) -> list[Node]:
    """The forest of tenants: roots (no parent) first in level order, then orphans (their parent is
    not among ``tenants``: missing, or not visible to the caller; or the parents form a cycle).

    ``usage``: tenant -> {"cpu": cores, "memory": bytes} its ResourceQuotas use, read live (the
    client's `Tenants.usage`, its first element); a tenant not in it is read from its status.
    ``approved``: which children take their ceiling from their parent (default: approved at least
    once, `yunshang.client.approved`)."""
    if approved is None:
        from .client import approved
    tenants = list(tenants)
    by_name = {t["metadata"]["name"]: t for t in tenants}
    parents = parents_of(tenants)
    levels = levels_of(tenants)
    kids = children_of(parents)
    order = (lambda n: (level_key(levels[n]), n))  # noqa: E731
    ceilings = {n: ceiling(t.get("spec") or {}) for n, t in by_name.items()}
    placed: set[str] = set()

    def used(name: str) -> dict[str, Decimal]:
        live = (usage or {}).get(name)
        if live is None:
            return used_of(by_name[name])
        return {k: Decimal(str(live.get(k, 0))) for k in RESOURCES}

    def node(name: str, orphan: str | None = None) -> Node:
        placed.add(name)
        t = by_name[name]
        carved = _zero()
        for c in kids.get(name, []):
            if approved(by_name[c]):
                for k in RESOURCES:
                    carved[k] += ceilings[c][k]
        left = {k: ceilings[name][k] - carved[k] for k in RESOURCES}
        n = Node(name, levels[name], (t.get("status") or {}).get("phase") or "Pending", used(name), carved, left,
                 orphan=orphan)
        n.children = [node(c) for c in sorted(kids.get(name, []), key=order) if c not in placed]
        return n

    roots = [node(n) for n in sorted(by_name, key=order) if parents[n] is None]
    orphans = [node(n, parents[n]) for n in sorted(by_name, key=order) if parents[n] is not None
               and parents[n] not in by_name]
    # what is left hangs from a cycle of parents: each such tenant is shown once, at the top
    cycles = []
    for n in sorted(by_name, key=order):
        if n not in placed:
            cycles.append(node(n, parents[n]))
    return roots + orphans + cycles


def walk(nodes: Iterable[Node], depth: int = 0) -> Iterable[tuple[int, Node]]:
    """Every node with its depth, parents before their children."""
    for n in nodes:
        yield depth, n
        yield from walk(n.children, depth + 1)
