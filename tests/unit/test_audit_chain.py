"""The audit trail's hash chain and the classification of API server audit events."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, strategies as st

from yunshang.auditing import classify
from yunshang.models.audit import GENESIS, ObjectRef, make, verify

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
