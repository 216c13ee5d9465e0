"""The Runtime: the one object every feature of the operator is built on.

Built once in `__main__` from the Settings: the API clients, the tenants' slim cache, the audit
log, the watches (reflectors feeding the event loop through one inbox), the periodic loops, the
work queues' controllers and the leadership.  A feature registers what it needs (`watch`,
`every`, `controller`, `on_start`, `on_leading`) before `start`; nothing here knows the features.

Leadership: standalone (no lease) this replica always acts.  With a lease, every replica keeps
its watches and caches warm, and only the leader's workers and loops act; every write also asks
`active()` (kube's write guard), so a leader that lost its lease writes nothing more.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any, Awaitable, Callable

from .audit import AuditLog
from .cache import Cache
from .controller import Controller
from . import metrics
from .leader import LeaderElector
from .reflector import Inbox, Reflector
from .settings import Settings
from ... import kube

log = logging.getLogger("yunshang.operator")


class Runtime:
    def __init__(self, api, settings: Settings, *, watch_api=None, cache: Cache | None = None,
                 audit: AuditLog | None = None, k=kube):
        self.api, self.settings, self.k = api, settings, k
        self.watch_api = watch_api if watch_api is not None else api
        self.cache = cache or Cache()  # the tenants' (yunshang.operator.tenants fills it; others read it)
        self.audit = audit or AuditLog(lambda: self.api)
        self.views_stale = asyncio.Event()  # a department's view wants a new round (views.py)
        self.on_tenant_gone: list[Callable[[str], None]] = []  # called (in a thread) as a tenant's finalizer ends
        self.started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # decisions before: not timed
        self.decisions_seen: set[tuple[str, int, str]] = set()  # (object, round, role): timed once
        self.elector: LeaderElector | None = None
        if settings.lease:
            self.elector = LeaderElector(api, settings.lease_namespace, settings.lease, settings.identity,
                                         lease_duration=settings.lease_duration,
                                         renew_deadline=settings.renew_deadline, retry_period=settings.retry_period,
                                         on_started=self._started_leading, k=k)
        if api is not None:
            api.may_write = self.active  # kube's write guard
            api.on_write = metrics.count_write
        self.inbox: Inbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watches: list[tuple[str, str, Callable[[str, dict], None], tuple[str, ...], str | None]] = []
        self._reflectors: list[Reflector] = []
        self._starters: list[Callable[[], Any]] = []
        self._stoppers: list[Callable[[], Awaitable[None]]] = []
        self._leading_hooks: list[Callable[[], None]] = []
        self._loops: list[Callable[[], Awaitable[None]]] = []
        self._tasks: list[asyncio.Task] = []
        self._unlisted: set[str] = set()
        self._last_event = time.monotonic()

    def views_changed(self) -> None:
        """A department's view wants a new round (views.py); callable from any thread."""
        loop = self._loop
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or here is loop:
            self.views_stale.set()
        else:
            loop.call_soon_threadsafe(self.views_stale.set)

    # ------------------------------------------------------------------ leadership
    def active(self) -> bool:
        """May this replica act (and write)?  Standalone: always; else while its lease is fresh."""
        return self.elector is None or self.elector.leading()

    def on_leading(self, fn: Callable[[], None]) -> None:
        """``fn`` on the loop whenever this replica starts leading (e.g. enqueue everything)."""
        self._leading_hooks.append(fn)

    def _started_leading(self) -> None:
        for fn in self._leading_hooks:
            fn()

    # ------------------------------------------------------------------ registration
    def watch(self, kind: str, handler: Callable[[str, dict], None], label_selector: str = "",
              stub_labels: tuple[str, ...] = (), namespace: str | None = None) -> None:
        """A reflector of ``kind`` (one of kube.KINDS) whose events ``handler(type, body)`` gets on the
        loop (``namespace``: that namespace's objects only)."""
        self._watches.append((kind, label_selector, handler, stub_labels, namespace))

    def controller(self, name: str, reconcile: Callable[[str], None], workers: int = 2,
                   keys: Callable[[], list[str]] = list) -> Controller:
        """A work queue of keys, each reconciled by ``reconcile(key)`` in a thread while this replica
        acts; ``keys()``: every key, enqueued when this replica starts leading."""
        c = Controller(self, name, reconcile, workers)
        self.on_start(c.start)
        self.on_leading(lambda: [c.add(key) for key in keys()])
        return c

    def on_start(self, fn: Callable[[], Any]) -> None:
        """``fn()`` on the loop when the runtime starts (after the watches started)."""
        self._starters.append(fn)

    def on_stop(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._stoppers.append(fn)

    def every(self, what: str, fn: Callable[[], Any], seconds: float, *, wake: asyncio.Event | None = None,
              settle: bool = False, in_thread: bool = True) -> None:
        """``fn`` every ``seconds`` (sooner when ``wake`` is set), only while this replica acts; a
        failure is logged in one line and the next round retries.  ``settle``: first wait until the
        watches' initial listings are in.  ``in_thread``: blocking work (API calls) off the loop."""
        async def rounds() -> None:
            if settle:
                await self.settled()
            while True:
                if wake is not None:
                    wake.clear()
                try:
                    if self.active():
                        if in_thread:
                            await asyncio.to_thread(fn)
                        else:
                            fn()
                except Exception as e:  # noqa: BLE001  (the next round retries)
                    log.warning("%s: %s", what, kube.why(e))
                if wake is None:
                    await asyncio.sleep(seconds)
                    continue
                try:  # woken: what comes together goes together
                    await asyncio.wait_for(wake.wait(), seconds)
                    await asyncio.sleep(0.5)
                except asyncio.TimeoutError:
                    pass

        self._loops.append(rounds)

    def spawn(self, coro: Awaitable[None]) -> None:
        """A task of the runtime's (cancelled at stop); only once started."""
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    # ------------------------------------------------------------------ the watches' first listings
    def _listed(self, kind: str) -> None:
        self._unlisted.discard(kind)

    def _stamped(self, handler: Callable[[str, dict], None]) -> Callable[[str, dict], None]:
        def handle(etype: str, body: dict) -> None:
            self._last_event = time.monotonic()
            handler(etype, body)
        return handle

    async def settled(self, quiet: float = 1.0, at_most: float = 15.0, listing: float = 300.0) -> None:
        """Until the watches' initial listings are in (each kind listed, then no event for ``quiet``
        seconds): an object not yet listed must not look missing."""
        start = time.monotonic()
        while self._unlisted and time.monotonic() - start < listing:
            await asyncio.sleep(0.1)
        start = time.monotonic()
        while time.monotonic() - self._last_event < quiet and time.monotonic() - start < at_most:
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ start and stop
    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.inbox = Inbox(loop)
        # a record that concerns a department changes its view (need-to-know, views.py)
        self.audit.on_append = lambda rec: self.views_changed()
        self._unlisted = {kind for kind, *_ in self._watches}
        for kind, selector, handler, stub, namespace in self._watches:
            # the mark "listed" goes through the inbox after the listing's events: handled after them
            r = Reflector(self.watch_api, kind, selector, self.inbox.sender(self._stamped(handler)),
                          on_listed=lambda k: self.inbox.put(self._listed, k), stub_labels=stub,
                          namespace=namespace, k=self.k)
            self._reflectors.append(r)
            r.start()
        for fn in self._starters:
            fn()
        for rounds in self._loops:
            self.spawn(rounds())
        if self.elector is not None:
            self.spawn(self.elector.run())

    async def stop(self) -> None:
        for r in self._reflectors:
            r.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # the lease is released as its task ends
        for fn in self._stoppers:
            await fn()
