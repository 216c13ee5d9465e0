"""The tenant reconciler: one object that owns the operator's state.

Built once at start-up on the operator's Runtime (its API client, settings, slim cache and audit
log), with its own work queue and status bookkeeping; the runtime's reflectors feed it the events
of tenants and their children (`setup`).  The loop, as in controller-runtime:

- an event only enqueues the tenant's name (child events find their tenant by label); echoes of
  our own writes and status-only changes enqueue nothing;
- a fixed number of async workers drain the queue; a name is never reconciled twice at once;
- reconcile = the steps in order: namespaces, then quota and limits, RBAC and network policies
  concurrently (bounded by one semaphore for all API calls), each applied only where the cache
  says it differs; status written once per real transition; Events for transitions and repairs;
- one global resync enqueues every tenant at low priority.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime as dt
import functools
import logging
import time
from typing import Callable

from pydantic import ValidationError

from ... import policies, signoff, tenancy
from ...models.audit import ObjectRef
from ...models.tenant import GROUP, Decision, Phase, TenantSpec, namespace_names
from ... import kube
from ..runtime import metrics
from ..runtime.audit import AuditLog
from ..runtime.manager import Runtime
from ..runtime.cache import Cache, ChildEntry, Key, TenantRecord, digest, slim
from ..runtime.queue import WorkQueue
from ..runtime.settings import Settings
from . import steps
from .steps import status as status_step

FINALIZER = f"{GROUP}/finalizer"  # the name the earlier (kopf-managed) operator used: existing tenants keep working
OPERATOR = "yunshang-operator"
log = logging.getLogger("yunshang.operator")


class Desired:
    """A tenant's desired children, computed once per (spec generation, review state)."""

    __slots__ = ("spec", "review", "steps", "by_key")

    def __init__(self, spec: TenantSpec, review: tenancy.Review, objs: list[list[dict]]):
        self.spec, self.review, self.steps = spec, review, objs
        self.by_key = {tenancy.key_of(o): (o, digest(o)) for step in objs for o in step}


# what a tenant owns; asked from the API server by label: managed by the platform and naming its
# tenant (a tenant's own RoleBindings and NetworkPolicies never arrive)
CHILD_KINDS = steps.KINDS
CHILD_SELECTOR = f"{tenancy.MANAGED_BY_KEY}={tenancy.MANAGED_BY_VALUE},{tenancy.LABEL_TENANT}"


def setup(rt: Runtime) -> "Reconciler":
    """Tenants on the runtime: their watches (the tenants, and each kind they own by label), the
    workers and the resync; everything enqueued again when this replica starts leading."""
    r = Reconciler(rt.api, rt.settings, rt=rt)
    rt.watch("Tenant", r.tenant_event)
    for kind in CHILD_KINDS:
        rt.watch(kind, r.child_event, CHILD_SELECTOR, stub_labels=(tenancy.LABEL_TENANT,))
    rt.on_start(r.start)
    rt.on_stop(r.stop)
    rt.on_leading(lambda: [r.queue.add(name) for name in list(r.cache.tenants)])
    return r


