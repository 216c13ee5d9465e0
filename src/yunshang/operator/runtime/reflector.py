"""Lean watches (the shape of client-go's reflector), one per kind the operator follows.

A Reflector lists one kind (with a server-side label selector), then watches from the listing's
resourceVersion (bookmarks keep it fresh), hands every event to ``deliver`` and lists again when
the API server says that version is gone (410) or the connection breaks; an object of an earlier
listing that is missing from the new one is delivered as DELETED, so a gap loses no deletion.  An
Inbox brings the events from the reflectors' threads to the event loop.  (kopf ran every event
through its per-object machinery: a task per object, a diff base, the handler's keyword
arguments; at a thousand tenants that was more than half of the time the operator held the GIL,
for events that only have to reach a handler.)
"""
from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import Callable

from ... import kube

log = logging.getLogger("yunshang.operator")

Deliver = Callable[[str, dict], None]


class Gone(Exception):
    """The resourceVersion to watch from is too old: list again."""


class Reflector:
    def __init__(self, api, kind: str, label_selector: str, deliver: Deliver, *,
                 on_listed: Callable[[str], None] = lambda kind: None, stub_labels: tuple[str, ...] = (),
                 timeout: int = 300, namespace: str | None = None, k=kube):
        """``kind``: one of ``kube.KINDS``.  ``stub_labels``: the labels a DELETED event made up after a
        relist carries (all if empty).  ``namespace``: that namespace's only (default: all)."""
        self.namespace = namespace
        self.api, self.kind, self.api_version, self.selector = api, kind, kube.api_version(kind), label_selector
        self.stub_labels = stub_labels
        self.deliver, self.on_listed, self.timeout, self.k = deliver, on_listed, timeout, k
        # (namespace, name) -> its labels (only ``stub_labels``): enough for a DELETED event after a relist
        self.known: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self.listings = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ one round
    def list_once(self) -> str:
        """List, deliver every object (ADDED) and the ones gone since the last listing (DELETED);
        the resourceVersion to watch from."""
        seen, rv = {}, ""
        for items, rv in self.k.pages(self.api, self.kind, self.selector, namespace=self.namespace):
            for obj in items:  # page by page: a listing of tens of thousands is never all in memory
                obj.setdefault("kind", self.kind)  # a listing's items carry neither
                obj.setdefault("apiVersion", self.api_version)
                seen[self._key(obj)] = self._labels(obj)
                self.deliver("ADDED", obj)
        for key in self.known.keys() - seen.keys():
            self.deliver("DELETED", self._stub(key, self.known[key]))
        self.known = seen
        self.listings += 1
        if self.listings == 1:
            self.on_listed(self.kind)
        return rv

    def watch_once(self, rv: str) -> str:
        """Deliver the events after ``rv`` until the API server ends the watch; the last version seen."""
        for ev in self.k.watch(self.api, self.kind, rv, self.selector, self.timeout, namespace=self.namespace):
            etype, obj = ev.get("type"), ev.get("object") or {}
            if etype == "ERROR":
                if obj.get("code") == 410:
                    raise Gone(obj.get("message", "too old"))
                raise RuntimeError(f"watch of {self.kind}: {obj.get('code')} {obj.get('message')}")
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            if etype == "BOOKMARK":
                continue
            key = self._key(obj)
            if etype == "DELETED":
                self.known.pop(key, None)
            else:
                self.known[key] = self._labels(obj)
            self.deliver(etype, obj)
            if self._stopping.is_set():
                break
        return rv

    # ------------------------------------------------------------------ the thread
    def run(self) -> None:
        rv, failures = "", 0
        while not self._stopping.is_set():
            try:
                if not rv:
                    rv = self.list_once()
                rv = self.watch_once(rv)
                failures = 0
            except Gone:
                rv = ""
            except Exception as e:  # noqa: BLE001  (the API server restarts, a connection breaks: list again)
                if self._stopping.is_set():
                    return
                failures += 1
                pause = min(30, 2 ** failures)
                log.warning("watch of %s: %s; listing again in %ss", self.kind, kube.why(e), pause)
                rv = ""
                self._stopping.wait(pause)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"yunshang-watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _key(obj: dict) -> tuple[str, str]:
        md = obj.get("metadata") or {}
        return md.get("namespace") or "", md.get("name", "")

    def _labels(self, obj: dict) -> tuple[tuple[str, str], ...]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        keys = self.stub_labels or tuple(labels)
        return tuple((k, labels[k]) for k in keys if k in labels)

    def _stub(self, key: tuple[str, str], labels: tuple[tuple[str, str], ...]) -> dict:
        """What a DELETED event of an object known only by its key and labels looks like."""
        namespace, name = key
        return {"kind": self.kind, "apiVersion": self.api_version,
                "metadata": {"name": name, **({"namespace": namespace} if namespace else {}), "labels": dict(labels)}}



class Inbox:
    """Hands the reflectors' events (from their threads) to the event loop in batches: one wake-up of
    the loop for whatever came meanwhile, not one per event (each is a write to the loop's pipe)."""

    BATCH = 256  # calls made per turn of the loop, so that the workers are not starved

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._items: collections.deque[tuple[Callable[..., None], tuple]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, fn: Callable[..., None], *args) -> None:
        """``fn(*args)`` on the loop, after everything put before it (callable from any thread)."""
        self._items.append((fn, args))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self.loop.call_soon_threadsafe(self._drain)

    def sender(self, handler: Callable[[str, dict], None]) -> Deliver:
        """A ``deliver`` for a Reflector: ``handler(etype, obj)`` runs on the loop."""
        return lambda etype, obj: self.put(handler, etype, obj)

    def _drain(self) -> None:
        for _ in range(self.BATCH):
            try:
                fn, args = self._items.popleft()
            except IndexError:
                break
            try:
                fn(*args)
            except Exception:  # noqa: BLE001  (one odd event must not stop the others)
                log.exception("handling a watch event")
        else:
            self.loop.call_soon(self._drain)  # more may wait: after the loop's other work
            return
        with self._lock:  # a sender that came after the last popleft saw _scheduled set: look again
            if not self._items:
                self._scheduled = False
                return
        self.loop.call_soon(self._drain)
