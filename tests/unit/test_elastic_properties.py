"""Property tests of the elastic quota decision."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, strategies as st

from yunshang.elastic import GRANULE, Observation, Policy, decide

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
amounts = st.integers(1, 4000).map(lambda n: Decimal(n) / 10)  # 0.1 .. 400 cpu
ratios = st.floats(0, 2, allow_nan=False)


@given(amounts, amounts, amounts, st.floats(0, 1.5), ratios, ratios, st.integers(0, 100),
       st.none() | st.integers(0, 7200).map(lambda s: NOW - dt.timedelta(seconds=s)))
def test_bounds_are_never_crossed(current, floor, ceiling, used_frac, a, b, samples, last):
    floor, ceiling = min(floor, current), max(ceiling, current)
    used = (current * Decimal(str(used_frac))).quantize(Decimal("0.001"))
    obs = Observation(min(a, b), max(a, b), samples)
    policy = Policy()
    c = decide("cpu", current, floor, ceiling, used, obs, last, NOW, policy)
    if c is None:
        return
    assert c.new != c.old
    assert floor <= c.new <= ceiling
    if c.direction == "shrink":
        assert c.new >= used and obs.max_ratio <= policy.low
    else:
        assert obs.min_ratio >= policy.high
        assert c.new - c.old <= max(current * Decimal("0.25"), GRANULE["cpu"]) + GRANULE["cpu"]
    assert samples >= policy.min_samples
    assert last is None or NOW - last >= policy.cooldown


def test_cooldown_blocks_flapping():
    obs = Observation(0.95, 0.99, 30)
    assert decide("cpu", Decimal(8), Decimal(4), Decimal(12), Decimal(7), obs, NOW - dt.timedelta(minutes=1), NOW) is None
    c = decide("cpu", Decimal(8), Decimal(4), Decimal(12), Decimal(7), obs, NOW - dt.timedelta(hours=1), NOW)
    assert c and c.new == Decimal(10) and "95%" in c.reason


def test_in_between_utilisation_changes_nothing():
    assert decide("cpu", Decimal(8), Decimal(4), Decimal(12), Decimal(4), Observation(0.4, 0.85, 30), None, NOW) is None


def test_memory_steps_in_64mi_granules():
    gi = Decimal(2**30)
    c = decide("memory", 16 * gi, 8 * gi, 32 * gi, 15 * gi, Observation(0.9, 0.95, 30), None, NOW)
    assert c.quantity() == "20Gi"


def test_not_enough_samples_or_no_data():
    assert decide("cpu", Decimal(8), Decimal(4), Decimal(12), Decimal(1), None, None, NOW) is None
    assert decide("cpu", Decimal(8), Decimal(4), Decimal(12), Decimal(1), Observation(0.0, 0.1, 2), None, NOW) is None


def test_the_policy_signal_chooses_the_series_and_the_words():
    """requests: the quota's own used over hard; usage: what the kubelets measured over hard; the
    change's reason names which (so the audit record says what drove it)."""
    from yunshang.elastic import ratio_promql

    requested = ratio_promql("gy-police", "cpu", "requests")
    used = ratio_promql("gy-police", "memory", "usage")
    assert requested.startswith('yunshang_tenant_resource_usage{tenant="gy-police",resource="cpu"}')
    assert "yunshang:tenant_memory_used:bytes{tenant=\"gy-police\"}" in used and "resource_usage" not in used
    assert 'yunshang_tenant_resource_limit{tenant="gy-police",resource="memory"}' in used
    now = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)
    obs = Observation(0.9, 1.0, 10)
    grow = decide("cpu", Decimal("1"), Decimal("1"), Decimal("2"), Decimal("0.1"), obs, None, now, Policy(),
                  "usage")
    assert grow and grow.new > grow.old and "use (measured over quota)" in grow.reason
    assert "requested over quota" in decide("cpu", Decimal("1"), Decimal("1"), Decimal("2"), Decimal("0.1"), obs,
                                            None, now, Policy()).reason
