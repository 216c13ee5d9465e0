"""The lean child watch (operator/reflector.py) against a fake API: a listing becomes ADDED events
with kind and apiVersion set, bookmarks move the version without an event, a 410 lists again
and an object gone meanwhile arrives as DELETED, a broken connection lists again."""
from __future__ import annotations

import pytest

from yunshang.operator.runtime.reflector import Gone, Reflector


def obj(name, rv, ns="t1-main", tenant="t1"):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "labels": {"platform.yunshang.io/tenant": tenant, "other": "x"}}}


class FakeAPI:
    """``listings``: what each listing returns; ``watches``: the events of each watch (a list, or
    an exception to raise)."""

    def __init__(self, listings, watches):
        self.listings, self.watches = list(listings), list(watches)
        self.calls = []

    def listing(self, api, kind, selector, namespace=None):
        self.calls.append(("list", kind, selector))
        if len(self.listings) == 1:
            self.last()
        return self.listings.pop(0)

    def pages(self, api, kind, selector, namespace=None):
        items, rv = self.listing(api, kind, selector, namespace)
        yield items[:1], rv  # in two pages, as the API server gives a long listing
        yield items[1:], rv

    def last(self):
        """Called when the last listing is taken."""

    def watch(self, api, kind, rv, selector, timeout, namespace=None):
        self.calls.append(("watch", kind, rv))
        events = self.watches.pop(0)
        if isinstance(events, Exception):
            raise events
        yield from events


def reflector(fake, seen, **kw):
    return Reflector(None, "NetworkPolicy", "sel", lambda t, o: seen.append(
        (t, o["kind"], o["metadata"]["name"], o["metadata"].get("labels"))), k=fake, **kw)


def test_listing_then_watch_from_its_version():
    fake = FakeAPI([([obj("a", "5"), obj("b", "6")], "10")],
                   [[{"type": "ADDED", "object": {**obj("c", "11"), "kind": "NetworkPolicy"}},
                     {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}]])
    seen, listed = [], []
    r = reflector(fake, seen, on_listed=listed.append)
    rv = r.list_once()
    assert rv == "10" and listed == ["NetworkPolicy"]
    assert r.watch_once(rv) == "15"  # the bookmark's version, without an event
    assert [s[:3] for s in seen] == [("ADDED", "NetworkPolicy", "a"), ("ADDED", "NetworkPolicy", "b"),
                                     ("ADDED", "NetworkPolicy", "c")]
    assert fake.calls == [("list", "NetworkPolicy", "sel"), ("watch", "NetworkPolicy", "10")]


def test_gone_lists_again_and_reports_what_vanished_meanwhile():
    fake = FakeAPI([([obj("a", "5"), obj("b", "6")], "10"), ([obj("b", "6")], "30")],
                   [[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]])
    seen = []
    r = reflector(fake, seen, stub_labels=("platform.yunshang.io/tenant",))
    r.list_once()
    with pytest.raises(Gone):
        r.watch_once("10")
    seen.clear()
    assert r.list_once() == "30"
    assert ("DELETED", "NetworkPolicy", "a", {"platform.yunshang.io/tenant": "t1"}) in seen
    assert [s[0] for s in seen].count("DELETED") == 1


def test_deleted_events_are_forgotten_and_the_loop_survives_a_broken_watch():
    fake = FakeAPI([([obj("a", "5")], "10"), ([], "40")],
                   [[{"type": "DELETED", "object": {**obj("a", "12"), "kind": "NetworkPolicy"}}],
                    ConnectionResetError("reset by peer")])
    seen = []
    r = reflector(fake, seen)
    fake.last = r.stop  # the run ends after the second listing
    r._stopping.wait = lambda seconds: None  # no back-off in a unit test
    r.run()
    # list, watch (a deletes), watch breaks -> list again (and watch from there): a is not reported twice
    assert [c[0] for c in fake.calls] == ["list", "watch", "watch", "list", "watch"]
    assert fake.calls[-1] == ("watch", "NetworkPolicy", "40")
    assert [s[:3] for s in seen] == [("ADDED", "NetworkPolicy", "a"), ("DELETED", "NetworkPolicy", "a")]
    assert r.listings == 2


def test_a_refused_watch_is_an_error_not_a_silent_stop():
    fake = FakeAPI([([], "10")], [[{"type": "ERROR", "object": {"code": 403, "message": "forbidden"}}]])
    r = reflector(fake, [])
    r.list_once()
    with pytest.raises(RuntimeError, match="403 forbidden"):
        r.watch_once("10")


def test_the_inbox_hands_events_from_threads_to_the_loop_in_order_and_in_batches():
    import asyncio
    import threading

    from yunshang.operator.runtime.reflector import Inbox

    async def scenario():
        loop = asyncio.get_running_loop()
        inbox = Inbox(loop)
        seen, wakeups = [], []
        real = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: (wakeups.append(1), real(*a))[1]
        send = inbox.sender(lambda etype, obj: seen.append((etype, obj["n"])))

        def producer(base):
            for i in range(1000):
                send("ADDED", {"n": base + i})
            inbox.put(seen.append, ("done", base))

        threads = [threading.Thread(target=producer, args=(k * 10000,)) for k in range(3)]
        for t in threads:
            t.start()
        while sum(1 for s in seen if s[0] == "done") < 3:
            await asyncio.sleep(0.01)
        for t in threads:
            t.join()
        loop.call_soon_threadsafe = real
        return seen, wakeups

    seen, wakeups = asyncio.run(scenario())
    assert len(seen) == 3003
    for k in range(3):  # each thread's events in the order it sent them, its "done" after them
        mine = [n for e, n in seen if e == "ADDED" and n // 10000 == k]
        assert mine == list(range(k * 10000, k * 10000 + 1000))
        assert seen.index(("done", k * 10000)) > seen.index(("ADDED", k * 10000 + 999))
    assert len(wakeups) < 3003 / 2, f"{len(wakeups)} wake-ups of the loop for 3003 events"
