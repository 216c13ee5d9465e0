"""What the operator remembers between events: slim records, not whole bodies.

Per tenant: its spec and status (what reconciling needs) and identity.  Per owned child: its
resourceVersion and whether it matched the desired object (with that object's hash), plus the
quota's status for the metrics; a child seen before its tenant keeps a slimmed body (no
managedFields, no status) until it can be compared.  managedFields are never kept.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping

from ... import tenancy

Key = tuple[str, str, str]  # kind, namespace, name
ANNOTATION_PREFIX = "platform.yunshang.io/"  # the tenant annotations worth keeping (elastic quota)


def digest(obj: Mapping[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), digest_size=12).hexdigest()


@dataclasses.dataclass(slots=True)
class TenantRecord:
    name: str
    uid: str
    generation: int
    resource_version: str
    spec: dict
    status: dict
    finalizers: tuple[str, ...]
    deleting: bool
    annotations: dict
    created: str = ""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> "TenantRecord":
        md = body.get("metadata") or {}
        return cls(name=md["name"], uid=md.get("uid", ""), generation=int(md.get("generation") or 0),
                   resource_version=md.get("resourceVersion", ""), spec=dict(body.get("spec") or {}),
                   status=dict(body.get("status") or {}), finalizers=tuple(md.get("finalizers") or ()),
                   deleting=bool(md.get("deletionTimestamp")),
                   annotations={k: v for k, v in (md.get("annotations") or {}).items() if k.startswith(ANNOTATION_PREFIX)},
                   created=md.get("creationTimestamp") or "")

    def body(self) -> dict:
        """Enough of the object for Events and the sharing code."""
        return {"apiVersion": tenancy.API_VERSION, "kind": "Tenant",
                "metadata": {"name": self.name, "uid": self.uid, "generation": self.generation,
                             "annotations": dict(self.annotations)},
                "spec": self.spec, "status": self.status}


def slim(obj: Mapping[str, Any]) -> dict:
    md = obj.get("metadata") or {}
    keep = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    keep["metadata"] = {k: md[k] for k in ("name", "namespace", "labels", "annotations", "ownerReferences") if k in md}
    return keep


@dataclasses.dataclass(slots=True)
class ChildEntry:
    rv: str
    dhash: str | None = None  # hash of the desired object it was compared with
    synced: bool = False  # it matched that desired object
    body: dict | None = None  # slimmed, only until it can be compared
    quota: dict | None = None  # ResourceQuota status {hard, used}, for the metrics


class Cache:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantRecord] = {}
        self.children: dict[str, dict[Key, ChildEntry]] = {}
        self.by_parent: dict[str, set[str]] = {}
        self.ns_owner: dict[str, str] = {}

    # tenants
    def put_tenant(self, rec: TenantRecord) -> TenantRecord | None:
        old = self.tenants.get(rec.name)
        if old is not None and old.spec.get("parent"):
            self.by_parent.get(old.spec["parent"], set()).discard(rec.name)
        self.tenants[rec.name] = rec
        if rec.spec.get("parent"):
            self.by_parent.setdefault(rec.spec["parent"], set()).add(rec.name)
        return old

    def drop_tenant(self, name: str) -> None:
        old = self.tenants.pop(name, None)
        if old is not None and old.spec.get("parent"):
            self.by_parent.get(old.spec["parent"], set()).discard(name)
        self.children.pop(name, None)
        for ns in [n for n, t in self.ns_owner.items() if t == name]:
            del self.ns_owner[ns]

    def parent_of(self, name: str) -> str | None:
        rec = self.tenants.get(name)
        return rec.spec.get("parent") if rec else None

    # children
    def child(self, tenant: str, key: Key) -> ChildEntry | None:
        return self.children.get(tenant, {}).get(key)

    def put_child(self, tenant: str, key: Key, entry: ChildEntry) -> None:
        self.children.setdefault(tenant, {})[key] = entry
        if key[0] == "Namespace":
            self.ns_owner[key[2]] = tenant

    def drop_child(self, tenant: str, key: Key) -> ChildEntry | None:
        entry = self.children.get(tenant, {}).pop(key, None)
        if key[0] == "Namespace" and self.ns_owner.get(key[2]) == tenant:
            del self.ns_owner[key[2]]
        return entry
