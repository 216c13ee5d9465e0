"""The audit trail: append-only records, each carrying the hash of the previous one.

Records are AuditRecord objects in the API server (so in etcd, like everything the platform
keeps): they survive operator restarts because the operator holds no state of its own, it
reads the chain's head back from the API server.  An admission policy refuses every update
and delete; the hash chain makes any edit or removal that gets past it (etcd access, a
removed policy) visible to `yunshang audit verify`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Iterable

from pydantic import Field

from .names import DEFAULT_ANCHOR  # noqa: F401  (re-exported)
from .tenant import Model

GENESIS = "0" * 64

ACTIONS = (
    "TenantRequested", "TenantSignedOff", "QuotaRequested", "TenantApproved", "TenantRejected", "TenantChanged", "QuotaChanged", "ElasticQuotaChanged",
    "TenantSuspended", "TenantResumed", "TenantQuarantined", "QuarantineLifted", "TenantDeleted",
    "AgreementRequested", "AgreementApproved", "AgreementRejected", "AgreementRevoked", "AgreementExpired",
    "AgreementDeleted",
)


class ObjectRef(Model):
    kind: str
    """Tenant or ShareAgreement."""
    name: str
    """The object's name."""


class AuditRecordSpec(Model):
    seq: int = Field(ge=1)
    """Position in the chain, from 1, without gaps."""
    time: dt.datetime
    """When it happened (the API server's time for requests)."""
    actor: str = Field(min_length=1, max_length=253)
    """Who did it, as the API server authenticated them (or the operator, for automatic actions)."""
    action: str = Field(min_length=1, max_length=64)
    """What happened, e.g. TenantApproved, QuotaChanged, TenantQuarantined, AgreementRevoked."""
    object: ObjectRef
    """What it happened to."""
    tenants: list[str] = Field(default_factory=list)
    """The tenants concerned (both sides of an agreement)."""
    details: dict[str, str] = Field(default_factory=dict)
    """The numbers and reasons: old and new quota, the alert, the decision's reason, ..."""
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    """The previous record's hash (64 zeros for the first)."""
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    """sha256 over this record's canonical content, prev_hash included."""


def canonical(seq: int, time: dt.datetime, actor: str, action: str, obj: ObjectRef, tenants: list[str],
              details: dict[str, str], prev_hash: str) -> bytes:
    when = time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {"seq": seq, "time": when, "actor": actor, "action": action, "object": obj.model_dump(),
         "tenants": sorted(tenants), "details": details, "prevHash": prev_hash},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    ).encode()


def make(seq: int, time: dt.datetime, actor: str, action: str, obj: ObjectRef, tenants: list[str],
         details: dict[str, str], prev_hash: str) -> AuditRecordSpec:
    time = time.astimezone(dt.timezone.utc).replace(microsecond=0)
    h = hashlib.sha256(canonical(seq, time, actor, action, obj, tenants, details, prev_hash)).hexdigest()
    return AuditRecordSpec(seq=seq, time=time, actor=actor, action=action, object=obj, tenants=sorted(tenants),
                           details=details, prev_hash=prev_hash, hash=h)


def verify(records: Iterable[AuditRecordSpec]) -> list[str]:
    """Problems in the chain, in order; empty if every record is intact and none is missing."""
    problems: list[str] = []
    prev_hash, expected = GENESIS, 1
    for r in sorted(records, key=lambda r: r.seq):
        if r.seq != expected:
            missing = f"{expected}" if r.seq == expected + 1 else f"{expected}..{r.seq - 1}"
            problems.append(f"record(s) {missing} removed: the chain jumps from {expected - 1} to {r.seq}")
        elif r.prev_hash != prev_hash:
            problems.append(f"record {r.seq} does not follow record {r.seq - 1} (prevHash mismatch)")
        recomputed = hashlib.sha256(canonical(r.seq, r.time, r.actor, r.action, r.object, r.tenants, r.details,
                                              r.prev_hash)).hexdigest()
        if recomputed != r.hash:
            problems.append(f"record {r.seq} was edited: its content no longer matches its hash")
        prev_hash, expected = r.hash, r.seq + 1
    return problems


class Anchor(Model):
    """The chain's head as last seen, kept outside the chain (a ConfigMap the platform admins
    choose, and Prometheus' history of the head metrics): a truncated or vanished chain is then
    visible, which the chain alone cannot show."""

    seq: int = Field(ge=0)
    hash: str
    time: dt.datetime

    def to_data(self) -> dict[str, str]:
        return {"seq": str(self.seq), "hash": self.hash,
                "time": self.time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> "Anchor | None":
        return cls.model_validate(data) if data and data.get("seq") else None


def against_anchor(records: Iterable[AuditRecordSpec], anchor: "Anchor | None") -> str | None:
    """One line if the chain is shorter than its anchor or differs at the anchored record."""
    if anchor is None or anchor.seq == 0:
        return None
    by_seq = {r.seq: r for r in records}
    kept = sum(1 for s in by_seq if s <= anchor.seq)
    head = max(by_seq, default=0)
    where = f"anchor #{anchor.seq} (sha256 {anchor.hash[:12]}…, {anchor.to_data()['time']})"
    if anchor.seq not in by_seq:
        return f"{anchor.seq - kept} records missing since {where}; the chain now ends at #{head}"
    if by_seq[anchor.seq].hash != anchor.hash:
        return f"record #{anchor.seq} is not the one anchored at {where}: the chain was rewritten"
    return None
