"""A de-duplicating work queue of tenant names (the shape of controller-runtime's): a name is
queued at most once, never handed to two workers at the same time, and handed out once more
if it was added again while a worker had it.  Two priorities: events before the resync."""
from __future__ import annotations

import asyncio
import collections


class WorkQueue:
    def __init__(self) -> None:
        self._high: collections.deque[str] = collections.deque()
        self._low: collections.deque[str] = collections.deque()
        self._queued: dict[str, bool] = {}  # name -> queued at high priority
        self._active: set[str] = set()
        self._again: dict[str, bool] = {}  # added while active -> high priority?
        self._ready = asyncio.Event()

    def add(self, name: str, low: bool = False) -> None:
        if name in self._active:
            self._again[name] = self._again.get(name, False) or not low
            return
        if name in self._queued:
            if not low and not self._queued[name]:  # promote: it waits in the low queue, skipped there
                self._queued[name] = True
                self._high.append(name)
            return
        self._queued[name] = not low
        (self._low if low else self._high).append(name)
        self._ready.set()

    async def get(self) -> str:
        while True:
            name = self._pop()
            if name is not None:
                return name
            self._ready.clear()
            await self._ready.wait()

    def _pop(self) -> str | None:
        for dq, high in ((self._high, True), (self._low, False)):
            while dq:
                name = dq.popleft()
                if self._queued.get(name) is high:  # else: promoted (a stale low entry) or already taken
                    del self._queued[name]
                    self._active.add(name)
                    return name
        return None

    def done(self, name: str) -> None:
        self._active.discard(name)
        if name in self._again:
            high = self._again.pop(name)
            self.add(name, low=not high)

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)
