"""A controller for kinds with few objects (agreements, offers): a work queue of names, each
reconciled by a plain blocking function in a thread, ``workers`` at a time, only while the
runtime acts; a failure re-queues the name after a back-off that doubles (up to a minute)."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ... import kube
from .queue import WorkQueue

log = logging.getLogger("yunshang.operator")


class Controller:
    def __init__(self, rt, name: str, reconcile: Callable[[str], None], workers: int = 2):
        """``rt``: the Runtime (manager.py) whose leadership, settling and tasks it uses."""
        self.rt, self.name, self.reconcile, self.workers = rt, name, reconcile, workers
        self.queue = WorkQueue()
        self._failures: dict[str, int] = {}

    def add(self, key: str, low: bool = False) -> None:
        self.queue.add(key, low=low)

    def start(self) -> None:
        for _ in range(self.workers):
            self.rt.spawn(self._worker())

    async def _worker(self) -> None:
        await self.rt.settled()
        while True:
            key = await self.queue.get()
            try:
                if self.rt.active():
                    await asyncio.to_thread(self.reconcile, key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (one object's failure must not stop the others)
                n = self._failures[key] = self._failures.get(key, 0) + 1
                pause = min(60.0, 0.5 * 2 ** n)
                log.warning("%s %s: %s; again in %.0fs", self.name, key, kube.why(e), pause)
                asyncio.get_running_loop().call_later(pause, self.queue.add, key)
            finally:
                self.queue.done(key)
