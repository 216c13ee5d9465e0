"""Parallel sign-off and time limits (yunshang.signoff): properties of the pure state machine."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from factories import request
from yunshang import signoff
from yunshang.models.tenant import TenantSpec

ROLES = ("platform", "security", "finance")
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.timezone.utc)
decisions = st.dictionaries(st.sampled_from(ROLES), st.sampled_from(["Approved", "Rejected"]))


def spec_with(decided: dict[str, str], order: list[str], round_: int = 1, quota=None, history=()) -> TenantSpec:
    base = request()
    if quota:
        base["quota"] = {**base["quota"], **quota}
    base["requestRound"] = round_
    sos = list(history)
    for i, role in enumerate(order):
        if role in decided:
            sos.append({"role": role, "decision": decided[role], "by": f"{role}-1", "round": round_,
                        "reason": "no" if decided[role] == "Rejected" else "", "quota": base["quota"],
                        "at": (T0 + dt.timedelta(hours=i + 1)).isoformat()})
    base["signoffs"] = sos
    return TenantSpec.model_validate(base)


@settings(max_examples=200)
@given(decisions, st.permutations(ROLES))
def test_order_does_not_matter_and_one_rejection_rejects(decided, order):
    v = signoff.verdict(spec_with(decided, list(order)), ROLES)
    again = signoff.verdict(spec_with(decided, list(reversed(order))), ROLES)
    assert (v.state, v.approved, v.waiting_for) == (again.state, again.approved, again.waiting_for)
    if "Rejected" in decided.values():
        assert v.state == signoff.State.Rejected and not v.approved and v.quota is None
        assert v.rejection.decision.value == "Rejected" and "rejected by" in v.message()
    elif len(decided) == len(ROLES):
        assert v.state == signoff.State.Approved and v.approved and v.quota is not None
    else:
        assert v.state == signoff.State.Pending and not v.approved
        assert v.waiting_for == [r for r in ROLES if r not in decided]


@given(st.floats(min_value=0.5, max_value=30), st.floats(min_value=0, max_value=60 * 24 * 3600), decisions)
def test_deadline_and_overdue(days, elapsed, decided):
    now = T0 + dt.timedelta(seconds=elapsed)
    v = signoff.verdict(spec_with(decided, list(ROLES)), ROLES, opened=T0, days=days, now=now)
    due = T0 + dt.timedelta(days=days)
    for r in v.roles:
        if r.role in decided:
            assert r.deadline is None and not r.overdue
        else:
            assert r.deadline == due and r.overdue == (now > due)


def test_a_quota_request_keeps_the_approved_quota_until_every_role_signs():
    approved_round1 = [{"role": r, "decision": "Approved", "by": "x", "round": 1, "quota": request()["quota"],
                        "at": T0.isoformat()} for r in ROLES]
    more = {"cpu": "16"}
    pending = signoff.verdict(spec_with({"platform": "Approved"}, list(ROLES), 2, more, approved_round1), ROLES)
    assert pending.approved and pending.state == signoff.State.Pending and pending.approved_round == 1
    assert pending.quota.cpu == request()["quota"]["cpu"]  # the round-1 quota meanwhile
    assert "round 2" in pending.message() and pending.waiting_for == ["security", "finance"]
    done = signoff.verdict(spec_with(dict.fromkeys(ROLES, "Approved"), list(ROLES), 2, more, approved_round1), ROLES)
    assert done.state == signoff.State.Approved and done.quota.cpu == "16" and done.approved_round == 2
    refused = signoff.verdict(spec_with({"finance": "Rejected"}, list(ROLES), 2, more, approved_round1), ROLES)
    assert refused.approved and refused.state == signoff.State.Rejected and refused.quota.cpu == request()["quota"]["cpu"]


def test_legacy_approval_counts_as_every_role_and_migrates_to_round_one():
    base = request()
    base["approval"] = {"decision": "Approved", "by": "bureau.chen", "at": T0.isoformat()}
    spec = TenantSpec.model_validate(base)
    assert signoff.verdict(spec, ROLES).state == signoff.State.Approved
    moved = signoff.migrated(spec, ROLES)
    assert [m.role for m in moved] == list(ROLES) and {m.round for m in moved} == {1}
    spec2 = spec.model_copy(update={"signoffs": moved})
    assert signoff.verdict(spec2, ROLES).state == signoff.State.Approved


def test_roles_of_groups():
    assert signoff.roles_of(["yunshang:departments", "yunshang:reviewer:security", "yunshang:reviewer:finance"]) == [
        "finance", "security"]
