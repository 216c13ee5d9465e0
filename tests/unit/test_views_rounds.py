"""The departments' views (operator/views.py): a round writes a view only when what it shows
changed, and the cost of a round follows what changed, not the number of departments."""
from __future__ import annotations


import pytest

from yunshang import views as v
from yunshang.operator import views
from yunshang.operator.runtime.cache import Cache, TenantRecord


class FakeRuntime:
    def __init__(self, tenants):
        self.cache = Cache()
        for t in tenants:
            self.cache.tenants[t] = TenantRecord.of({"metadata": {"name": t, "uid": f"uid-{t}"}, "spec": {}})
        self.api = object()
        self.woken = 0

    def views_changed(self):
        self.woken += 1


@pytest.fixture
def written(monkeypatch):
    out = []
    monkeypatch.setattr(views.kube, "apply", lambda api, obj: out.append(obj))
    monkeypatch.setattr(views.kube, "list_all", lambda *a, **k: [])
    return out


def agreement(name, consumer, provider):
    return {"metadata": {"name": name}, "spec": {"consumer": consumer, "provider": provider}, "status": {}}


def record(seq, *tenants):
    return {"metadata": {"name": f"r{seq}"}, "spec": {"seq": seq, "tenants": list(tenants), "action": "X"}}


def echo(vw, objs):
    """The watch brings back what was written."""
    for o in objs:
        vw.view_event("ADDED", o)


def test_a_round_writes_each_view_once_then_nothing(written):
    rt = FakeRuntime(["a", "b", "c"])
    vw = views.Views(rt, lambda: [])
    assert vw.sync() == 3 and sorted(o["metadata"]["name"] for o in written) == ["dept-a", "dept-b", "dept-c"]
    echo(vw, written)
    assert vw.sync() == 0  # idle: nothing written


def test_only_the_views_a_change_concerns_are_written(written):
    rt = FakeRuntime(["a", "b", "c"])
    agreements = []
    vw = views.Views(rt, lambda: agreements)
    vw.sync()
    echo(vw, written)
    written.clear()
    vw.record_event("ADDED", record(7, "b"))
    assert rt.woken == 1
    assert vw.sync() == 1 and written[0]["metadata"]["name"] == "dept-b"
    assert '"seq": 7' in written[0]["data"]["audit.json"]
    echo(vw, written)
    written.clear()
    agreements.append(agreement("a.c.api", "a", "c"))
    assert vw.sync() == 2 and sorted(o["metadata"]["name"] for o in written) == ["dept-a", "dept-c"]
    echo(vw, written)
    written.clear()
    vw.record_event("ADDED", record(7, "b"))  # the same record again (a relist): nothing new
    assert vw.sync() == 0


def test_a_view_changed_or_deleted_by_someone_else_is_repaired(written):
    rt = FakeRuntime(["a", "b"])
    vw = views.Views(rt, lambda: [])
    vw.sync()
    echo(vw, written)
    forged = {**written[0], "data": {"agreements.json": "[]", "audit.json": '[{"forged": true}]'}}
    written.clear()
    vw.view_event("MODIFIED", forged)
    vw.view_event("DELETED", {"metadata": {"name": "dept-b", "labels": {v.LABEL_VIEW: "b"}}})
    assert vw.sync() == 2
    assert [o["data"]["audit.json"] for o in written] == ["[]", "[]"]


def test_the_newest_records_in_order_and_no_more_than_kept(written):
    rt = FakeRuntime(["a"])
    vw = views.Views(rt, lambda: [])
    for seq in [*range(10, v.AUDIT_KEPT + 20), 5]:  # 5 arrives late (a relist)
        vw.record_event("ADDED", record(seq, "a"))
    vw.sync()
    import json

    seqs = [r["seq"] for r in json.loads(written[-1]["data"]["audit.json"])]
    assert seqs == list(range(20, v.AUDIT_KEPT + 20))


def test_the_roles_of_the_earlier_shape_are_removed_once(monkeypatch, written):
    listed, deleted = [], []
    monkeypatch.setattr(views.kube, "list_all", lambda api, kind, **k: listed.append(kind) or
                        [{"metadata": {"name": f"yunshang:dept:a-{kind}"}}])
    monkeypatch.setattr(views.kube, "delete", lambda api, kind, name, namespace=None: deleted.append((kind, name)))
    vw = views.Views(FakeRuntime(["a"]), lambda: [])
    vw.sync()
    vw.sync()
    assert sorted(listed) == sorted(views.LEGACY_KINDS)  # listed in the first round only
    assert len(deleted) == 4
