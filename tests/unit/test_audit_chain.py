"""The audit trail's hash chain and the classification of API server audit events."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, strategies as st

from yunshang.auditing import classify
from yunshang.models.audit import (GENESIS, Anchor, AnchorState, Link, ObjectRef, against_anchor, against_witness,
                                   decide_anchor, links, make, verify, witness_seq)

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)


def chain(n: int):
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        r = make(i, T0 + dt.timedelta(minutes=i), "bureau.chen", "QuotaChanged", ObjectRef(kind="Tenant", name="t"),
                 ["t"], {"quota.cpu": str(i)}, prev)
        out.append(r)
        prev = r.hash
    return out


@given(st.integers(1, 30))
def test_intact_chain_verifies(n):
    assert verify(chain(n)) == []


@given(st.integers(2, 30), st.data())
def test_any_edit_is_detected(n, data):
    records = chain(n)
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(["actor", "action", "details", "time"]))
    value = {"actor": "mallory", "action": "TenantApproved", "details": {"quota.cpu": "999"},
             "time": T0 - dt.timedelta(days=1)}[field]
    records[i] = records[i].model_copy(update={field: value})
    problems = verify(records)
    assert problems and f"record {i + 1} was edited" in problems[0]


@given(st.integers(3, 30), st.data())
def test_any_removal_inside_the_chain_is_detected(n, data):
    records = chain(n)
    i = data.draw(st.integers(0, n - 2))
    del records[i]
    assert any("removed" in p for p in verify(records))


def test_rehashing_one_record_still_breaks_the_next_link():
    records = chain(5)
    forged = make(3, records[2].time, "mallory", "TenantApproved", records[2].object, ["t"], {}, records[2].prev_hash)
    records[2] = forged
    assert verify(records) == ["record 4 does not follow record 3 (prevHash mismatch)"]


def ev(verb, resource, body=None, code=200, agent="kubectl", name="t1", sub=None):
    return {"stage": "ResponseComplete", "verb": verb, "userAgent": agent, "user": {"username": "u"},
            "objectRef": {"apiGroup": "platform.yunshang.io", "resource": resource, "name": name, "subresource": sub},
            "responseStatus": {"code": code}, "requestObject": body}


def test_classification():
    assert [e.action for e in classify(ev("create", "tenants", {"spec": {"quota": {"cpu": "4"}}}))] == ["TenantRequested"]
    appr = classify(ev("patch", "tenants", {"spec": {"approval": {"decision": "Approved", "reason": "ok"}}}))
    assert [(e.action, e.details) for e in appr] == [("TenantApproved", {"reason": "ok"})]
    assert [e.action for e in classify(ev("patch", "tenants", {"spec": {"quota": {"cpu": "6"}}}))] == ["QuotaChanged"]
    assert [e.action for e in classify(ev("patch", "tenants", {"spec": {"suspended": False, "suspendReason": "",
                                                                        "quarantine": None}}))] == \
        ["TenantResumed", "QuarantineLifted"]
    assert [e.action for e in classify(ev("patch", "shareagreements", {"spec": {"revoked": {"by": "x"}}}))] == \
        ["AgreementRevoked"]
    assert [e.action for e in classify(ev("delete", "tenants"))] == ["TenantDeleted"]
    # not recorded: refused, status, the operator's own writes, metadata-only patches, reads
    assert classify(ev("patch", "tenants", {"spec": {"quota": {}}}, code=403)) == []
    assert classify(ev("patch", "tenants", {"status": {}}, sub="status")) == []
    assert classify(ev("patch", "tenants", {"spec": {"quota": {}}}, agent="yunshang-operator/0.1")) == []
    assert classify(ev("patch", "tenants", {"metadata": {"finalizers": []}})) == []
    assert classify(ev("get", "tenants")) == []


# ---------------------------------------------------------------- the anchor: which one the operator writes

REF = "yunshang-system/yunshang-audit-anchor"
NOW = T0 + dt.timedelta(days=1)


def links_of(n: int):
    return links(chain(n))


def anchor_at(records, seq: int) -> Anchor:
    return Anchor(seq=seq, hash=records[seq - 1].hash if seq else GENESIS, time=T0 + dt.timedelta(minutes=seq))


def test_the_empty_chain_gets_the_genesis_anchor():
    d = decide_anchor({}, None, None, None, NOW, REF)
    assert d.state == AnchorState.ok and d.write == Anchor(seq=0, hash=GENESIS, time=NOW) and d.last == d.write
    # and any first record extends it
    d = decide_anchor(links_of(3), d.write, d.last, None, NOW, REF)
    assert d.state == AnchorState.ok and d.write.seq == 3 and d.write.hash == chain(3)[-1].hash


def test_no_genesis_when_prometheus_saw_a_chain():
    d = decide_anchor({}, None, None, 12, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None
    assert d.problem.startswith("the audit chain ends at #0 but Prometheus recorded #12")


def test_records_without_any_anchor_are_not_anchored():
    d = decide_anchor(links_of(12), None, None, None, NOW, REF)
    assert d.state == AnchorState.missing and d.write is None and d.last is None and d.missing
    assert d.problem == ("audit chain has 12 records but no anchor in yunshang-system/yunshang-audit-anchor: the "
                         "anchor was deleted; ask the platform bureau to investigate before re-anchoring")


def test_the_anchor_moves_forward_and_stays_when_nothing_changed():
    records = chain(8)
    stored = anchor_at(records, 5)
    d = decide_anchor(links(records), stored, None, None, NOW, REF)
    assert d.write == Anchor(seq=8, hash=records[-1].hash, time=NOW) and d.last == d.write and d.seq == 8
    d = decide_anchor(links(records), d.write, d.last, 8, NOW, REF)
    assert d.state == AnchorState.ok and d.write is None and d.last.seq == 8 and d.problem is None


def test_a_shortened_chain_is_never_anchored():
    records = chain(10)
    stored = anchor_at(records, 10)
    d = decide_anchor(links(records[:8]), stored, stored, None, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None and d.last == stored and d.seq == 10
    assert d.problem.startswith("2 records missing since anchor #10") and "the chain now ends at #8" in d.problem


def test_the_finding_records_and_configmap_deleted_while_the_operator_remembers():
    records = chain(10)
    known = anchor_at(records, 10)
    d = decide_anchor(links(records[:8]), None, known, None, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None and d.missing and d.seq == 10
    # later rounds: still nothing written, still remembered
    d = decide_anchor(links(records[:8]), None, d.last, None, NOW, REF)
    assert d.write is None and d.last == known
    # and after a restart (nothing remembered): not anchored either
    d = decide_anchor(links(records[:8]), None, None, None, NOW, REF)
    assert d.state == AnchorState.missing and d.write is None
    # unless Prometheus remembers: then it is broken, too
    d = decide_anchor(links(records[:8]), None, None, 10, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None and "Prometheus recorded #10" in d.problem


def test_a_rewritten_anchored_record_or_a_gap_after_it_is_refused():
    records = chain(6)
    stored = anchor_at(records, 4)
    forged = list(records)
    forged[3] = make(4, records[3].time, "mallory", "TenantApproved", records[3].object, ["t"], {},
                     records[3].prev_hash)
    d = decide_anchor(links(forged), stored, None, None, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None and "record #4 is not the one anchored" in d.problem
    gap = links(records)
    del gap[5]
    d = decide_anchor(gap, stored, None, None, NOW, REF)
    assert d.state == AnchorState.broken and "record #5 is missing between anchor #4" in d.problem
    relinked = links(records)
    relinked[6] = Link(relinked[6].hash, "f" * 64)
    d = decide_anchor(relinked, stored, None, None, NOW, REF)
    assert d.state == AnchorState.broken and "record #6 does not follow record #5" in d.problem


def test_a_deleted_configmap_is_restored_from_memory_when_the_chain_extends_it():
    records = chain(7)
    known = anchor_at(records, 5)
    d = decide_anchor(links(records), None, known, None, NOW, REF)
    assert d.state == AnchorState.ok and d.write.seq == 7 and not d.missing
    assert d.restored.startswith(f"the audit anchor in {REF} was deleted; restored at #7 from anchor #5")
    # the same chain, nothing new: the remembered anchor itself is written back
    d = decide_anchor(links(records[:5]), None, known, None, NOW, REF)
    assert d.write == known and d.restored
    # moved back: restored as well
    d = decide_anchor(links(records), anchor_at(records, 2), known, None, NOW, REF)
    assert d.write.seq == 7 and "was moved back to #2" in d.restored


def test_an_anchor_another_replica_moved_forward_is_followed():
    records = chain(9)
    d = decide_anchor(links(records), anchor_at(records, 8), anchor_at(records, 3), None, NOW, REF)
    assert d.state == AnchorState.ok and d.write.seq == 9 and not d.restored


def test_a_chain_below_the_witness_is_refused():
    records = chain(6)
    stored = anchor_at(records, 6)
    d = decide_anchor(links(records), stored, None, 9, NOW, REF)
    assert d.state == AnchorState.broken and d.write is None and "ends at #6 but Prometheus recorded #9" in d.problem


@given(st.integers(1, 25), st.data())
def test_the_anchor_never_goes_back_and_never_anchors_a_shortened_chain(n, data):
    records = chain(n)
    a = data.draw(st.integers(0, n))
    anchor = anchor_at(records, a)
    stored = data.draw(st.sampled_from([anchor, None]))
    known = data.draw(st.sampled_from([anchor, None]))
    kept = data.draw(st.integers(0, n))
    witness = data.draw(st.sampled_from([None, 0, kept, n]))
    d = decide_anchor(links(records[:kept]), stored, known, witness, NOW, REF)
    if d.write is not None:
        assert d.write.seq >= max([x.seq for x in (stored, known) if x] + [0])
        assert kept >= a or (stored is None and known is None)
        assert witness is None or d.write.seq >= witness
        if d.write.seq:
            assert d.write.hash == records[d.write.seq - 1].hash
    if (stored or known) and kept < a:
        assert d.state == AnchorState.broken and d.write is None


def test_rounds_of_an_operator_through_the_finding():
    """The operator's memory across rounds: genesis, growth, the attack, no re-anchoring, the repair."""
    records = chain(12)
    stored, known = None, None

    def round_(kept: int):
        nonlocal stored, known
        d = decide_anchor(links(records[:kept]), stored, known, None, NOW, REF)
        stored = d.write or stored
        known = d.last
        return d

    assert round_(0).write.seq == 0
    assert round_(12).write.seq == 12
    stored = None  # the attack: two records and the ConfigMap deleted
    for _ in range(3):
        d = round_(10)
        assert d.write is None and d.state == AnchorState.broken and stored is None
    d = round_(12)  # the records put back: the chain extends what the operator remembers
    assert d.write.seq == 12 and d.restored and stored.seq == 12


def test_verify_names_records_without_an_anchor_and_a_chain_below_its_witness():
    assert against_anchor(chain(3), None, REF).startswith(f"audit chain has 3 records but no anchor in {REF}")
    assert against_anchor([], None, REF) is None
    assert against_anchor(chain(3), anchor_at(chain(3), 0), REF) is None
    assert against_anchor(chain(3), anchor_at(chain(5), 5), REF).startswith("2 records missing since anchor #5")
    assert against_witness(3, None, "Prometheus") is None and against_witness(3, 3, "Prometheus") is None
    assert against_witness(3, 5, "Prometheus at http://p").startswith(
        "the audit chain ends at #3 but Prometheus at http://p recorded #5")
    assert witness_seq([]) is None and witness_seq([{"metric": {}, "value": [0, "12"]}]) == 12
