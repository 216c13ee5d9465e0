"""Parallel sign-off (并联审批) and its time limits (限时办结), as pure functions of a tenant's spec.

A request is answered by every required reviewer role (stack config `yunshang:signoff.roles`,
default platform, security and finance), each on its own and in any order.  A round is
approved when every required role has approved it and rejected as soon as one rejects.  Round 1
is the tenant's request; a department asking for more quota than was approved opens the next
round (`spec.requestRound`), and until that round is approved the tenant keeps the quota of the
last approved one.  Each decision records the round and the quota it answered; the API server
keeps them append-only (policies.signoff_policy).

A tenant approved before parallel sign-off existed (`spec.approval`, also how the git-reviewed
catalog is created) counts as round 1 approved by every role for its quota as it is; the
operator writes that down as sign-offs once (`migrated`), so that a later round cannot lose it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Iterable, Sequence

from .models.tenant import Decision, Quota, SignOff, TenantSpec

DEFAULT_ROLES = ("platform", "security", "finance")
REVIEWER_GROUP_PREFIX = "yunshang:reviewer:"  # + role: the group whose members decide for that role
MIGRATED_REASON = "approved before parallel sign-off (spec.approval)"


def reviewer_group(role: str) -> str:
    return REVIEWER_GROUP_PREFIX + role


def roles_of(groups: Iterable[str]) -> list[str]:
    """The reviewer roles a caller holds, from its groups."""
    return sorted(g[len(REVIEWER_GROUP_PREFIX):] for g in groups if g.startswith(REVIEWER_GROUP_PREFIX))


class State(str, enum.Enum):
    Pending = "Pending"
    Approved = "Approved"
    Rejected = "Rejected"


@dataclasses.dataclass(frozen=True)
class RoleDecision:
    role: str
    decision: SignOff | None
    deadline: dt.datetime | None
    overdue: bool

    @property
    def state(self) -> State:
        if self.decision is None:
            return State.Pending
        return State(self.decision.decision.value)


@dataclasses.dataclass(frozen=True)
class Verdict:
    round: int
    state: State  # of the current round
    roles: tuple[RoleDecision, ...]
    approved_round: int | None  # the newest round every role approved (None: never approved)
    quota: Quota | None  # what may be provisioned: the asked quota, or the last approved one meanwhile
    rejection: SignOff | None = None

    @property
    def approved(self) -> bool:
        """Approved at least once: the tenant exists (perhaps with its previous quota)."""
        return self.approved_round is not None

    @property
    def waiting_for(self) -> list[str]:
        return [r.role for r in self.roles if r.decision is None]

    @property
    def overdue(self) -> list[str]:
        return [r.role for r in self.roles if r.overdue]

    def message(self) -> str:
        if self.state == State.Rejected and self.rejection is not None:
            what = "request" if self.round == 1 else f"quota request (round {self.round})"
            return f"{what} rejected by {self.rejection.role} ({self.rejection.by}): {self.rejection.reason}"
        if self.state == State.Pending:
            what = "sign-off" if self.round == 1 else f"sign-off of the quota request (round {self.round})"
            late = f"; overdue: {', '.join(self.overdue)}" if self.overdue else ""
            return f"waiting for {what} by {', '.join(self.waiting_for)}{late}"
        return "approved by " + ", ".join(r.role for r in self.roles)


def by_round(signoffs: Sequence[SignOff], roles: Sequence[str]) -> dict[int, dict[str, SignOff]]:
    """round -> role -> its decision (the first one recorded: the API server allows one per role and round)."""
    out: dict[int, dict[str, SignOff]] = {}
    for s in signoffs:
        if s.role in roles:
            out.setdefault(s.round, {}).setdefault(s.role, s)
    return out


def deadline(opened: dt.datetime | None, days: float) -> dt.datetime | None:
    return opened + dt.timedelta(days=days) if opened is not None and days > 0 else None


def verdict(spec: TenantSpec, roles: Sequence[str], *, opened: dt.datetime | None = None, days: float = 0,
            now: dt.datetime | None = None) -> Verdict:
    """Where the tenant's request stands.  `opened`: when the current round was opened (round 1:
    the tenant's creation); `days`: the time limit of each role's decision; `now`: for overdue."""
    roles = tuple(dict.fromkeys(roles))
    rounds = by_round(spec.signoffs, roles)
    legacy = spec.approval is not None and spec.approval.decision == Decision.Approved and not spec.signoffs
    cur = spec.request_round
    decided = rounds.get(cur, {})
    due = deadline(opened, days)
    role_decisions = tuple(RoleDecision(r, decided.get(r), due if r not in decided else None,
                                        r not in decided and due is not None and now is not None and now > due)
                           for r in roles)
    rejection = next((d for d in sorted(decided.values(), key=_when) if d.decision == Decision.Rejected), None)
    if legacy:
        state = State.Approved
    elif spec.approval is not None and spec.approval.decision == Decision.Rejected and not spec.signoffs:
        state, rejection = State.Rejected, SignOff(role="platform", decision=Decision.Rejected, by=spec.approval.by,
                                                   reason=spec.approval.reason, round=cur, quota=spec.quota,
                                                   at=spec.approval.at)
    elif rejection is not None:
        state = State.Rejected
    elif all(r in decided and decided[r].decision == Decision.Approved for r in roles):
        state = State.Approved
    else:
        state = State.Pending
    approved_rounds = [n for n, ds in rounds.items()
                       if all(r in ds and ds[r].decision == Decision.Approved for r in roles)]
    if legacy:
        approved_rounds.append(cur)
    last = max(approved_rounds) if approved_rounds else None
    if state == State.Approved:
        quota = spec.quota
    elif last is not None:
        signed = rounds[last][roles[0]].quota if last in rounds and roles else spec.quota
        quota = spec.quota if not spec.quota.fits_within(signed) else signed
    else:
        quota = None
    return Verdict(cur, state, role_decisions, last, quota, rejection)


def _when(s: SignOff) -> dt.datetime:
    return s.at or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def migrated(spec: TenantSpec, roles: Sequence[str]) -> list[SignOff]:
    """The sign-offs that stand for a legacy approval: every role, round 1... the current round, this quota."""
    a = spec.approval
    assert a is not None and a.decision == Decision.Approved
    return [SignOff(role=r, decision=Decision.Approved, by=a.by, at=a.at, reason=MIGRATED_REASON,
                    round=spec.request_round, quota=spec.quota) for r in dict.fromkeys(roles)]


def decision_seconds(opened: dt.datetime | None, decided: SignOff) -> float | None:
    """How long a role took: from the round's opening to its decision."""
    if opened is None or decided.at is None:
        return None
    return max(0.0, (decided.at - opened).total_seconds())
