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


# ------------------------------------------------------------------ roll-ups by level and by parent

COUNTS = ("requests_made", "decisions_owed", "decisions_pending", "decisions_overdue", "offers",
          "agreements_offered", "agreements_consumed", "quarantines", "ratings")
LEVELS = ("province", "city", "county", "township", "village")


@st.composite
def hierarchies(draw, names):
    """parents (each tenant's parent one that comes before it, or none) and levels, one below the parent's."""
    parents, levels = {}, {}
    for i, n in enumerate(names):
        parents[n] = draw(st.one_of(st.none(), st.sampled_from(names[:i]))) if i else None
        levels[n] = LEVELS[min(LEVELS.index(levels[parents[n]]) + 1, 4)] if parents[n] else draw(st.sampled_from(LEVELS))
    return parents, levels


def _secs(items):
    return [s for s in (i.seconds() for i in items) if s is not None]


@settings(max_examples=100)
@given(st.data())
def test_roll_ups_add_up_and_take_medians_over_every_item(data):
    from decimal import Decimal

    ts = data.draw(tenants())
    names = [t["metadata"]["name"] for t in ts] or ["t0"]
    ags = data.draw(agreements(names))
    usage = {n: ({"cpu": Decimal(data.draw(st.integers(0, 4)))}, {"cpu": Decimal(data.draw(st.integers(0, 4)))})
             for n in names}
    audit = [{"action": "TenantQuarantined", "time": iso(T0), "tenants": names[:1]}]
    parents, levels = data.draw(hierarchies(names))
    now = T0 + dt.timedelta(days=data.draw(st.integers(0, 30)))
    facts = performance.facts(ts, ags, [], audit, usage, roles=ROLES, tenant_days=3, agreement_days=5, now=now)
    rows = performance.rows(facts, now)
    departments = [r for r in rows if not r.party.startswith("role:")]
    by_level = performance.by_level(facts, levels, now)
    assert [g.level for g in by_level] == [lv for lv in LEVELS if lv in {levels[n] for n in names}]
    for f in COUNTS:  # reviewer roles are no tenants: the level rows share out the departments' rows
        assert sum(getattr(g, f) for g in by_level) == sum(getattr(r, f) for r in departments)
    for g in by_level:  # medians over the union of the items, not a median of medians
        members = [facts[n] for n in names if levels[n] == g.level]
        decided = _secs([i for m in members for i in m.decisions])
        assert g.decision_median_s == performance.quantile(decided, 0.5)
        assert g.decision_p90_s == performance.quantile(decided, 0.9)
        hard = sum(m.quota["cpu"][1] for m in members if "cpu" in m.quota)
        used = sum(m.quota["cpu"][0] for m in members if "cpu" in m.quota)
        assert g.cpu_utilisation == (float(used / hard) if hard else None)  # the ratio of the sums
        scores = [s for m in members for s in m.scores]
        assert g.rating_avg == (round(sum(scores) / len(scores), 2) if scores else None)
    groups = {g.party: g for g in performance.by_parent(facts, parents, levels, now)}
    own = {r.party: r for r in departments}
    kids = {p: [n for n in names if parents[n] == p] for p in names}
    assert set(groups) == {p for p, k in kids.items() if k}
    for name, g in groups.items():  # its own row plus its children's roll-ups
        parts = [own[name]] + [groups.get(c, own[c]) for c in kids[name]]
        for f in COUNTS:
            assert getattr(g, f) == sum(getattr(p, f) for p in parts)
        weights = [(p.rating_avg, p.ratings) for p in parts if p.ratings]
        if weights:  # the rating: the children's averages weighted by how many ratings each has
            exact = sum(a * n for a, n in weights) / sum(n for _, n in weights)
            assert abs(g.rating_avg - exact) < 0.01


def test_a_roll_up_of_one_party_is_its_row():
    from decimal import Decimal

    t = {"metadata": {"name": "a", "creationTimestamp": iso(T0)},
         "spec": {"signoffs": [{"role": r, "decision": "Approved", "by": "x", "round": 1,
                                "at": iso(T0 + dt.timedelta(hours=5)), "quota": {}} for r in ROLES]}}
    usage = {"a": ({"cpu": Decimal(1)}, {"cpu": Decimal(4)})}
    facts = performance.facts([t], [], [], [], usage, roles=ROLES, tenant_days=3, agreement_days=5, now=T0)
    [row] = [r for r in performance.rows(facts, T0) if r.party == "a"]
    [g] = performance.by_level(facts, {"a": "county"}, T0)
    assert (g.party, g.level, g.tenants) == ("county", "county", 1)
    assert {k: v for k, v in vars(g).items() if k not in ("party", "level", "tenants")} == \
        {k: v for k, v in vars(row).items() if k != "party"}
    assert g.request_median_s == 5 * 3600 and g.cpu_utilisation == 0.25
