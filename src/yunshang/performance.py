"""绩效考评 / 好差评: how fast and how well each department serves, as pure functions of what the
cluster holds (tenants with their sign-offs, agreements, offers, audit records, quota usage).

A *decision* is something a party owed: a reviewer role's sign-off of a tenant's round, or a
provider's decision on an agreement.  It opened when the request did, was due a number of days
later (stack config yunshang:signoff), and was decided at the time its record says (or is still
pending).  A *request* is the other side: a department's tenant round or agreement, answered
when its verdict was reached.  `report` turns them into one row per party: departments by tenant
name, reviewer roles as `role:<name>`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from .signoff import MIGRATED_REASON



def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Item:
    """One decision owed (or one request made) by `party`."""

    party: str
    kind: str  # tenant | agreement
    name: str
    opened: dt.datetime | None
    decided: dt.datetime | None
    due: dt.datetime | None

    def seconds(self) -> float | None:
        if self.opened is None or self.decided is None:
            return None
        return max(0.0, (self.decided - self.opened).total_seconds())

    def overdue(self, now: dt.datetime) -> bool:
        """Decided after its deadline, or still pending past it."""
        return self.due is not None and (self.decided or now) > self.due


def quantile(xs: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (q in (0, 1]); None for no values."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def tenant_items(tenants: Iterable[Mapping[str, Any]], roles: Sequence[str],
                 days: float) -> tuple[list[Item], list[Item]]:
    """(decisions owed by reviewer roles, requests made by departments) of every tenant round."""
    owed, asked = [], []
    for t in tenants:
        name, spec, st = t["metadata"]["name"], t.get("spec") or {}, t.get("status") or {}
        created = _time(t["metadata"].get("creationTimestamp"))
        so_status = st.get("signoff") or {}
        rounds: dict[int, list[dict]] = {}
        for d in spec.get("signoffs") or []:
            if d.get("reason") != MIGRATED_REASON:  # a legacy approval has no timing to evaluate
                rounds.setdefault(int(d.get("round") or 1), []).append(d)
        current = int(spec.get("requestRound") or 1)
        if current not in rounds and not any(d.get("reason") == MIGRATED_REASON for d in spec.get("signoffs") or []):
            rounds.setdefault(current, [])
        for rnd, ds in sorted(rounds.items()):
            opened = created if rnd == 1 else (_time(so_status.get("opened")) if so_status.get("round") == rnd else None)
            due = opened + dt.timedelta(days=days) if opened else None
            by_role = {d["role"]: d for d in ds if d.get("role") in roles}
            rejection = min((d for d in by_role.values() if d.get("decision") == "Rejected"),
                            key=lambda d: _time(d.get("at")) or dt.datetime.max.replace(tzinfo=dt.timezone.utc),
                            default=None)
            for role in roles:
                d = by_role.get(role)
                if d is None and rejection is not None:
                    continue  # the round ended with another role's rejection: nothing is owed any more
                owed.append(Item(f"role:{role}", "tenant", name, opened, _time(d.get("at")) if d else None, due))
            if rejection is not None:
                verdict = _time(rejection.get("at"))
            elif all(r in by_role and by_role[r].get("decision") == "Approved" for r in roles):
                verdict = max((_time(by_role[r].get("at")) for r in roles if _time(by_role[r].get("at"))), default=None)
            else:
                verdict = None
            asked.append(Item(name, "tenant", name, opened, verdict, due))
    return owed, asked


def agreement_items(agreements: Iterable[Mapping[str, Any]], offers: Mapping[str, Mapping[str, Any]],
                    days: float) -> tuple[list[Item], list[Item]]:
    """(decisions owed by providers, requests made by consumers); an offer that needs no approval
    owes none."""
    owed, asked = [], []
    for a in agreements:
        spec = a.get("spec") or {}
        offer = offers.get(spec.get("offer") or "")
        if offer is not None and not (offer.get("spec") or {}).get("approvalRequired", True):
            continue
        opened = _time(a["metadata"].get("creationTimestamp"))
        decided = _time((spec.get("decision") or {}).get("at")) if spec.get("decision") else None
        due = opened + dt.timedelta(days=days) if opened else None
        name = a["metadata"]["name"]
        owed.append(Item(spec.get("provider", ""), "agreement", name, opened, decided, due))
        asked.append(Item(spec.get("consumer", ""), "agreement", name, opened, decided, due))
    return owed, asked


@dataclasses.dataclass
class Row:
    party: str
    requests_made: int = 0
    request_median_s: float | None = None
    request_p90_s: float | None = None
    decisions_owed: int = 0
    decisions_pending: int = 0
    decisions_overdue: int = 0
    decision_median_s: float | None = None
    decision_p90_s: float | None = None
    cpu_utilisation: float | None = None  # requested / quota, 0..1 (the quota's used over hard)
    memory_utilisation: float | None = None
    cpu_used: float | None = None  # really used / quota (the kubelets' measurements; real nodes only)
    memory_used: float | None = None
    offers: int = 0
    agreements_offered: int = 0  # as provider
    agreements_consumed: int = 0  # as consumer
    quarantines: int = 0
    rating_avg: float | None = None
    ratings: int = 0


@dataclasses.dataclass
class Facts:
    """What one party's row is computed from: its requests and decisions themselves (so that a
    roll-up takes medians over all of them, not a median of medians), its quota as (used, hard)
    and measured use as (really used, hard) by resource, its counts and its ratings' scores."""

    party: str
    requests: list[Item] = dataclasses.field(default_factory=list)
    decisions: list[Item] = dataclasses.field(default_factory=list)
    quota: dict[str, tuple[Decimal, Decimal]] = dataclasses.field(default_factory=dict)
    real: dict[str, tuple[Decimal, Decimal]] = dataclasses.field(default_factory=dict)
    offers: int = 0
    agreements_offered: int = 0
    agreements_consumed: int = 0
    quarantines: int = 0
    scores: list[int] = dataclasses.field(default_factory=list)


