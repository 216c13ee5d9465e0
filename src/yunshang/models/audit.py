"""The audit trail: append-only records, each carrying the hash of the previous one.

Records are AuditRecord objects in the API server (so in etcd, like everything the platform
keeps): they survive operator restarts because the operator holds no state of its own, it
reads the chain's head back from the API server.  An admission policy refuses every update
and delete; the hash chain makes any edit or removal that gets past it (etcd access, a
removed policy) visible to `yunshang audit verify`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
from typing import Iterable, Mapping, NamedTuple

from pydantic import Field

from .names import DEFAULT_ANCHOR
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
    visible, which the chain alone cannot show.  Seq 0 is the genesis anchor, written by the
    operator before the first record: from then on, records without an anchor mean tampering."""

    seq: int = Field(ge=0)
    hash: str
    time: dt.datetime

    def to_data(self) -> dict[str, str]:
        return {"seq": str(self.seq), "hash": self.hash,
                "time": self.time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

    @classmethod
    def from_data(cls, data: dict[str, str] | None) -> "Anchor | None":
        return cls.model_validate(data) if data and data.get("seq") else None

    def describe(self) -> str:
        return f"anchor #{self.seq} (sha256 {self.hash[:12]}…, {self.to_data()['time']})"


def genesis(time: dt.datetime) -> Anchor:
    """The anchor of the empty chain: seq 0, the hash every first record links to."""
    return Anchor(seq=0, hash=GENESIS, time=time)


INVESTIGATE = "ask the platform bureau to investigate before re-anchoring"

# The outside witness: the highest head or anchor Prometheus ever recorded (as far back as it keeps).
WITNESS_WINDOW = "400d"
# (one max_over_time per metric, told apart by a label: over both names at once they would collide)
WITNESS_QUERY = " or ".join(
    f'label_replace(max_over_time({metric}[{WITNESS_WINDOW}]), "witness", "{metric}", "", "")'
    for metric in ("yunshang_audit_head_seq", "yunshang_audit_anchor_seq")).join(("max(", ")"))


def witness_seq(result: list[dict]) -> int | None:
    """The seq in Prometheus' answer to WITNESS_QUERY (None: it never recorded the metrics)."""
    return int(float(result[0]["value"][1])) if result else None


class Link(NamedTuple):
    """One record as the anchor sees it: its hash and the hash it links to."""

    hash: str
    prev_hash: str


def links(records: Iterable[AuditRecordSpec]) -> dict[int, Link]:
    return {r.seq: Link(r.hash, r.prev_hash) for r in records}


def _anchored(chain: Mapping[int, Link], seq: int) -> str | None:
    """The hash the chain has at ``seq`` (the genesis hash at 0; None if the record is gone)."""
    return GENESIS if seq == 0 else (chain[seq].hash if seq in chain else None)


def _short(chain: Mapping[int, Link], anchor: Anchor) -> str | None:
    """One line if the chain lost the anchored record or has another one in its place."""
    head = max(chain, default=0)
    hash_ = _anchored(chain, anchor.seq)
    if hash_ is None:
        kept = sum(1 for s in chain if s <= anchor.seq)
        return (f"{anchor.seq - kept} records missing since {anchor.describe()}; the chain now ends at #{head}: "
                f"records were deleted; {INVESTIGATE}")
    if hash_ != anchor.hash:
        return (f"record #{anchor.seq} is not the one anchored at {anchor.describe()}: the chain was rewritten; "
                f"{INVESTIGATE}")
    return None


def extends(chain: Mapping[int, Link], anchor: Anchor) -> str | None:
    """None if the chain extends ``anchor``: it still has the anchored record, and every record
    after it, up to the head, follows the one before; else one line saying where it does not."""
    if problem := _short(chain, anchor):
        return problem
    head = max(chain, default=0)
    for seq in range(anchor.seq + 1, head + 1):
        if seq not in chain:
            return (f"record #{seq} is missing between {anchor.describe()} and the head #{head}: records were "
                    f"deleted; {INVESTIGATE}")
        if chain[seq].prev_hash != _anchored(chain, seq - 1):
            return (f"record #{seq} does not follow record #{seq - 1} after {anchor.describe()}: the chain was "
                    f"rewritten; {INVESTIGATE}")
    return None


def unanchored(count: int, ref: str) -> str:
    """Records, but no anchor: the operator anchors the empty chain before the first record, so it was deleted."""
    return f"audit chain has {count} records but no anchor in {ref}: the anchor was deleted; {INVESTIGATE}"


def against_anchor(records: Iterable[AuditRecordSpec], anchor: "Anchor | None",
                   ref: str = DEFAULT_ANCHOR) -> str | None:
    """One line if the chain has records but no anchor (the operator anchors the empty chain
    before the first record: records without one mean the anchor was deleted), is shorter than
    its anchor or differs at the anchored record."""
    chain = links(records)
    if anchor is None:
        return unanchored(len(chain), ref) if chain else None
    return _short(chain, anchor)


def against_witness(head: int, witness: int | None, where: str) -> str | None:
    """One line if the chain ends below the highest head or anchor the outside witness recorded."""
    if witness is None or head >= witness:
        return None
    return (f"the audit chain ends at #{head} but {where} recorded #{witness} (highest yunshang_audit_head_seq/"
            f"anchor_seq over {WITNESS_WINDOW}): {witness - head} records were deleted; {INVESTIGATE}")


class AnchorState(str, enum.Enum):
    ok = "ok"
    """The chain extends its last anchor (which moves forward to the head, or is restored)."""
    missing = "missing"
    """Records but no anchor, and nothing the operator remembers proves the chain: not anchored."""
    broken = "broken"
    """The chain is shorter than, or does not extend, its last anchor, or is below the witness: not anchored."""


@dataclasses.dataclass(frozen=True)
class AnchorDecision:
    state: AnchorState
    write: Anchor | None
    """The anchor to publish now (None: leave the ConfigMap as it is)."""
    last: Anchor | None
    """The anchor the operator remembers after this round."""
    problem: str | None = None
    """One line: what is wrong and what to do (state missing or broken)."""
    restored: str | None = None
    """One line when the ConfigMap was gone or behind and is written back from what was remembered."""
    missing: bool = False
    """The ConfigMap is absent (or behind what was remembered) and is not written back."""
    seq: int = 0
    """The anchor seq to export: the highest one known, so Prometheus keeps it even when the ConfigMap is gone."""


def decide_anchor(chain: Mapping[int, Link], stored: Anchor | None, known: Anchor | None, witness: int | None,
                  now: dt.datetime, ref: str = DEFAULT_ANCHOR) -> AnchorDecision:
    """Which anchor the operator writes, given the chain (seq -> link), the anchor in the ConfigMap
    (``stored``), the one it remembers having published or checked (``known``) and the highest
    seq the outside witness (Prometheus) recorded.  Never back, never on a chain that does not
    extend an anchor: such a chain stays visible (``problem``) until a person looks at it."""
    head = max(chain, default=0)
    refs = sorted((a for a in (stored, known) if a is not None), key=lambda a: a.seq, reverse=True)
    top = refs[0] if refs else None
    behind = top is not None and (stored is None or stored.seq < top.seq)
    for problem in [extends(chain, a) for a in refs] + [against_witness(head, witness, "Prometheus")]:
        if problem:
            return AnchorDecision(AnchorState.broken, None, known or top, problem, missing=behind,
                                  seq=top.seq if top else 0)
    if top is None:
        if chain:
            return AnchorDecision(AnchorState.missing, None, None, unanchored(len(chain), ref), missing=True)
        first = genesis(now)
        return AnchorDecision(AnchorState.ok, first, first)
    new = Anchor(seq=head, hash=_anchored(chain, head), time=now) if head > top.seq else None
    last = new or top
    if behind:
        was = "deleted" if stored is None else f"moved back to #{stored.seq}"
        return AnchorDecision(AnchorState.ok, last, last, seq=last.seq,
                              restored=f"the audit anchor in {ref} was {was}; restored at #{last.seq} from "
                                       f"{top.describe()}, which the chain still extends")
    return AnchorDecision(AnchorState.ok, new, last, seq=last.seq)
