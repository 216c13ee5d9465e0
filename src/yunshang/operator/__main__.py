"""Run the operator: `python -m yunshang.operator [--lease NAME] [--kubeconfig F] ...` (--help).

Reads its Settings once (command line over environment), builds the Runtime, puts each feature on
it (tenants, offers, sharing, department views, alert routing, audit anchor, quarantine and the
audit intake, elastic quota), and runs until SIGTERM or SIGINT.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .. import auditing
from .. import kube
from .runtime.manager import Runtime
from .runtime.settings import Settings

log = logging.getLogger("yunshang.operator")


def build(settings: Settings) -> tuple[Runtime, object]:
    """The runtime with every feature on it; the anchorer (whose start-up round goes first)."""
    from . import alerting, anchor, elastic_quota, quarantine, tenants, views, webhook_endpoint
    from .offers import Offers
    from .sharing import Agreements

    agent = f"{auditing.OPERATOR_AGENT}/0.1"  # the audit trail skips requests with this agent
    api = kube.connect(settings.kubeconfig, settings.context, settings.concurrency + 8, agent)
    watch_api = kube.connect(settings.kubeconfig, settings.context, 10, agent)  # one long-lived connection per kind
    rt = Runtime(api, settings, watch_api=watch_api)
    anchorer = anchor.setup(rt)
    tenants.setup(rt)
    offers = Offers(rt).setup()
    agreements = Agreements(rt, offers.spec).setup()
    views.setup(rt, lambda: list(agreements.bodies.values()))
    alerting.setup(rt)
    quarantine.setup(rt, lambda name: agreements.parties.get(name, ()))
    webhook_endpoint.setup(rt)
    elastic_quota.setup(rt)
    return rt, anchorer


async def run(settings: Settings) -> None:
    from . import anchor, discovery

    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_address)
    rt, anchorer = build(settings)
    kubelets = discovery.Kubelets(rt) if settings.health_port else None  # Prometheus' kubelet targets
    await asyncio.to_thread(wait_for_crds, rt.api)
    if rt.elector is None:  # standalone: the genesis anchor before anything can append a record
        await anchor.start(rt, anchorer)
    health = await _serve_health(settings, kubelets) if settings.health_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rt.start()
    log.info("operator started (%s)", f"lease {settings.lease_namespace}/{settings.lease} as {settings.identity}"
             if settings.lease else "standalone")
    await stop.wait()
    log.info("stopping")
    await rt.stop()
    if health is not None:
        await health.cleanup()


async def _serve_health(settings: Settings, kubelets=None):
    """/healthz, and /sd/kubelets (Prometheus' http_sd_configs) where this replica watches the nodes."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
    if kubelets is not None:
        app.router.add_get("/sd/kubelets", lambda request: web.json_response(kubelets.targets()))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.health_address, settings.health_port).start()
    return runner


def wait_for_crds(api, poll: float = 1.0) -> None:
    """Until the API server serves the platform's kinds (e.g. the operator started before
    `pulumi up` installed the CRDs): a watch of a kind not served yet would only fail and retry."""
    import time

    from kubernetes import client

    said = False
    while True:
        try:
            for kind in ("Tenant", "ShareAgreement", "ShareOffer"):
                kube.served(api, kind)
            return
        except client.ApiException as e:
            if e.status not in (404, 429, 503):
                raise
        if not said:
            log.info("waiting for the platform's CRDs to be served")
            said = True
        time.sleep(poll)


def main(argv: list[str] | None = None) -> None:
    try:
        settings = Settings.load(argv)
    except (ValueError, OSError) as e:
        print(f"yunshang operator: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.DEBUG if settings.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
