"""Elastic quota: what is short expands by itself, what is spare is released.

`decide` is pure: from the utilisation a resource showed over a window, the quota, the
approved floor and ceiling, what is in use and when the quota last changed, it says whether
to grow or shrink by one step.  Never above the ceiling, never below the floor or below what
is in use, and nothing during the cool-down after a change (so it does not flap).

`observe` asks a real Prometheus for the window's min/max utilisation (a subquery over the
ratio of the tenant's signal to its quota, so backfilled history counts too).  The signal is the
tenant's choice (spec.elastic.signal): `requests`, the quota's own used (what pods ask for, the
operator's yunshang_tenant_resource_usage), or `usage`, what its pods really use (the kubelets'
measurements recorded as yunshang:tenant_cpu_used:cores and yunshang:tenant_memory_used:bytes).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import urllib.parse
import urllib.request
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .models.quantity import format_quantity

ELASTIC_RESOURCES = ("cpu", "memory")
GRANULE = {"cpu": Decimal("0.1"), "memory": Decimal(64 * 2**20)}  # 100m, 64Mi


@dataclasses.dataclass(frozen=True)
class Policy:
    high: float = 0.8
    """Grow when utilisation stayed at or above this for the whole window."""
    low: float = 0.3
    """Shrink when utilisation stayed at or below this for the whole window."""
    step: float = 0.25
    """Grow or shrink by this fraction of the current quota."""
    window: str = "30m"
    """How long the utilisation must have stayed there (a Prometheus duration)."""
    cooldown: dt.timedelta = dt.timedelta(minutes=15)
    """No change this soon after the previous one."""
    min_samples: int = 5
    """Fewer samples than this in the window: no decision."""
    resolution: str = "1m"
    """How often in the window the utilisation is sampled (the subquery's step)."""


@dataclasses.dataclass(frozen=True)
class Observation:
    min_ratio: float
    max_ratio: float
    samples: int


@dataclasses.dataclass(frozen=True)
class Change:
    resource: str
    old: Decimal
    new: Decimal
    reason: str

    @property
    def direction(self) -> str:
        return "grow" if self.new > self.old else "shrink"

    def quantity(self) -> str:
        return format_quantity(self.new, binary=self.resource == "memory")


def _round(value: Decimal, granule: Decimal, mode: str) -> Decimal:
    return (value / granule).to_integral_value(mode) * granule


SIGNAL_WORDS = {"requests": "utilisation (requested over quota)", "usage": "use (measured over quota)"}


def decide(
    resource: str,
    current: Decimal,
    floor: Decimal,
    ceiling: Decimal,
    used: Decimal,
    obs: Observation | None,
    last_change: dt.datetime | None,
    now: dt.datetime,
    policy: Policy = Policy(),
    signal: str = "requests",
) -> Change | None:
    """One step or none; ``used`` (what pods request) is the least a shrink leaves, whatever the signal."""
    if obs is None or obs.samples < policy.min_samples:
        return None
    if any(math.isnan(x) or math.isinf(x) for x in (obs.min_ratio, obs.max_ratio)):
        return None
    if last_change is not None and now - last_change < policy.cooldown:
        return None
    granule = GRANULE.get(resource, Decimal(1))
    step = max(_round(current * Decimal(str(policy.step)), granule, ROUND_CEILING), granule)
    window = f"over {policy.window} (min {obs.min_ratio:.0%}, max {obs.max_ratio:.0%})"
    if obs.min_ratio >= policy.high and current < ceiling:
        new = min(ceiling, current + step)
        return Change(resource, current, new,
                      f"{resource} {SIGNAL_WORDS[signal]} stayed at or above {policy.high:.0%} {window}")
    if obs.max_ratio <= policy.low and current > floor:
        new = max(floor, _round(used, granule, ROUND_CEILING), _round(current - step, granule, ROUND_FLOOR))
        if new < current:
            return Change(resource, current, new,
                          f"{resource} {SIGNAL_WORDS[signal]} stayed at or below {policy.low:.0%} {window}")
    return None


def query(prometheus: str, promql: str, timeout: float = 10) -> list[dict]:
    url = prometheus.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus query failed: {body.get('error')}")
    return body["data"]["result"]


# what a tenant's pods really use, by resource (recorded from the kubelets' metrics: monitoring/rules)
MEASURED = {"cpu": "yunshang:tenant_cpu_used:cores", "memory": "yunshang:tenant_memory_used:bytes"}


def ratio_promql(tenant: str, resource: str, signal: str = "requests") -> str:
    """The tenant's ``signal`` for ``resource`` over its quota (hard), as PromQL."""
    sel = f'{{tenant="{tenant}",resource="{resource}"}}'
    hard = f"(yunshang_tenant_resource_limit{sel} > 0)"
    if signal == "usage":
        return f'sum by (tenant) ({MEASURED[resource]}{{tenant="{tenant}"}}) / on (tenant) sum by (tenant) {hard}'
    return f"yunshang_tenant_resource_usage{sel} / {hard}"


def observe(prometheus: str, tenant: str, resource: str, policy: Policy = Policy(),
            signal: str = "requests") -> Observation | None:
    ratio = f"({ratio_promql(tenant, resource, signal)})[{policy.window}:{policy.resolution}]"
    values = {}
    for fn in ("min_over_time", "max_over_time", "count_over_time"):
        res = query(prometheus, f"{fn}({ratio})")
        if not res:
            return None
        values[fn] = float(res[0]["value"][1])
    return Observation(values["min_over_time"], values["max_over_time"], int(values["count_over_time"]))


def measured(prometheus: str, window: str = "1h") -> dict[str, dict[str, float]]:
    """tenant -> {resource: what its pods really used on average over ``window``} (cores, bytes)."""
    out: dict[str, dict[str, float]] = {}
    for resource, series in MEASURED.items():
        for r in query(prometheus, f"avg_over_time({series}[{window}])"):
            out.setdefault(r["metric"].get("tenant", ""), {})[resource] = float(r["value"][1])
    return out
