"""The reconciler and its work queue against a fake API (fast, in-process): what it writes, in
which order, what an echo or a status-only change costs (nothing), drift, deletion."""
from __future__ import annotations

import asyncio
import copy
import itertools

import pytest

from factories import approval, signed, tenant
from yunshang import tenancy
from yunshang.operator.runtime.queue import WorkQueue
from yunshang.operator.tenants.reconciler import FINALIZER, Reconciler
from yunshang.operator.runtime.settings import Settings


class FakeKube:
    """The API calls the reconciler makes, against dicts; every call is recorded."""

    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.calls: list[tuple] = []
        self._rv = itertools.count(100)

    def apply(self, api, obj):
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        live = copy.deepcopy(obj)
        live["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[tenancy.key_of(obj)] = live
        return live

    def patch(self, api, kind, name, body, namespace=None, sub=""):
        self.calls.append(("patch" + (f"/{sub}" if sub else ""), kind, name))
        return {"metadata": {"resourceVersion": str(next(self._rv))}}

    def delete(self, api, kind, name, namespace=None):
        self.calls.append(("delete", kind, name))
        return self.objects.pop((kind, namespace or "", name), None) is not None

    def event(self, api, obj, type_, reason, message):
        self.calls.append(("event", reason, obj["metadata"]["name"]))

    def get(self, api, kind, name, namespace=None):
        return self.objects.get((kind, namespace or "", name))

    def writes(self):
        return [c for c in self.calls if c[0] != "get"]


def body(name="t1", generation=1, rv="1", finalizers=(), **changes):
    b = tenant(name, **changes)
    b["spec"]["signoffs"] = signed(b["spec"])
    b["metadata"].update({"uid": f"uid-{name}", "generation": generation, "resourceVersion": rv,
                          "finalizers": list(finalizers)})
    return b


@pytest.fixture
def fake():
    return FakeKube()


@pytest.fixture
def rec(fake):
    return Reconciler(api=None, settings=Settings(concurrency=4), k=fake)


def run(coro):
    return asyncio.run(coro)


def echo(r, fake):
    """Deliver the watch events of everything the fake holds, as the API server would."""
    for obj in list(fake.objects.values()):
        r.child_event("MODIFIED", obj)


def test_an_approved_tenant_costs_eleven_writes_namespaces_first(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    kinds = [c[1] for c in fake.writes() if c[0] == "apply"]
    assert kinds[0] == "Namespace" and sorted(kinds[1:]) == sorted(
        ["ResourceQuota", "LimitRange", "RoleBinding"] + ["NetworkPolicy"] * 4)
    assert ("patch", "Tenant", "t1") in fake.calls  # the finalizer
    assert ("patch/status", "Tenant", "t1") in fake.calls and ("event", "Ready", "t1") in fake.calls
    assert len(fake.writes()) == 11


def test_echoes_and_status_only_changes_enqueue_nothing_and_a_resync_writes_nothing(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    rec.queue = WorkQueue()
    echo(rec, fake)
    ready = body(rv="2", finalizers=[FINALIZER])
    ready["status"] = {"phase": "Ready"}
    rec.tenant_event("MODIFIED", ready)  # our own status write coming back: same generation
    assert len(rec.queue) == 0
    n = len(fake.writes())
    run(rec.reconcile("t1"))
    assert len(fake.writes()) == n


def test_drift_enqueues_and_is_repaired_with_an_event(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    echo(rec, fake)
    rec.queue = WorkQueue()
    tampered = copy.deepcopy(fake.objects[("NetworkPolicy", "t1-main", "default-deny")])
    tampered["spec"] = {"podSelector": {}, "policyTypes": []}
    tampered["metadata"]["resourceVersion"] = "999"
    rec.child_event("MODIFIED", tampered)
    assert len(rec.queue) == 1
    n = len(fake.writes())
    run(rec.reconcile("t1"))
    assert fake.writes()[n:] == [("apply", "NetworkPolicy", "default-deny"), ("event", "DriftRepaired", "t1")]


def test_a_deleted_child_is_restored(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    echo(rec, fake)
    gone = fake.objects.pop(("LimitRange", "t1-main", tenancy.LIMITRANGE_NAME))
    rec.child_event("DELETED", gone)
    n = len(fake.writes())
    run(rec.reconcile("t1"))
    assert fake.writes()[n:] == [("apply", "LimitRange", tenancy.LIMITRANGE_NAME), ("event", "DriftRepaired", "t1")]


def test_a_spec_change_updates_without_calling_it_drift(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    echo(rec, fake)
    changed = body(generation=2, rv="3", finalizers=[FINALIZER])
    changed["spec"]["quota"]["pods"] = 80
    rec.tenant_event("MODIFIED", changed)
    n = len(fake.writes())
    run(rec.reconcile("t1"))
    new = fake.writes()[n:]
    assert ("apply", "ResourceQuota", tenancy.QUOTA_NAME) in new and not [c for c in new if c[1] == "DriftRepaired"]


def test_pending_is_written_once_and_approval_then_costs_ten(rec, fake):
    b = body()
    del b["spec"]["signoffs"]
    rec.tenant_event("ADDED", b)
    run(rec.reconcile("t1"))
    run(rec.reconcile("t1"))
    # the finalizer from the first sight on: a pending tenant's deletion goes through the operator too
    assert sorted(fake.writes()) == sorted([("patch", "Tenant", "t1"), ("patch/status", "Tenant", "t1"),
                                            ("event", "Pending", "t1")])
    n = len(fake.writes())
    rec.tenant_event("MODIFIED", body(generation=2, rv="7", finalizers=[FINALIZER]))
    run(rec.reconcile("t1"))
    assert len(fake.writes()) - n == 10  # 8 objects, the status, its Event


def test_children_seen_before_their_tenant_are_compared_not_reapplied(rec, fake):
    first = Reconciler(api=None, settings=Settings(), k=fake)
    first.tenant_event("ADDED", body())
    run(first.reconcile("t1"))
    # a restart: the watches list the children before the tenant
    fake.calls.clear()
    echo(rec, fake)
    rec.tenant_event("ADDED", body(rv="5", finalizers=[FINALIZER]) | {"status": {"phase": "Ready", "message": "1 namespace(s) provisioned",
                                                                                   "observedGeneration": 1, "namespaceCount": 1,
                                                                                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                                                                                                   "message": "1 namespace(s) provisioned"}]}})
    run(rec.reconcile("t1"))
    assert fake.writes() == []


def test_over_the_parent_waits_as_approved(rec, fake):
    parent = body("prov")
    parent["spec"]["quota"]["cpu"] = "4"
    rec.tenant_event("ADDED", parent)
    child = body("city", level="city", parent="prov")
    child["spec"]["quota"]["cpu"] = "8"
    rec.tenant_event("ADDED", child)
    run(rec.reconcile("city"))
    assert not [c for c in fake.writes() if c[0] == "apply"]
    assert ("event", "Approved", "city") in fake.writes()


def test_retain_on_delete_keeps_the_namespace_and_lets_go(rec, fake):
    rec.tenant_event("ADDED", body())
    run(rec.reconcile("t1"))
    echo(rec, fake)
    deleting = body(rv="9", finalizers=[FINALIZER])
    deleting["metadata"]["deletionTimestamp"] = "2026-11-26T00:00:00Z"
    rec.tenant_event("MODIFIED", deleting)
    n = len(fake.writes())
    run(rec.reconcile("t1"))
    new = fake.writes()[n:]
    assert ("patch", "Namespace", "t1-main") in new  # detached, kept
    assert new[-1] == ("patch", "Tenant", "t1")  # the finalizer off
    assert not [c for c in new if c[0] == "delete" and c[1] == "Namespace"]


# --------------------------------------------------------------------------- the queue

def test_queue_dedups_never_hands_out_twice_and_requeues_once():
    async def go():
        q = WorkQueue()
        q.add("a")
        q.add("a")
        q.add("b", low=True)
        assert len(q) == 2
        first = await q.get()
        assert first == "a"
        q.add("a")  # changed while a worker has it
        assert await q.get() == "b"  # not "a" again while active
        q.done("b")
        q.done("a")
        assert await q.get() == "a"  # once more, because it changed meanwhile
        q.done("a")
        assert len(q) == 0

    run(go())


def test_queue_events_before_the_resync_and_promotion():
    async def go():
        q = WorkQueue()
        for n in ("r1", "r2", "r3"):
            q.add(n, low=True)
        q.add("e1")
        q.add("r3")  # an event for a tenant waiting in the resync: promoted
        got = [await q.get() for _ in range(4)]
        assert got[:2] == ["e1", "r3"] and sorted(got[2:]) == ["r1", "r2"]
        assert len(q) == 0

    run(go())


def test_a_tenant_approved_before_parallel_signoff_is_migrated_once(rec, fake):
    """spec.approval (legacy, or the git-reviewed catalog) becomes every role's sign-off: one patch, nothing else."""
    b = tenant("old")
    b["spec"]["approval"] = approval()
    b["metadata"].update({"uid": "uid-old", "generation": 1, "resourceVersion": "1", "finalizers": [FINALIZER]})
    rec.tenant_event("ADDED", b)
    run(rec.reconcile("old"))
    assert fake.writes() == [("patch", "Tenant", "old")]


def test_a_pending_round_shows_each_role_and_provisions_nothing(rec, fake):
    b = body("p1", finalizers=[FINALIZER])
    b["spec"]["signoffs"] = b["spec"]["signoffs"][:1]  # only the platform bureau has signed
    rec.tenant_event("ADDED", b)
    run(rec.reconcile("p1"))
    assert not [c for c in fake.writes() if c[0] == "apply"]
    assert [c for c in fake.writes() if c[0] == "patch/status"] == [("patch/status", "Tenant", "p1")]
    st = rec._written["p1"]
    assert st["phase"] == "Pending" and "security, finance" in st["message"]
    assert [(r["role"], r["decision"]) for r in st["signoff"]["roles"]] == [
        ("platform", "Approved"), ("security", "Pending"), ("finance", "Pending")]


def test_approval_clears_the_open_rounds_status(rec, fake):
    b = body("p2", finalizers=[FINALIZER])
    full = b["spec"]["signoffs"]
    b["spec"]["signoffs"] = full[:2]
    rec.tenant_event("ADDED", b)
    run(rec.reconcile("p2"))
    assert rec._written["p2"]["signoff"]["state"] == "Pending"
    b2 = body("p2", generation=2, rv="9", finalizers=[FINALIZER])
    rec.tenant_event("MODIFIED", b2 | {"status": rec._written["p2"]})
    run(rec.reconcile("p2"))
    assert rec._written["p2"]["phase"] == "Ready" and rec._written["p2"]["signoff"] is None


def test_a_drift_during_a_resync_waits_for_one_reconcile_not_the_whole_resync(fake):
    """Resync reconciles that write nothing never await; the workers still let the loop deliver
    a watch event between them, and the drift goes before the rest of the resync."""
    r = Reconciler(api=None, settings=Settings(concurrency=4, workers=1), k=fake)
    names = [f"t{i:03d}" for i in range(200)]
    for nm in names:
        r.tenant_event("ADDED", body(nm))

    async def scenario():
        for nm in names:
            await r.reconcile(nm)
        echo(r, fake)
        r.queue = WorkQueue()
        done: list[str] = []
        real = r.reconcile

        gone = fake.objects.pop(("NetworkPolicy", "t199-main", "default-deny"))
        loop = asyncio.get_running_loop()

        async def traced(name):
            done.append(name)
            if len(done) == 1:  # the watch event arrives from the reflector's thread once the resync has begun
                loop.call_soon_threadsafe(r.child_event, "DELETED", gone)
            await real(name)

        r.reconcile = traced
        for nm in names:
            r.queue.add(nm, low=True)  # the global resync
        r.rt._last_event -= 60  # the listings are long in
        worker = loop.create_task(r._worker(0))
        while len(done) < len(names) or len(r.queue):
            await asyncio.sleep(0.01)
        worker.cancel()
        return done

    done = run(scenario())
    assert done.index("t199") < 10, f"drift repaired after {done.index('t199')} resync reconciles"
    assert ("NetworkPolicy", "t199-main", "default-deny") in fake.objects
