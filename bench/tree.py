"""The five-level tenant tree of the onboarding benchmark (bench/onboard.py --tree), as pure functions.

    build_tree(20000) -> [(name, spec), ...]   parent before child

One province, 9 cities, 88 counties, about 1,500 townships, the rest villages (at 20,000 tenants;
fewer tenants: each level's count scaled by total/20000, at least one of each and at least as many as
the level above).  Children are spread as evenly as possible over the level above.  Names are short
DNS labels: pr, c01, c01-k03, c01-k03-t12, c01-k03-t12-v05.  Quotas are carved bottom-up: a village
gets VILLAGE; every other tenant its own share (OWN) plus the sum of its children's quotas, so every
child fits in what its parent has left.  `check_tree` says what is wrong with a tree (empty: nothing).
"""
from __future__ import annotations

from decimal import Decimal

LEVELS = ["province", "city", "county", "township", "village"]
AT_20000 = {"province": 1, "city": 9, "county": 88, "township": 1500}  # the rest are villages
PREFIX = {"city": "c", "county": "k", "township": "t", "village": "v"}
PROVINCE = "pr"
LEVEL_CN = {"province": "省", "city": "市", "county": "县", "township": "乡镇", "village": "村"}

# quantities as integers in one unit each: cpu millicores, memory MiB, storage GiB, the rest counts
UNITS = {"cpu": "m", "memory": "Mi", "storage": "Gi"}
FIELDS = ["cpu", "memory", "storage", "pods", "services", "configmaps", "secrets", "persistentvolumeclaims"]
VILLAGE = dict(cpu=100, memory=128, storage=1, pods=2, services=1, configmaps=4, secrets=4, persistentvolumeclaims=0)
OWN = {  # what a tenant above the villages keeps for itself, besides its children's quotas
    "township": dict(cpu=200, memory=256, storage=2, pods=4, services=2, configmaps=4, secrets=4, persistentvolumeclaims=1),
    "county": dict(cpu=500, memory=512, storage=5, pods=8, services=4, configmaps=8, secrets=8, persistentvolumeclaims=2),
    "city": dict(cpu=1000, memory=1024, storage=10, pods=10, services=5, configmaps=10, secrets=10, persistentvolumeclaims=4),
    "province": dict(cpu=2000, memory=2048, storage=20, pods=20, services=10, configmaps=20, secrets=20,
                     persistentvolumeclaims=10),
}
COUNT_MAX = 100_000  # the model's limit on pods, services, configmaps, secrets and persistentvolumeclaims
NAME_MAX = 29  # 30 (the model's) less one: the floor's tenants are "f" + name


def level_counts(total: int) -> dict[str, int]:
    """How many tenants of each level make ``total``."""
    if total < len(LEVELS):
        raise ValueError(f"a five-level tree needs at least {len(LEVELS)} tenants, not {total}")
    counts, above = {}, 1
    for level in LEVELS[:-1]:
        n = max(1, above, round(AT_20000[level] * total / 20000))
        counts[level], above = n, n
    counts["village"] = total - sum(counts.values())
    if counts["village"] < counts["township"]:  # a small total: fewer townships, so that each has a village
        raise ValueError(f"{total} tenants are too few for the tree's proportions: {counts}")
    return counts


