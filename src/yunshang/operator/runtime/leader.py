"""Leader election by a coordination.k8s.io/v1 Lease, with client-go's semantics
(tools/leaderelection):

- every replica tries to acquire or renew every ``retry_period``; a Lease held by another is taken
  only when this replica has not seen it change for ``lease_duration`` (its own clock, the time it
  observed the change: no trust in the other's clock);
- the leader renews every ``retry_period``; when no renewal succeeded for ``renew_deadline`` (less
  than the lease duration) it stops leading: ``leading()`` turns false at that moment by the clock,
  even while a renewal hangs, so its writes stop before a standby may take the lease;
- every write is a PUT with the Lease's resourceVersion: two replicas can never both win a round;
- stopping releases the lease (holder emptied), so a standby takes over at its next try.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Callable

from kubernetes import client
from prometheus_client import Counter, Gauge

from ... import kube

log = logging.getLogger("yunshang.leader")
LEADING = Gauge("yunshang_operator_leading", "1 while this replica holds the leader election's Lease")
TRANSITIONS = Counter("yunshang_operator_leader_transitions_total",
                      "Times this replica started (started) or stopped (stopped) leading", ["event"])


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class Record:
    holder: str
    renew: str
    duration: int
    transitions: int
    acquired: str

    @classmethod
    def of(cls, lease: dict) -> "Record":
        s = lease.get("spec") or {}
        return cls(s.get("holderIdentity") or "", s.get("renewTime") or "", int(s.get("leaseDurationSeconds") or 0),
                   int(s.get("leaseTransitions") or 0), s.get("acquireTime") or "")


class LeaderElector:
    def __init__(self, api, namespace: str, name: str, identity: str, *, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 on_started: Callable[[], None] = lambda: None, on_stopped: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic, k=kube):
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("retry period < renew deadline < lease duration, please")
        self.api, self.namespace, self.name, self.identity, self.k = api, namespace, name, identity, k
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.on_started, self.on_stopped, self.clock = on_started, on_stopped, clock
        self._renewed: float | None = None  # when this replica last renewed (its clock), while it leads
        self._observed: Record | None = None
        self._observed_at = 0.0

    def leading(self) -> bool:
        """True only while the last successful renewal is younger than the renew deadline."""
        return self._renewed is not None and self.clock() - self._renewed < self.renew_deadline

    @property
    def holder(self) -> str:
        return self._observed.holder if self._observed else ""

    # ------------------------------------------------------------------ one try (blocking; in a thread)
    def try_acquire_or_renew(self) -> bool:
        now = dt.datetime.now(dt.timezone.utc)
        mine = {"holderIdentity": self.identity, "leaseDurationSeconds": int(round(self.lease_duration)),
                "renewTime": _stamp(now)}
        lease = self.k.get(self.api, "Lease", self.name, self.namespace)
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**mine, "acquireTime": _stamp(now), "leaseTransitions": 0}}
            try:
                lease = self.k.create(self.api, "Lease", body, count=False)
            except client.ApiException as e:
                if e.status == 409:  # another replica created it first
                    return False
                raise
            self._seen(lease)
            return True
        rec = Record.of(lease)
        if self._observed != rec:  # a change: (re)start the clock on it
            self._seen(lease)
        held_by_other = rec.holder and rec.holder != self.identity
        if held_by_other and self._observed_at + self.lease_duration > self.clock():
            return False
        spec = dict(lease.get("spec") or {})
        if rec.holder == self.identity:
            spec.update(mine)
        else:
            spec.update(mine, acquireTime=_stamp(now), leaseTransitions=rec.transitions + 1)
        body = {**lease, "spec": spec}
        try:
            lease = self.k.replace(self.api, "Lease", body, count=False)
        except client.ApiException as e:
            if e.status == 409:  # someone wrote it since our read: not ours this round
                return False
            raise
        self._seen(lease)
        return True

    def _seen(self, lease: dict) -> None:
        self._observed, self._observed_at = Record.of(lease), self.clock()

    def release(self) -> None:
        """Give the lease up (only if still ours): a standby takes it at its next try."""
        lease = self.k.get(self.api, "Lease", self.name, self.namespace)
        if lease is None or Record.of(lease).holder != self.identity:
            return
        spec = {**(lease.get("spec") or {}), "holderIdentity": "", "leaseDurationSeconds": 1}
        self.k.replace(self.api, "Lease", {**lease, "spec": spec}, count=False)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Acquire, lead until a renewal misses its deadline, stand by again; until cancelled."""
        try:
            while True:
                await self._acquire()
                await self._renew()
        finally:
            if self._renewed is not None:
                self._stop()
                try:
                    await asyncio.wait_for(asyncio.to_thread(self.release), self.retry_period)
                except Exception as e:  # noqa: BLE001  (it runs out by itself)
                    log.info("releasing the lease: %s", kube.why(e))

    async def _try(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.try_acquire_or_renew), max(0.1, timeout))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  (the API server away, a slow answer: the next try)
            log.info("lease %s/%s: %s", self.namespace, self.name, kube.why(e) if str(e) else type(e).__name__)
            return False

    async def _acquire(self) -> None:
        said = ""
        while True:
            t0 = self.clock()
            if await self._try(self.retry_period):
                self._renewed = t0
                LEADING.set(1)
                TRANSITIONS.labels("started").inc()
                log.info("leading (lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
                self.on_started()
                return
            if self.holder != said:
                said = self.holder
                log.info("standing by: the lease %s/%s is held by %s", self.namespace, self.name, said or "nobody")
            await asyncio.sleep(self.retry_period)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.retry_period)
            t0 = self.clock()
            left = self._renewed + self.renew_deadline - t0
            if left > 0 and await self._try(left):
                self._renewed = t0
                continue
            if not self.leading():
                log.warning("lost the lease %s/%s: no renewal for %.0fs; standing by", self.namespace, self.name,
                            self.renew_deadline)
                self._stop()
                return

    def _stop(self) -> None:
        self._renewed = None
        LEADING.set(0)
        TRANSITIONS.labels("stopped").inc()
        self.on_stopped()