def _pair(used: Mapping[str, Decimal], hard: Mapping[str, Decimal], key: str) -> dict[str, tuple[Decimal, Decimal]]:
    h = hard.get(key)
    return {key: (Decimal(used.get(key, Decimal(0))), Decimal(h))} if h else {}


def facts(tenants: Sequence[Mapping[str, Any]], agreements: Sequence[Mapping[str, Any]],
          offers: Sequence[Mapping[str, Any]], audit: Sequence[Mapping[str, Any]],
          usage: Mapping[str, tuple[Mapping[str, Decimal], Mapping[str, Decimal]]], *, roles: Sequence[str],
          tenant_days: float, agreement_days: float,
          since: dt.datetime | None = None, measured: Mapping[str, Mapping[str, float]] | None = None,
          now: dt.datetime | None = None) -> dict[str, Facts]:
    """party -> its Facts, every department (tenant) and reviewer role (`role:<name>`) among them;
    the arguments as `report`'s (``now``: when a rating or quarantine without a time counts as made)."""
    by_name = {o["metadata"]["name"]: o for o in offers}
    t_owed, t_asked = tenant_items(tenants, roles, tenant_days)
    a_owed, a_asked = agreement_items(agreements, by_name, agreement_days)
    keep = (lambda i: since is None or (i.opened is not None and i.opened >= since))
    when = now or dt.datetime.now(dt.timezone.utc)
    out: dict[str, Facts] = {t["metadata"]["name"]: Facts(t["metadata"]["name"]) for t in tenants}
    out.update({f"role:{r}": Facts(f"role:{r}") for r in roles})

    def of(party: str) -> Facts:
        return out.setdefault(party, Facts(party))

    for i in t_asked + a_asked:
        if keep(i):
            of(i.party).requests.append(i)
    for i in t_owed + a_owed:
        if keep(i):
            of(i.party).decisions.append(i)
    for name, (used, hard) in usage.items():
        f = of(name)
        f.quota = {**_pair(used, hard, "cpu"), **_pair(used, hard, "memory")}
        if measured is not None and name in measured:
            real = {k: Decimal(str(v)) for k, v in measured[name].items()}
            f.real = {**_pair(real, hard, "cpu"), **_pair(real, hard, "memory")}
    for o in offers:
        of((o.get("spec") or {}).get("provider", "")).offers += 1
    for a in agreements:
        spec, phase = a.get("spec") or {}, (a.get("status") or {}).get("phase")
        if phase in ("Active", "Expired", "Revoked"):
            of(spec.get("provider", "")).agreements_offered += 1
            of(spec.get("consumer", "")).agreements_consumed += 1
        rating = spec.get("rating") or {}
        if rating and (since is None or (_time(rating.get("at")) or when) >= since):
            of(spec.get("provider", "")).scores.append(int(rating["score"]))
    for rec in audit:
        if rec.get("action") == "TenantQuarantined" and (since is None or (_time(rec.get("time")) or when) >= since):
            for t in rec.get("tenants") or []:
                of(t).quarantines += 1
    return out


def merge(party: str, parts: Iterable[Facts]) -> Facts:
    """The facts of several parties as one: items and scores together, quotas and counts summed."""
    m = Facts(party)
    for f in parts:
        m.requests += f.requests
        m.decisions += f.decisions
        for mine, theirs in ((m.quota, f.quota), (m.real, f.real)):
            for k, (u, h) in theirs.items():
                u0, h0 = mine.get(k, (Decimal(0), Decimal(0)))
                mine[k] = (u0 + u, h0 + h)
        m.offers += f.offers
        m.agreements_offered += f.agreements_offered
        m.agreements_consumed += f.agreements_consumed
        m.quarantines += f.quarantines
        m.scores += f.scores
    return m


def _ratio(pairs: Mapping[str, tuple[Decimal, Decimal]], key: str) -> float | None:
    u, h = pairs.get(key, (Decimal(0), Decimal(0)))
    return float(u / h) if h else None


