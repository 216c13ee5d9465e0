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


def _util(used: Mapping[str, Decimal], hard: Mapping[str, Decimal], key: str) -> float | None:
    h = hard.get(key)
    return float(used.get(key, Decimal(0)) / h) if h else None


def report(tenants: Sequence[Mapping[str, Any]], agreements: Sequence[Mapping[str, Any]],
           offers: Sequence[Mapping[str, Any]], audit: Sequence[Mapping[str, Any]],
           usage: Mapping[str, tuple[Mapping[str, Decimal], Mapping[str, Decimal]]], *, roles: Sequence[str],
           tenant_days: float, agreement_days: float, now: dt.datetime,
           since: dt.datetime | None = None, measured: Mapping[str, Mapping[str, float]] | None = None) -> list[Row]:
    """One row per department and reviewer role.  `audit`: records as dicts (action, time,
    tenants); `usage`: tenant -> (used, hard) by resource ("cpu", "memory"), what the quota holds;
    `measured`: tenant -> {resource: what its pods really used (cores, bytes)}, from Prometheus;
    `since`: only what was requested (decisions, requests), rated or quarantined from then on."""
    by_name = {o["metadata"]["name"]: o for o in offers}
    t_owed, t_asked = tenant_items(tenants, roles, tenant_days)
    a_owed, a_asked = agreement_items(agreements, by_name, agreement_days)
    keep = (lambda i: since is None or (i.opened is not None and i.opened >= since))
    rows: dict[str, Row] = {t["metadata"]["name"]: Row(t["metadata"]["name"]) for t in tenants}
    rows.update({f"role:{r}": Row(f"role:{r}") for r in roles})

    def row(party: str) -> Row:
        return rows.setdefault(party, Row(party))

    for party, items in _group(i for i in t_asked + a_asked if keep(i)).items():
        r, secs = row(party), [s for s in (i.seconds() for i in items) if s is not None]
        r.requests_made, r.request_median_s, r.request_p90_s = len(items), quantile(secs, 0.5), quantile(secs, 0.9)
    for party, items in _group(i for i in t_owed + a_owed if keep(i)).items():
        r, secs = row(party), [s for s in (i.seconds() for i in items) if s is not None]
        r.decisions_owed = len(items)
        r.decisions_pending = sum(1 for i in items if i.decided is None)
        r.decisions_overdue = sum(1 for i in items if i.overdue(now))
        r.decision_median_s, r.decision_p90_s = quantile(secs, 0.5), quantile(secs, 0.9)
    for name, (used, hard) in usage.items():
        r = row(name)
        r.cpu_utilisation, r.memory_utilisation = _util(used, hard, "cpu"), _util(used, hard, "memory")
        if measured is not None and name in measured:
            real = {k: Decimal(str(v)) for k, v in measured[name].items()}
            r.cpu_used, r.memory_used = _util(real, hard, "cpu"), _util(real, hard, "memory")
    for o in offers:
        row((o.get("spec") or {}).get("provider", "")).offers += 1
    scores: dict[str, list[int]] = {}
    for a in agreements:
        spec, phase = a.get("spec") or {}, (a.get("status") or {}).get("phase")
        if phase in ("Active", "Expired", "Revoked"):
            row(spec.get("provider", "")).agreements_offered += 1
            row(spec.get("consumer", "")).agreements_consumed += 1
        rating = spec.get("rating") or {}
        if rating and (since is None or (_time(rating.get("at")) or now) >= since):
            scores.setdefault(spec.get("provider", ""), []).append(int(rating["score"]))
    for party, xs in scores.items():
        r = row(party)
        r.ratings, r.rating_avg = len(xs), round(sum(xs) / len(xs), 2)
    for rec in audit:
        if rec.get("action") == "TenantQuarantined" and (since is None or (_time(rec.get("time")) or now) >= since):
            for t in rec.get("tenants") or []:
                row(t).quarantines += 1
    return sorted(rows.values(), key=lambda r: (r.party.startswith("role:"), r.party))


def _group(items: Iterable[Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {}
    for i in items:
        out.setdefault(i.party, []).append(i)
    return out
