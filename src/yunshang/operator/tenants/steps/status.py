"""Step 5: the tenant's status, through the typed model, and whether it changed for real."""
from __future__ import annotations

import datetime as dt
from typing import Any

from .... import tenancy
from ....models.tenant import Phase, TenantSpec, TenantStatus


def condition(ok: bool, reason: str, message: str, previous: dict) -> dict:
    prev = next((c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = "True" if ok else "False"
    when = prev["lastTransitionTime"] if prev and prev.get("status") == status and prev.get("lastTransitionTime") \
        else dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": when}


def signoff(v, opened: dt.datetime | None) -> dict[str, Any]:
    """Each role's decision on the current round (yunshang.signoff.Verdict), as the status keeps it."""
    def role(r) -> dict[str, Any]:
        d = r.decision
        return {"role": r.role, "decision": r.state.value, "by": d.by if d else "", "at": d.at if d else None,
                "reason": d.reason if d else "", "deadline": r.deadline, "overdue": r.overdue}
    return {"round": v.round, "state": v.state.value, "opened": opened, "approvedRound": v.approved_round,
            "roles": [role(r) for r in v.roles]}


def provisioned(spec: TenantSpec, review: tenancy.Review, generation: int, grace_days: int,
                previous: dict, signoff: dict | None = None, pending: str | None = None) -> dict[str, Any]:
    phase = tenancy.phase_of(spec, provisioned=True, lapsed=review.lapsed)
    if spec.quarantine:
        msg = f"quarantined: {spec.quarantine.reason}"
    elif spec.suspended:
        msg = f"suspended: {spec.suspend_reason or 'by the platform bureau'}"
    elif review.lapsed:
        msg = tenancy.review_message(spec.review_date, grace_days)
    else:
        msg = f"{len(spec.namespaces)} namespace(s) provisioned"
    if pending:  # a quota request waiting for (or refused by) the reviewers
        msg = f"{msg}; {pending}"
    extra = {"signoff": signoff} if signoff else {}
    out = typed(phase, msg, generation, namespace_count=len(spec.namespaces),
                conditions=[condition(True, phase.value, msg, previous)], **extra)
    if not signoff:
        out["signoff"] = None  # the merge patch removes what the open round showed
    return out


def typed(phase: Phase, message: str, generation: int, **fields: Any) -> dict[str, Any]:
    """The status as the CRD stores it, validated by TenantStatus."""
    st = TenantStatus.model_validate({"phase": phase, "message": message, "observedGeneration": generation, **fields})
    out = st.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    out.setdefault("phase", phase.value)
    return out


def changed(want: dict, have: dict) -> bool:
    """A real change: phase, message, generation, namespace count or the Ready condition's status."""
    def essence(s: dict) -> tuple:
        conds = tuple((c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
                      for c in s.get("conditions") or [])
        so = s.get("signoff") or {}
        roles = tuple((r.get("role"), r.get("decision"), r.get("overdue", False)) for r in so.get("roles") or [])
        return (s.get("phase"), s.get("message"), s.get("observedGeneration"), s.get("namespaceCount"), conds,
                so.get("round"), so.get("state"), so.get("opened"), roles)
    return essence(want) != essence(have)