def fill(r: Row, f: Facts, now: dt.datetime) -> Row:
    """``r`` with the figures of ``f``: medians and p90 over its items, utilisation the ratio of
    the sums, the rating the average of every score."""
    if f.requests:
        secs = [s for s in (i.seconds() for i in f.requests) if s is not None]
        r.requests_made, r.request_median_s, r.request_p90_s = len(f.requests), quantile(secs, 0.5), quantile(secs, 0.9)
    if f.decisions:
        secs = [s for s in (i.seconds() for i in f.decisions) if s is not None]
        r.decisions_owed = len(f.decisions)
        r.decisions_pending = sum(1 for i in f.decisions if i.decided is None)
        r.decisions_overdue = sum(1 for i in f.decisions if i.overdue(now))
        r.decision_median_s, r.decision_p90_s = quantile(secs, 0.5), quantile(secs, 0.9)
    if f.quota:
        r.cpu_utilisation, r.memory_utilisation = _ratio(f.quota, "cpu"), _ratio(f.quota, "memory")
    if f.real:
        r.cpu_used, r.memory_used = _ratio(f.real, "cpu"), _ratio(f.real, "memory")
    r.offers, r.agreements_offered, r.agreements_consumed = f.offers, f.agreements_offered, f.agreements_consumed
    r.quarantines = f.quarantines
    if f.scores:
        r.ratings, r.rating_avg = len(f.scores), round(sum(f.scores) / len(f.scores), 2)
    return r


def rows(all_facts: Mapping[str, Facts], now: dt.datetime) -> list[Row]:
    """One row per party: departments by name, then reviewer roles."""
    return sorted((fill(Row(p), f, now) for p, f in all_facts.items()),
                  key=lambda r: (r.party.startswith("role:"), r.party))


def report(tenants: Sequence[Mapping[str, Any]], agreements: Sequence[Mapping[str, Any]],
           offers: Sequence[Mapping[str, Any]], audit: Sequence[Mapping[str, Any]],
           usage: Mapping[str, tuple[Mapping[str, Decimal], Mapping[str, Decimal]]], *, roles: Sequence[str],
           tenant_days: float, agreement_days: float, now: dt.datetime,
           since: dt.datetime | None = None, measured: Mapping[str, Mapping[str, float]] | None = None) -> list[Row]:
    """One row per department and reviewer role.  `audit`: records as dicts (action, time,
    tenants); `usage`: tenant -> (used, hard) by resource ("cpu", "memory"), what the quota holds;
    `measured`: tenant -> {resource: what its pods really used (cores, bytes)}, from Prometheus;
    `since`: only what was requested (decisions, requests), rated or quarantined from then on."""
    return rows(facts(tenants, agreements, offers, audit, usage, roles=roles, tenant_days=tenant_days,
                      agreement_days=agreement_days, since=since, measured=measured, now=now), now)


# ------------------------------------------------------------------------------- roll-ups

@dataclasses.dataclass
class Group(Row):
    """A roll-up row: ``party`` holds the level (`--by level`) or the tenant whose subtree it sums
    (`--by parent`); ``level`` that level (or the tenant's); ``tenants``: how many parties it sums.
    Reviewer roles (`role:<name>`) are no tenants: a roll-up leaves them out."""

    level: str = ""
    tenants: int = 0


def _departments(all_facts: Mapping[str, Facts]) -> dict[str, Facts]:
    return {p: f for p, f in all_facts.items() if not p.startswith("role:")}


def by_level(all_facts: Mapping[str, Facts], levels: Mapping[str, str], now: dt.datetime) -> list[Group]:
    """One row per level (``levels``: tenant -> level; a party without one is of level ""), in level
    order, rolling up the parties of that level."""
    from .tree import level_key

    deps = _departments(all_facts)
    out = []
    for lv in sorted({levels.get(p, "") for p in deps}, key=level_key):
        members = [f for p, f in sorted(deps.items()) if levels.get(p, "") == lv]
        out.append(fill(Group(lv, level=lv, tenants=len(members)), merge(lv, members), now))
    return out


def by_parent(all_facts: Mapping[str, Facts], parents: Mapping[str, str | None], levels: Mapping[str, str],
              now: dt.datetime) -> list[Group]:
    """One row per tenant that has children (``parents``: tenant -> the parent it names), rolling up
    its whole subtree: itself and all its descendants."""
    from .tree import children_of, roll_up_keys, subtree

    deps = _departments(all_facts)
    kids = children_of(parents)
    out = []
    for name in roll_up_keys(parents, levels):
        members = [deps[n] for n in subtree(name, kids) if n in deps]
        out.append(fill(Group(name, level=levels.get(name, ""), tenants=len(members)), merge(name, members), now))
    return out


def _group(items: Iterable[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for i in items:
        out.setdefault(i.party, []).append(i)
    return out
