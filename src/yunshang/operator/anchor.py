"""The audit chain's anchor: its head published where the chain's own storage cannot erase it.

Every YUNSHANG_AUDIT_ANCHOR_SECONDS the operator looks at the AuditRecords in the API server,
exports their count and highest sequence number as metrics (Prometheus keeps their history, and
alerts when they go backwards or fall below the anchor), and moves the anchor — a ConfigMap the
platform admins choose (YUNSHANG_AUDIT_ANCHOR=namespace/name, stack config yunshang:auditAnchor)
— forward to the new head.  It never moves the anchor back: a chain shorter than its anchor
stays visible to `yunshang audit verify` and to the alert until a person looks at it.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import kopf

from ..models.audit import DEFAULT_ANCHOR, Anchor
from . import kube, metrics
from .audit import record_name
from .handlers import reconciler, spawn_rounds

log = logging.getLogger("yunshang.anchor")
ANCHOR = os.environ.get("YUNSHANG_AUDIT_ANCHOR", DEFAULT_ANCHOR)
ANCHOR_SECONDS = float(os.environ.get("YUNSHANG_AUDIT_ANCHOR_SECONDS", "30"))


def where(ref: str = ANCHOR) -> tuple[str, str]:
    ns, _, name = ref.partition("/")
    if not ns or not name:
        raise ValueError(f"audit anchor {ref!r} is not namespace/name")
    return ns, name


def read(api_client, ref: str = ANCHOR) -> Anchor | None:
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


def observe_once(api_client, ref: str = ANCHOR) -> tuple[int, int, Anchor | None]:
    """Count the chain, export it, and move the anchor forward if the chain grew."""
    seqs = [int(o["metadata"]["name"].removeprefix("rec-")) for o in _records(api_client)
            if o["metadata"]["name"].startswith("rec-")]
    head = max(seqs, default=0)
    metrics.AUDIT_RECORDS.set(len(seqs))
    metrics.AUDIT_HEAD.set(head)
    anchor = read(api_client, ref)
    if head and (anchor is None or head > anchor.seq):
        rec = kube.get(api_client, "AuditRecord", record_name(head))
        if rec:
            anchor = Anchor(seq=head, hash=rec["spec"]["hash"], time=dt.datetime.now(dt.timezone.utc))
            ns, name = where(ref)
            kube.apply(api_client, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": name, "namespace": ns,
                                                 "labels": {"app.kubernetes.io/part-of": "yunshang"}},
                                    "data": anchor.to_data()})
    elif anchor is not None and head < anchor.seq:
        log.error("the audit chain ends at #%d, below its anchor #%d: %d records missing (not moving the anchor)",
                  head, anchor.seq, anchor.seq - len([s for s in seqs if s <= anchor.seq]))
    metrics.AUDIT_ANCHOR.set(anchor.seq if anchor else 0)
    return len(seqs), head, anchor


@kopf.on.startup()
async def start_anchoring(memo: kopf.Memo, **_: Any) -> None:
    spawn_rounds(memo, "audit anchor", lambda: observe_once(reconciler(memo).api), ANCHOR_SECONDS)

