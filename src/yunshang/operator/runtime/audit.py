"""Appending to the audit trail (AuditRecord objects, hash-chained).

One writer at a time in this process (a lock); across processes the record name is the
sequence number, so a second writer loses the create with 409, reloads the head and retries:
the chain never forks.  The head is read back from the API server after a restart.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Callable

from ...models.audit import GENESIS, AuditRecordSpec, ObjectRef, make
from ...models.tenant import API_VERSION
from ... import kube

log = logging.getLogger("yunshang.audit")


def record_name(seq: int) -> str:
    return f"rec-{seq:012d}"


class AuditLog:
    def __init__(self, api_factory):
        self._api = api_factory
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = None
        self.on_append: Callable[[AuditRecordSpec], None] | None = None  # e.g. the departments' views

    @property
    def appending(self) -> threading.Lock:
        """Held while a record is appended: holding it keeps anything from being appended meanwhile
        (the anchor's start-up round writes the genesis anchor under it)."""
        return self._lock

    def _load_head(self) -> tuple[int, str]:
        items = kube.list_all(self._api(), "AuditRecord")
        if not items:
            return 0, GENESIS
        last = max(items, key=lambda o: o["spec"]["seq"])
        return last["spec"]["seq"], last["spec"]["hash"]

    def append(self, actor: str, action: str, obj: ObjectRef, tenants: list[str], details: dict[str, str],
               time: dt.datetime | None = None) -> AuditRecordSpec:
        from kubernetes import client

        time = time or dt.datetime.now(dt.timezone.utc)
        with self._lock:
            for _attempt in range(10):
                if self._head is None:
                    self._head = self._load_head()
                seq, prev = self._head
                rec = make(seq + 1, time, actor, action, obj, tenants, details, prev)
                body = {"apiVersion": API_VERSION, "kind": "AuditRecord",
                        "metadata": {"name": record_name(rec.seq),
                                     "labels": {f"platform.yunshang.io/tenant-{t}": "" for t in rec.tenants}},
                        "spec": rec.model_dump(mode="json", by_alias=True)}
                try:
                    kube.create(self._api(), "AuditRecord", body)
                except client.ApiException as e:
                    if e.status == 409:  # another writer took this seq: reload and retry
                        self._head = None
                        continue
                    raise
                self._head = (rec.seq, rec.hash)
                if self.on_append is not None:
                    self.on_append(rec)
                log.info("audit #%d %s %s/%s by %s %s", rec.seq, action, obj.kind, obj.name, actor, details)
                return rec
        raise RuntimeError("could not append to the audit trail after 10 attempts")
