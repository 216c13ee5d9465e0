"""The audit chain's anchor: its head published where the chain's own storage cannot erase it.

Every ``audit_anchor_seconds`` the operator looks at the AuditRecords in the API server,
exports their count and highest sequence number as metrics (Prometheus keeps their history, and
alerts when they go backwards or fall below the anchor), and moves the anchor — a ConfigMap the
platform admins choose (``audit_anchor``, namespace/name: stack config yunshang:auditAnchor)
— forward to the new head.  What to write is `models.audit.decide_anchor`'s (pure): never back,
never on a chain that is shorter than or does not extend the last anchor (the one in the
ConfigMap, or the one this process remembers); such a chain stays visible to `yunshang audit
verify` and to the alerts (yunshang_audit_anchor_broken / _missing) until a person looks at it.

At start-up, before anything the operator does can append a record, it writes the genesis
anchor (seq 0) if there are neither records nor an anchor: from then on, records without an
anchor can only mean the anchor was deleted.  A deleted (or moved back) ConfigMap is restored
from the remembered anchor when the chain still extends it; after a restart nothing is
remembered, and Prometheus (``prometheus_url``, when set) is asked for the highest head it
recorded instead.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from contextlib import nullcontext
from typing import Any, Callable

from ..models.audit import (DEFAULT_ANCHOR, WITNESS_QUERY, Anchor, AnchorDecision, AnchorState, Link, decide_anchor,
                            witness_seq)
from .. import kube
from .runtime import metrics
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.anchor")
START_ATTEMPTS = 10  # the start-up round, one second apart, before the periodic rounds take over


def where(ref: str = DEFAULT_ANCHOR) -> tuple[str, str]:
    ns, _, name = ref.partition("/")
    if not ns or not name:
        raise ValueError(f"audit anchor {ref!r} is not namespace/name")
    return ns, name


def read(api_client, ref: str = DEFAULT_ANCHOR) -> Anchor | None:
    ns, name = where(ref)
    cm = kube.get(api_client, "ConfigMap", name, ns)
    return Anchor.from_data((cm or {}).get("data"))


def _records(api_client) -> list[dict]:
    from kubernetes import client

    try:
        return kube.list_all(api_client, "AuditRecord")
    except client.ApiException as e:
        if e.status == 404:  # the CRD itself is gone, and every record with it
            return []
        raise


def chain_of(items: list[dict]) -> dict[int, Link]:
    """The chain as the anchor sees it (seq -> hash and previous hash), from AuditRecord objects."""
    out = {}
    for o in items:
        spec = o.get("spec") or {}
        if o["metadata"]["name"].startswith("rec-") and "seq" in spec:
            out[int(spec["seq"])] = Link(str(spec.get("hash", "")), str(spec.get("prevHash", "")))
    return out


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Anchorer:
    """One operator's anchoring: reads the chain and the ConfigMap, decides, writes, exports.

    Remembers the last anchor it published or checked (``last``), for the life of the process:
    that is what lets it restore a deleted ConfigMap, and refuse a chain shortened meanwhile."""

    def __init__(self, api_client, ref: str = DEFAULT_ANCHOR, prometheus: str = "",
                 clock: Callable[[], dt.datetime] = _utcnow):
        where(ref)
        self.api, self.ref, self.prometheus, self.clock = api_client, ref, prometheus, clock
        self.last: Anchor | None = None
        self._said: str | None = None  # the problem last logged: logged again only when it changes
        self._lock = threading.Lock()  # the start-up round and the periodic rounds never overlap

    def witness(self) -> int | None:
        """The highest head or anchor Prometheus recorded, asked only while nothing is remembered
        (after a start or a failover); None when no Prometheus is set or it cannot answer."""
        if not self.prometheus or self.last is not None:
            return None
        from ..elastic import query

        try:
            return witness_seq(query(self.prometheus, WITNESS_QUERY, timeout=5))
        except Exception as e:  # noqa: BLE001  (the witness is extra evidence; the ConfigMap still counts)
            log.warning("audit anchor: Prometheus at %s not consulted: %s", self.prometheus, kube.why(e))
            return None

    def round(self, starting: bool = False, hold: Any = None) -> AnchorDecision:
        """One round.  ``starting``: only the genesis anchor may be written (the periodic rounds,
        on the acting replica, do the rest); ``hold``: a lock held meanwhile (the audit log's, so
        that no record is appended before the genesis anchor)."""
        with self._lock, (hold if hold is not None else nullcontext()):
            chain = chain_of(_records(self.api))
            decision = decide_anchor(chain, read(self.api, self.ref), self.last, self.witness(), self.clock(),
                                     self.ref)
            genesis = decision.write is not None and decision.write.seq == 0 and not chain
            if starting and not genesis:
                return decision
            if decision.write is not None:
                self._publish(decision.write)
                if genesis:
                    log.info("audit anchor: the genesis anchor (#0) written in %s, before the first record", self.ref)
            self.last = decision.last
            self._export(chain, decision)
        return decision

    def _publish(self, anchor: Anchor) -> None:
        ns, name = where(self.ref)
        kube.apply(self.api, {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name, "namespace": ns,
                                           "labels": {"app.kubernetes.io/part-of": "yunshang"}},
                              "data": anchor.to_data()})

    def _export(self, chain: dict[int, Link], d: AnchorDecision) -> None:
        metrics.AUDIT_RECORDS.set(len(chain))
        metrics.AUDIT_HEAD.set(max(chain, default=0))
        metrics.AUDIT_ANCHOR.set(d.seq)
        metrics.AUDIT_ANCHOR_BROKEN.set(1 if d.state == AnchorState.broken else 0)
        metrics.AUDIT_ANCHOR_MISSING.set(1 if d.missing else 0)
        if d.restored:
            metrics.AUDIT_ANCHOR_RESTORES.inc()
            log.warning("%s", d.restored)
        metrics.AUDIT_ANCHOR_ROUNDS.inc()
        if d.problem != self._said:
            if d.problem:
                log.error("not anchoring: %s", d.problem)
            elif self._said:
                log.warning("the audit chain extends its anchor again (#%d): anchoring resumes", d.seq)
            self._said = d.problem


def setup(rt: Runtime) -> Anchorer:
    """The anchor on the runtime: its start-up round first (`start`), then a round every
    ``audit_anchor_seconds`` on the acting replica."""
    anchorer = Anchorer(rt.api, rt.settings.audit_anchor, rt.settings.prometheus_url)
    rt.every("audit anchor", anchorer.round, rt.settings.audit_anchor_seconds)
    if rt.elector is not None:  # a standby writes nothing: the genesis round when it starts leading
        rt.on_leading(lambda: rt.spawn(start(rt, anchorer)))
    return anchorer


async def start(rt: Runtime, anchorer: Anchorer) -> None:
    """The genesis anchor, holding the audit log's lock (nothing is appended meanwhile), before
    anything else of the operator's starts; the API server may still be starting: a few tries."""
    hold = rt.audit.appending  # no record may be appended before the genesis anchor
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await asyncio.to_thread(anchorer.round, True, hold)
            return
        except Exception as e:  # noqa: BLE001
            log.warning("audit anchor at start-up (attempt %d of %d): %s", attempt, START_ATTEMPTS, kube.why(e))
            await asyncio.sleep(1)
