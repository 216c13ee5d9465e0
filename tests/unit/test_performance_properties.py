"""绩效考评: the evaluation figures (yunshang.performance), as properties over random histories."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from yunshang import performance

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
ROLES = ("platform", "security", "finance")
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731

hours = st.integers(min_value=0, max_value=24 * 10)
role_decision = st.one_of(st.none(), st.tuples(st.sampled_from(["Approved", "Rejected"]), hours))


@st.composite
def tenants(draw):
    out = []
    for i in range(draw(st.integers(0, 6))):
        start = T0 + dt.timedelta(hours=draw(hours))
        sos = []
        for role in ROLES:
            d = draw(role_decision)
            if d:
                sos.append({"role": role, "decision": d[0], "by": "x", "round": 1, "reason": "r",
                            "at": iso(start + dt.timedelta(hours=d[1])), "quota": {}})
        out.append({"metadata": {"name": f"t{i}", "creationTimestamp": iso(start)}, "spec": {"signoffs": sos}})
    return out


@st.composite
def agreements(draw, names):
    out = []
    for i in range(draw(st.integers(0, 6))):
        start = T0 + dt.timedelta(hours=draw(hours))
        dec = draw(st.one_of(st.none(), hours))
        spec = {"consumer": draw(st.sampled_from(names)), "provider": draw(st.sampled_from(names))}
        if dec is not None:
            spec["decision"] = {"decision": "Approved", "by": "p", "at": iso(start + dt.timedelta(hours=dec))}
        score = draw(st.one_of(st.none(), st.integers(1, 5)))
        if score:
            spec["rating"] = {"score": score, "by": "c", "at": iso(start)}
        out.append({"metadata": {"name": f"a{i}", "creationTimestamp": iso(start)}, "spec": spec,
                    "status": {"phase": "Expired" if score else "Active"}})
    return out


@given(st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=50))
def test_quantiles_are_values_in_order(xs):
    med, p90 = performance.quantile(xs, 0.5), performance.quantile(xs, 0.9)
    assert med in xs and p90 in xs and min(xs) <= med <= p90 <= max(xs)
    assert performance.quantile([], 0.5) is None


@settings(max_examples=150)
@given(st.data())
def test_every_figure_is_consistent(data):
    ts = data.draw(tenants())
    names = [t["metadata"]["name"] for t in ts] or ["t0"]
    ags = data.draw(agreements(names))
    now = T0 + dt.timedelta(days=data.draw(st.integers(0, 30)))
    rows = {r.party: r for r in performance.report(ts, ags, [], [], {}, roles=ROLES, tenant_days=3,
                                                   agreement_days=5, now=now)}
    for r in rows.values():
        assert 0 <= r.decisions_pending <= r.decisions_owed and 0 <= r.decisions_overdue <= r.decisions_owed
        if r.decision_median_s is not None:
            assert r.decision_median_s <= r.decision_p90_s
        if r.ratings:
            assert 1 <= r.rating_avg <= 5
    # every role owes one decision per tenant round, unless another role's rejection ended it
    for role in ROLES:
        ended = sum(1 for t in ts if any(d["decision"] == "Rejected" for d in t["spec"]["signoffs"])
                    and not any(d["role"] == role for d in t["spec"]["signoffs"]))
        assert rows[f"role:{role}"].decisions_owed == len(ts) - ended
    # each agreement is owed by its provider and asked by its consumer
    assert sum(r.decisions_owed for p, r in rows.items() if not p.startswith("role:")) == len(ags)
    assert sum(r.requests_made for r in rows.values()) == len(ts) + len(ags)


def test_overdue_is_late_decided_or_late_pending():
    due = T0 + dt.timedelta(days=3)
    late = performance.Item("p", "tenant", "t", T0, T0 + dt.timedelta(days=4), due)
    on_time = performance.Item("p", "tenant", "t", T0, T0 + dt.timedelta(days=1), due)
    waiting = performance.Item("p", "tenant", "t", T0, None, due)
    assert late.overdue(T0) and not on_time.overdue(T0 + dt.timedelta(days=9))
    assert not waiting.overdue(T0 + dt.timedelta(days=2)) and waiting.overdue(T0 + dt.timedelta(days=4))
    assert late.seconds() == 4 * 86400 and waiting.seconds() is None


def test_utilisation_held_and_really_used_side_by_side():
    """What the quota holds (requests over hard) and what the pods really used (measured over hard);
    no measurement, no figure (never a made-up zero)."""
    from decimal import Decimal

    hard = {"cpu": Decimal("2"), "memory": Decimal(4 * 2**30)}
    usage = {"a": ({"cpu": Decimal("0.5"), "memory": Decimal(2**30)}, hard), "b": ({"cpu": Decimal("1")}, hard)}
    rows = {r.party: r for r in performance.report([], [], [], [], usage, roles=ROLES, tenant_days=3,
                                                   agreement_days=5, now=T0,
                                                   measured={"a": {"cpu": 1.5, "memory": float(2**30)}})}
    assert (rows["a"].cpu_utilisation, rows["a"].cpu_used) == (0.25, 0.75)
    assert (rows["a"].memory_utilisation, rows["a"].memory_used) == (0.25, 0.25)
    assert rows["b"].cpu_utilisation == 0.5 and rows["b"].cpu_used is None and rows["b"].memory_used is None
