"""kopf's part: watches, peering, start-up and clean-up; thin shells over the Reconciler.

Every handler here only hands an event to the reconciler kept in kopf's memo; no handler
writes, and none of kopf's own bookkeeping (finalizers, progress or diff-base annotations) is
used for tenants, so an event costs the API server nothing.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import kopf
from kubernetes import client, config

from .. import auditing, tenancy
from ..models.tenant import GROUP, VERSION
from .kube import why
from .reconciler import Reconciler
from .settings import Settings

TENANTS = (GROUP, VERSION, "tenants")
CHILD_RESOURCES = [
    ("", "v1", "namespaces"),
    ("", "v1", "resourcequotas"),
    ("", "v1", "limitranges"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("networking.k8s.io", "v1", "networkpolicies"),
]
OWNED = {tenancy.LABEL_TENANT: kopf.PRESENT}
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
    # the API server sends only what the platform manages (a tenant's own RoleBindings, NetworkPolicies
    # and everything of other controllers never reach the operator); kopf's label filters stay as well
    for _g, _v, plural in CHILD_RESOURCES:
        settings.watching.label_selectors[plural] = f"{tenancy.MANAGED_BY_KEY}={tenancy.MANAGED_BY_VALUE}"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    s = Settings.from_env()
    settings.execution.max_workers = max(4, s.concurrency)
    settings.peering.lifetime = s.peering_lifetime
    r = Reconciler(make_api(s.concurrency + 8), s)
    memo["reconciler"] = r
    r.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("tasks", []):
        task.cancel()
    r = memo.get("reconciler")
    if r is not None:
        await r.stop()


@kopf.on.event(*TENANTS)
async def tenant_event(event: dict, memo: kopf.Memo, **_: Any) -> None:
    reconciler(memo).tenant_event(event.get("type"), event["object"])


async def _child_event(event: dict, memo: kopf.Memo, **_: Any) -> None:
    reconciler(memo).child_event(event.get("type"), event["object"])


for _g, _v, _plural in CHILD_RESOURCES:
    kopf.on.event(_g, _v, _plural, labels=OWNED, id=f"child_{_plural}")(_child_event)