def spread(n: int, over: int) -> list[int]:
    """``n`` children over ``over`` parents, as evenly as possible (the first ones get one more)."""
    return [n // over + (1 if j < n % over else 0) for j in range(over)]


def _quantities(q: dict[str, int]) -> dict:
    return {k: f"{q[k]}{UNITS[k]}" if k in UNITS else q[k] for k in FIELDS}


def spec_of(name: str, level: str, parent: str | None, quota: dict[str, int]) -> dict:
    s = {
        "department": {"code": f"B-{name}".upper(), "name": f"基准测试{LEVEL_CN[level]} {name}"},
        "level": level,
        "owners": [{"kind": "User", "name": f"owner-{name}"}],
        "purpose": "benchmark",
        "project": f"BENCH-{name}",
        "namespaces": ["main"],
        "quota": _quantities(quota),
    }
    if parent:
        s["parent"] = parent
    return s


def build_tree(total: int = 20000) -> list[tuple[str, dict]]:
    """``total`` tenants in five levels, parent before child (level by level, top down)."""
    counts = level_counts(total)
    names: dict[str, list[str]] = {"province": [PROVINCE]}
    parent_of: dict[str, str | None] = {PROVINCE: None}
    children: dict[str, list[str]] = {}
    for above, level in zip(LEVELS, LEVELS[1:]):
        per_parent = spread(counts[level], len(names[above]))
        width = max(2, len(str(max(per_parent))))
        names[level] = []
        for parent, n in zip(names[above], per_parent):
            for j in range(1, n + 1):
                nm = f"{PREFIX[level]}{j:0{width}d}" if level == "city" else f"{parent}-{PREFIX[level]}{j:0{width}d}"
                names[level].append(nm)
                parent_of[nm] = parent
                children.setdefault(parent, []).append(nm)
    quota: dict[str, dict[str, int]] = {}
    for level in reversed(LEVELS):  # bottom up
        for nm in names[level]:
            if level == "village":
                quota[nm] = dict(VILLAGE)
            else:
                q = dict(OWN[level])
                for c in children.get(nm, ()):
                    for k in FIELDS:
                        q[k] += quota[c][k]
                quota[nm] = q
    return [(nm, spec_of(nm, level, parent_of[nm], quota[nm])) for level in LEVELS for nm in names[level]]


def _amount(v) -> Decimal:
    from kubernetes.utils.quantity import parse_quantity

    return parse_quantity(v)


def check_tree(tree: list[tuple[str, dict]]) -> list[str]:
    """What is wrong with ``tree``: every parent exists before its child, a child's level is one below
    its parent's, the children's quotas sum within the parent's, the model accepts every spec (names,
    village: one namespace, limits).  Empty: nothing."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from yunshang.models.tenant import TenantSpec, check_tenant_name

    problems, seen, sums = [], {}, {}
    for name, spec in tree:
        if name in seen:
            problems.append(f"{name}: twice")
        if len(name) > NAME_MAX:
            problems.append(f"{name}: longer than {NAME_MAX}")
        try:
            check_tenant_name(name, TenantSpec.model_validate(spec))
            check_tenant_name("f" + name)
        except ValueError as e:
            problems.append(f"{name}: {e}")
        level, parent = spec["level"], spec.get("parent")
        if level == "province":
            if parent:
                problems.append(f"{name}: a province with a parent")
        elif parent not in seen:
            problems.append(f"{name}: parent {parent!r} not before it")
        elif LEVELS.index(seen[parent]["level"]) != LEVELS.index(level) - 1:
            problems.append(f"{name}: a {level} under a {seen[parent]['level']}")
        else:
            acc = sums.setdefault(parent, {k: Decimal(0) for k in FIELDS})
            for k in FIELDS:
                acc[k] += _amount(spec["quota"][k])
        for k in FIELDS[3:]:
            if spec["quota"][k] > COUNT_MAX:
                problems.append(f"{name}: {k} {spec['quota'][k]} over {COUNT_MAX}")
        if level == "village" and len(spec["namespaces"]) != 1:
            problems.append(f"{name}: a village with {len(spec['namespaces'])} namespaces")
        seen[name] = spec
    for parent, acc in sums.items():
        over = [k for k in FIELDS if acc[k] > _amount(seen[parent]["quota"][k])]
        if over:
            problems.append(f"{parent}: its children's {', '.join(over)} exceed its own")
    return problems


if __name__ == "__main__":  # python bench/tree.py [total]: the counts, a few names, and the check
    import collections
    import json
    import sys

    tree = build_tree(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
    print(json.dumps(collections.Counter(s["level"] for _, s in tree)))
    print(json.dumps(tree[0], ensure_ascii=False))
    print(max((n for n, _ in tree), key=len))
    problems = check_tree(tree)
    print("\n".join(problems[:20]) or "ok")
    sys.exit(1 if problems else 0)