class Reconciler:
    def __init__(self, api, settings: Settings, *, rt: Runtime | None = None, cache: Cache | None = None,
                 audit: AuditLog | None = None, today: Callable[[], dt.date] = dt.date.today, k=kube):
        """``rt``: the runtime it works on (one of its own, around ``api``, by default); ``k``: the API
        calls (module `kube`; a fake in the unit tests), each taking ``api`` first."""
        self.rt = rt or Runtime(api, settings, cache=cache, audit=audit, k=k)
        self.api = api
        self.k = k
        self.settings = settings
        self.cache = self.rt.cache
        self.queue = WorkQueue()
        self.audit = self.rt.audit
        self.today = today
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.concurrency,
                                                           thread_name_prefix="yunshang-api")
        self._sem: asyncio.Semaphore | None = None
        self._written: dict[str, dict] = {}  # tenant -> status this process wrote last
        self._desired: collections.OrderedDict[tuple, Desired] = collections.OrderedDict()
        self._specs: collections.OrderedDict[tuple, TenantSpec] = collections.OrderedDict()
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ API calls
    async def call(self, fn, *args, **kwargs):
        """One API call in the pool, at most `concurrency` in flight."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.settings.concurrency)
        async with self._sem:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(fn, self.api, *args, **kwargs))

    # ------------------------------------------------------------------ intake
    def tenant_event(self, etype: str | None, body: dict) -> None:
        name = body["metadata"]["name"]
        if etype == "DELETED":
            self._forget(name)
            return
        rec = TenantRecord.of(body)
        old = self.cache.put_tenant(rec)
        if old is None:
            self.rt.views_changed()
        if old is None or old.generation != rec.generation or old.deleting != rec.deleting \
                or old.uid != rec.uid or (rec.deleting and old.finalizers != rec.finalizers):
            self.queue.add(name)
            if old is not None and old.spec != rec.spec:
                for other in self._relatives(name, old.spec.get("parent")):
                    self.queue.add(other)

    def child_event(self, etype: str | None, body: dict) -> None:
        md = body["metadata"]
        tenant = (md.get("labels") or {}).get(tenancy.LABEL_TENANT)
        if not tenant:
            return
        key = tenancy.key_of(body)
        if etype == "DELETED":
            want = self._desired_of(tenant)
            if want is not None and key in want.by_key:  # still wanted: a tombstone, repaired as drift
                self.cache.put_child(tenant, key, ChildEntry(rv="", dhash=want.by_key[key][1], synced=False))
                self.queue.add(tenant)
            else:
                self.cache.drop_child(tenant, key)
            return
        rv = md.get("resourceVersion", "")
        entry = self.cache.child(tenant, key)
        quota = None
        if key[0] == "ResourceQuota":
            st = body.get("status") or {}
            quota = {"hard": dict(st.get("hard") or {}), "used": dict(st.get("used") or {})}
        if entry is not None and entry.rv == rv:
            if quota is not None:
                entry.quota = quota
            return  # the echo of our own write
        want = self._desired_of(tenant)
        d = want.by_key.get(key) if want else None
        if d is None:
            self.cache.put_child(tenant, key, ChildEntry(rv=rv, body=slim(body), quota=quota))
            if want is not None:
                self.queue.add(tenant)  # not wanted (any more): the reconcile removes it
            return
        synced = tenancy.in_sync(d[0], body)
        self.cache.put_child(tenant, key, ChildEntry(rv=rv, dhash=d[1], synced=synced, quota=quota))
        if not synced:
            self.queue.add(tenant)

    def _relatives(self, name: str, parent: str | None) -> set[str]:
        """Tenants that may have waited on this one: its children and its siblings."""
        out = set(self.cache.by_parent.get(name, ()))
        if parent:
            out |= self.cache.by_parent.get(parent, set())
        out.discard(name)
        return {t for t in out if (self.cache.tenants[t].status.get("phase") in (None, "Pending", "Approved"))}

    def _forget(self, name: str) -> None:
        parent = self.cache.parent_of(name)
        relatives = self._relatives(name, parent) if name in self.cache.tenants else set()
        self.cache.drop_tenant(name)
        self._written.pop(name, None)
        metrics.forget(name)
        for other in relatives:
            self.queue.add(other)

    # ------------------------------------------------------------------ desired state
    def _spec(self, rec: TenantRecord) -> TenantSpec:
        """The parsed spec, once per generation (a ValidationError is not cached: it is rare)."""
        k = (rec.name, rec.uid, rec.generation)
        spec = self._specs.get(k)
        if spec is None:
            spec = self._specs[k] = TenantSpec.model_validate(rec.spec)
            if len(self._specs) > 2048:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(k)
        return spec

    def _desired_of(self, name: str) -> Desired | None:
        rec = self.cache.tenants.get(name)
        if rec is None or rec.deleting:
            return None
        try:
            spec = self._spec(rec)
        except ValidationError:
            return None
        v = signoff.verdict(spec, self.settings.signoff_roles)
        if v.quota is None:
            return None
        if v.quota != spec.quota:  # a quota request waits for sign-off: the last approved quota meanwhile
            spec = spec.model_copy(update={"quota": v.quota})
        review = tenancy.review_state(spec.review_date, self.today(), self.settings.review_warn_days,
                                      self.settings.review_grace_days)
        k = (name, rec.uid, rec.generation, review.lapsed)
        hit = self._desired.get(k)
        if hit is not None:
            self._desired.move_to_end(k)
            return hit
        d = Desired(spec, review, steps.desired(name, rec.uid, spec, review.lapsed))
        self._desired[k] = d
        if len(self._desired) > 512:
            self._desired.popitem(last=False)
        return d

    def _synced(self, tenant: str, key: Key, want: tuple[dict, str]) -> bool:
        entry = self.cache.child(tenant, key)
        if entry is None:
            return False
        if entry.body is not None:  # seen before its tenant: compare now, then keep only the verdict
            entry.synced, entry.dhash, entry.body = tenancy.in_sync(want[0], entry.body), want[1], None
        return entry.dhash == want[1] and entry.synced

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sem = asyncio.Semaphore(self.settings.concurrency)
        self._tasks = [loop.create_task(self._worker(i)) for i in range(self.settings.workers)]
        self._tasks.append(loop.create_task(self._resync()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _worker(self, i: int) -> None:
        await self.rt.settled()
        while True:
            name = await self.queue.get()
            try:
                if self.active():
                    await self.reconcile(name)
                    # every completed reconcile counts, a pending tenant's too (each resync adds one per tenant)
                    metrics.RECONCILES.labels("ok").inc()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001  (one tenant's failure must not stop the others)
                metrics.RECONCILE_ERRORS.labels(name).inc()
                metrics.RECONCILES.labels("error").inc()
                log.warning("reconcile %s failed: %s; retrying in 5s", name, kube.why(e))
                asyncio.get_running_loop().call_later(5, self.queue.add, name)
            finally:
                self.queue.done(name)
            # a reconcile that writes nothing (most of a resync) never awaits: let the loop deliver the
            # events that came meanwhile (a drift waits for one reconcile, not for the whole resync)
            await asyncio.sleep(0)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for name in list(self.cache.tenants):
                self.queue.add(name, low=True)

    def active(self) -> bool:
        return self.rt.active()

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self, name: str) -> None:
        rec = self.cache.tenants.get(name)
        if rec is None:
            return
        t0 = time.monotonic()
        if rec.deleting:
            await self.finalize(rec)
            return
        try:
            spec = self._spec(rec)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            await self._status(rec, status_step.typed(Phase.Pending, f"invalid spec.{where}: {err['msg']}",
                                                      rec.generation))
            return
        if FINALIZER not in rec.finalizers:  # from the first sight on: every deletion goes through finalize()
            await self.call(self.k.patch, "Tenant", name, {"metadata": {"finalizers": [*rec.finalizers, FINALIZER]}})
            rec.finalizers = (*rec.finalizers, FINALIZER)
        roles = self.settings.signoff_roles
        if spec.approval is not None and spec.approval.decision == Decision.Approved and not spec.signoffs:
            # approved before parallel sign-off (or the git-reviewed catalog): written down as every
            # role's sign-off once, so that a later round of the request cannot lose it
            await self.call(self.k.patch, "Tenant", name, {"spec": {"signoffs": [
                o.model_dump(mode="json", by_alias=True, exclude_none=True) for o in signoff.migrated(spec, roles)]}})
            return  # the change comes back as an event
        opened = self._opened(rec, spec)
        v = signoff.verdict(spec, roles, opened=opened, days=self.settings.tenant_days,
                            now=dt.datetime.now(dt.timezone.utc))
        # each role's decision and deadline while a round is open (once approved, spec.signoffs says who and when)
        so = status_step.signoff(v, opened) if v.state != signoff.State.Approved else None
        self._observe_signoff(name, v, opened)
        if not v.approved or v.quota is None:
            phase = tenancy.phase_of(spec, signoff=v.state.value if not v.approved else "Approved")
            await self._status(rec, status_step.typed(phase if not v.approved else Phase.Approved, v.message(),
                                                      rec.generation, signoff=so))
            return
        blocked = self._hierarchy_problem(name, spec)
        if blocked:
            await self._status(rec, status_step.typed(Phase.Approved, blocked, rec.generation, signoff=so, conditions=[
                status_step.condition(False, "QuotaOverParent", blocked, rec.status)]))
            return
        conflict = self._conflict(rec, spec)
        if conflict:
            await self._hold(rec, conflict, so)
            return
        want = self._desired_of(name)
        namespaces, rest = want.steps[0], [o for objs in want.steps[1:] for o in objs]
        for batch in (namespaces, rest):  # namespaces first, then the rest together
            stale = [o for o in batch if not self._synced(name, tenancy.key_of(o), want.by_key[tenancy.key_of(o)])]
            if stale:
                try:
                    await asyncio.gather(*(self._apply(rec, o, want) for o in stale))
                except Exception as e:  # noqa: BLE001
                    refusal = kube.why(e)
                    if batch is not namespaces or policies.NAMESPACE_POLICY not in refusal:
                        raise
                    # a namespace that is not this tenant's (made by hand, retained, the platform's): never taken
                    await self._hold(rec, f"tenant {name}: {refusal.partition('denied request: ')[2] or refusal}", so)
                    return
        for key in [k for k in self.cache.children.get(name, {}) if k not in want.by_key]:
            await self._remove_extra(name, want.spec, key)
        new = status_step.provisioned(want.spec, want.review, rec.generation, self.settings.review_grace_days,
                                      rec.status, signoff=so, pending=None if v.state == signoff.State.Approved
                                      else v.message())
        old = await self._status(rec, new)
        if old is not None:
            await self._record_review_transition(name, want.spec, want.review, old)
        metrics.observe(name, want.spec, Phase(new["phase"]), self._usage(name), want.spec.quarantine is not None,
                        want.review)
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - t0)

    async def _apply(self, rec: TenantRecord, obj: dict, want: Desired) -> None:
        key = tenancy.key_of(obj)
        was = self.cache.child(rec.name, key)
        # drift: it was compared with this very desired object and differed (a spec change is no drift)
        drift = was is not None and was.dhash == want.by_key[key][1] and not was.synced
        resp = await self.call(self.k.apply, obj)
        self.cache.put_child(rec.name, key, ChildEntry(rv=resp["metadata"].get("resourceVersion", ""),
                                                       dhash=want.by_key[key][1], synced=True,
                                                       quota=was.quota if was else None))
        if drift:
            where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
            log.info("repaired drift of %s (tenant %s)", where, rec.name)
            await self.call(self.k.event, rec.body(), "Warning", "DriftRepaired", f"{where} restored")

    async def _remove_extra(self, name: str, spec: TenantSpec, key: Key) -> None:
        kind, ns, obj_name = key
        if kind == "Namespace" and spec.deletion_policy.value == "Retain":
            await self._retain(name, obj_name)
        else:
            await self.call(self.k.delete, kind, obj_name, ns or None)
        self.cache.drop_child(name, key)

    async def _retain(self, tenant: str, ns: str) -> None:
        """Keep a namespace and its data, detached from the tenant (labelled where it came from)."""
        await self.call(self.k.patch, "Namespace", ns, {"metadata": {
            "ownerReferences": None, "labels": {tenancy.LABEL_TENANT: None, tenancy.LABEL_RETAINED: tenant}}})

    def _conflict(self, rec: TenantRecord, spec: TenantSpec) -> str | None:
        """A namespace this tenant would take that carries another tenant's mark, or hostnames it is
        allowed that another tenant had first: then nothing is applied (the tenant is held)."""
        name = rec.name
        for ns in namespace_names(name, spec):
            owner = self.cache.ns_owner.get(ns)
            if owner is not None and owner != name:
                return (f"tenant {name}: namespace {ns} belongs to tenant {owner}; nothing was taken over "
                        "(the platform bureau renames this tenant's namespaces)")
        if not spec.allowed.hostnames:
            return None
        others: dict[str, TenantSpec] = {}
        for other, orec in self.cache.tenants.items():
            if other != name and not orec.deleting and (orec.spec.get("allowed") or {}).get("hostnames"):
                try:
                    others[other] = self._spec(orec)
                except ValidationError:
                    continue
        mine = (rec.created, name)
        return tenancy.hostname_problem(name, spec, others,
                                        lambda o: (self.cache.tenants[o].created, o) < mine,
                                        self.settings.host_suffixes)

    async def _hold(self, rec: TenantRecord, message: str, so: dict | None) -> None:
        """Phase Conflict: nothing of another's is taken; recorded in the audit trail once per transition."""
        old = await self._status(rec, status_step.typed(Phase.Conflict, message, rec.generation, signoff=so,
                                                        conditions=[status_step.condition(False, "Conflict", message,
                                                                                          rec.status)]))
        if old is not None:
            log.warning("%s", message)
            await asyncio.to_thread(self.audit.append, OPERATOR, "TenantConflict", ObjectRef(kind="Tenant", name=rec.name),
                                    [rec.name], {"problem": message})

    def _hierarchy_problem(self, name: str, spec: TenantSpec) -> str | None:
        if not spec.parent:
            return None
        if tenancy.parent_chain_has_cycle(name, _Parents(self.cache)):
            return "the chain of parents loops back to this tenant"
        parent_rec = self.cache.tenants.get(spec.parent)
        parent = None
        if parent_rec is not None:
            try:
                parent = self._spec(parent_rec)
            except ValidationError:
                parent = None
        siblings = {}
        for other in self.cache.by_parent.get(spec.parent, ()):
            orec = self.cache.tenants.get(other)
            if other == name or orec is None or orec.deleting:
                continue
            try:
                s = self._spec(orec)
            except ValidationError:
                continue
            if s.parent == spec.parent and signoff.verdict(s, self.settings.signoff_roles).approved:
                siblings[other] = s
        parent_ok = parent is not None and signoff.verdict(parent, self.settings.signoff_roles).approved
        return tenancy.hierarchy_problem(name, spec, spec.parent, parent, siblings, parent_approved=parent_ok)

    # ------------------------------------------------------------------ sign-off
    def _opened(self, rec: TenantRecord, spec: TenantSpec) -> dt.datetime | None:
        """When the current round was opened: round 1 with the tenant; a later round when this
        operator first saw it (kept in the status, so a restart does not move it)."""
        cur = spec.request_round
        so = rec.status.get("signoff") or {}
        when = so.get("opened") if so.get("round") == cur else (rec.created if cur == 1 else None)
        if when:
            return dt.datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def _observe_signoff(self, name: str, v: signoff.Verdict, opened: dt.datetime | None) -> None:
        """Deadlines of the pending decisions; the time each decision took, once per decision."""
        metrics.pending_decisions("tenant", name, {r.role: r.deadline.timestamp() if r.deadline else None
                                                   for r in v.roles})
        for r in v.roles:
            d = r.decision
            key = (name, v.round, r.role)
            if d is None or key in self.rt.decisions_seen or d.reason == signoff.MIGRATED_REASON:
                continue
            self.rt.decisions_seen.add(key)
            took = signoff.decision_seconds(opened, d)
            if took is not None and d.at is not None and d.at >= self.rt.started:
                metrics.DECISION_SECONDS.labels("tenant", r.role).observe(took)

    def _usage(self, name: str) -> list[dict]:
        out = []
        for key, entry in sorted(self.cache.children.get(name, {}).items()):
            if key[0] == "ResourceQuota":
                q = entry.quota or {}
                out.append({"name": key[1], "hard": q.get("hard", {}), "used": q.get("used", {})})
        return out

    async def _status(self, rec: TenantRecord, want: dict) -> dict | None:
        """Write the status if it changed for real; on a phase transition post an Event.
        Returns the previous status on a transition."""
        mine = self._written.get(rec.name)
        if not status_step.changed(want, rec.status) or (mine is not None and not status_step.changed(want, mine)):
            return None
        old = mine or rec.status
        write = self.call(self.k.patch, "Tenant", rec.name, {"status": want}, sub="status")
        if old.get("phase") == want.get("phase"):
            await write
            old = None
        else:  # the transition's Event goes out with the status
            new = want["phase"]
            await asyncio.gather(write, self.call(self.k.event, rec.body(), "Warning" if new == "Rejected" else "Normal",
                                                  new, want.get("message") or f"tenant is {new}"))
        self._written[rec.name] = want
        rec.status = want
        return old

    async def _record_review_transition(self, name: str, spec: TenantSpec, review: tenancy.Review, old: dict) -> None:
        """The review lapsing (suspension by the platform itself) and its renewal go into the audit trail."""
        was_lapsed = (old.get("message") or "").startswith(tenancy.REVIEW_LAPSED_PREFIX)
        ref = ObjectRef(kind="Tenant", name=name)
        if review.lapsed and not was_lapsed:
            await asyncio.to_thread(self.audit.append, OPERATOR, "TenantReviewLapsed", ref, [name], {
                "reviewDate": spec.review_date.isoformat(), "graceDays": str(self.settings.review_grace_days),
                "effect": "suspended (pods: 0), data kept"})
        elif was_lapsed and not review.lapsed:
            await asyncio.to_thread(self.audit.append, OPERATOR, "TenantReviewRenewed", ref, [name], {
                "reviewDate": spec.review_date.isoformat() if spec.review_date else ""})

    # ------------------------------------------------------------------ deletion
    async def finalize(self, rec: TenantRecord) -> None:
        """Delete removes the namespaces (and data); Retain detaches and keeps them."""
        if FINALIZER not in rec.finalizers:
            return
        name = rec.name
        namespaces = [k[2] for k in self.cache.children.get(name, {}) if k[0] == "Namespace"]
        if rec.status.get("phase") != Phase.Terminating.value:
            await self._status(rec, {"phase": Phase.Terminating.value,
                                     "message": f"removing {len(namespaces)} namespace(s)",
                                     "observedGeneration": rec.generation})
        policy = rec.spec.get("deletionPolicy", "Retain")
        for ns in namespaces:
            if policy == "Delete":
                await self.call(self.k.delete, "Namespace", ns)
            else:
                await self._retain(name, ns)
                self.cache.drop_child(name, ("Namespace", "", ns))
        if policy == "Delete":
            remaining = [ns for ns in namespaces if await self.call(self.k.get, "Namespace", ns) is not None]
            if remaining:
                log.info("tenant %s: waiting for namespaces %s to go", name, ", ".join(remaining))
                asyncio.get_running_loop().call_later(2, self.queue.add, name)
                return
        for hook in self.rt.on_tenant_gone:
            await asyncio.to_thread(hook, name)
        await self.call(self.k.patch, "Tenant", name,
                        {"metadata": {"finalizers": [f for f in rec.finalizers if f != FINALIZER]}})
        self._forget(name)


class _Parents:
    """tenant -> its parent (for cycle detection)."""

    def __init__(self, cache: Cache):
        self.cache = cache

    def get(self, name: str) -> str | None:
        return self.cache.parent_of(name)
