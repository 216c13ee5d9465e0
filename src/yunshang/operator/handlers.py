"""kopf's part for tenants: peering, start-up and clean-up; thin shells over the Reconciler.

Tenants and the children each owns (eight or more objects per tenant) are watched by lean
reflectors (reflector.py), not through kopf: every event goes straight to the reconciler kept in
kopf's memo.  None of kopf's own bookkeeping (finalizers, progress or diff-base annotations) is
used for tenants, so an event costs the API server nothing.  kopf keeps the kinds with few
objects and handlers of their own (agreements, offers, the sharing paths).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import kopf
from kubernetes import client, config

from .. import auditing, tenancy
from .. import sharing as sharing_model
from ..models.tenant import GROUP
from .kube import why
from .reconciler import Reconciler
from .reflector import Inbox, Reflector
from .settings import Settings

# what a tenant owns; asked from the API server by label: managed by the platform and naming its
# tenant (a tenant's own RoleBindings and NetworkPolicies never arrive)
CHILD_KINDS = ("Namespace", "ResourceQuota", "LimitRange", "RoleBinding", "NetworkPolicy")
CHILD_SELECTOR = f"{tenancy.MANAGED_BY_KEY}={tenancy.MANAGED_BY_VALUE},{tenancy.LABEL_TENANT}"
log = logging.getLogger("yunshang.operator")


def make_api(pool_size: int) -> client.ApiClient:
    try:
        config.load_incluster_config()
        cfg = client.Configuration.get_default_copy()
    except config.ConfigException:
        cfg = client.Configuration()
        config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    api = client.ApiClient(cfg)
    # the audit trail skips requests with this agent: the operator records its own actions
    api.user_agent = f"{auditing.OPERATOR_AGENT}/0.1"
    return api


def reconciler(memo: kopf.Memo) -> Reconciler:
    return memo["reconciler"]


def spawn(memo: kopf.Memo, coro) -> None:
    """Run one of the operator's global loops (anchor, alerting, elastic quota) until clean-up."""
    memo.setdefault("tasks", []).append(asyncio.get_running_loop().create_task(coro))


def spawn_rounds(memo: kopf.Memo, what: str, fn: Callable[[], Any], seconds: float, *,
                 wake: asyncio.Event | None = None, settle: bool = False) -> None:
    """One of the operator's global loops: ``fn`` in a thread every ``seconds`` (sooner when
    ``wake`` is set), only while this replica acts; a failure is logged in one line and the next
    round retries.  ``settle``: first wait until the watches' initial listings are in."""
    r = reconciler(memo)

    async def rounds() -> None:
        if settle:
            await r.settled()
        while True:
            if wake is not None:
                wake.clear()
            try:
                if r.active():
                    await asyncio.to_thread(fn)
            except Exception as e:  # noqa: BLE001  (the next round retries)
                log.warning("%s: %s", what, why(e))
            if wake is None:
                await asyncio.sleep(seconds)
                continue
            try:  # woken: what comes together goes together
                await asyncio.wait_for(wake.wait(), seconds)
                await asyncio.sleep(0.5)
            except asyncio.TimeoutError:
                pass

    spawn(memo, rounds())


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's own finalizer name differs from the reconciler's: kopf never takes ours off
    settings.persistence.finalizer = f"{GROUP}/kopf"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled")
    settings.posting.level = logging.WARNING  # Events are posted by the reconciler, for transitions
    # kopf watches NetworkPolicies only for the sharing paths (sharing.py): the API server sends those only
    settings.watching.label_selectors["networkpolicies"] = sharing_model.LABEL_AGREEMENT
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    s = Settings.from_env()
    settings.execution.max_workers = max(4, s.concurrency)
    settings.peering.lifetime = s.peering_lifetime
    r = Reconciler(make_api(s.concurrency + 8), s)
    memo["reconciler"] = r
    r.start()
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop)
    watch_api = make_api(len(CHILD_KINDS) + 2)  # one long-lived connection per kind
    watches = [("Tenant", "", r.tenant_event)] + [(kind, CHILD_SELECTOR, r.child_event) for kind in CHILD_KINDS]
    for kind, selector, handler in watches:
        r.follow(kind)
        # the mark "listed" goes through the inbox after the listing's events: handled after them
        reflector = Reflector(watch_api, kind, selector, inbox.sender(handler),
                              on_listed=lambda k: inbox.put(r.listed, k),
                              stub_labels=(tenancy.LABEL_TENANT,))
        memo.setdefault("reflectors", []).append(reflector)
        reflector.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for reflector in memo.get("reflectors", []):
        reflector.stop()
    for task in memo.get("tasks", []):
        task.cancel()
    r = memo.get("reconciler")
    if r is not None:
        await r.stop()


