"""Run the operator: `python -m yunshang.operator [--peering NAME] [--namespace-wide ...]`.

Without --peering it runs standalone (one replica). With --peering NAME, replicas share a
ClusterKopfPeering object and only the highest-priority one acts; the others stand by.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kopf


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m yunshang.operator", description=__doc__)
    p.add_argument("--peering", default=os.environ.get("YUNSHANG_PEERING", ""),
                   help="peering object name (leader election between replicas); empty: standalone")
    p.add_argument("--priority", type=int, default=int(os.environ.get("YUNSHANG_PRIORITY", "0")) or None,
                   help="peering priority (default: random, so two replicas never tie)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--liveness", default="", help="e.g. http://127.0.0.1:8080/healthz")
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get("YUNSHANG_METRICS_PORT", "0")),
                   help="serve Prometheus metrics on this port (0: off)")
    p.add_argument("--metrics-address", default=os.environ.get("YUNSHANG_METRICS_ADDRESS", "127.0.0.1"))
    args = p.parse_args()
    if args.peering:
        os.environ["YUNSHANG_PEERING"] = args.peering
    import random

    # the reconciler compares it with its peers' (kopf pauses a standby's watches; this its workers and loops)
    priority = args.priority or random.randint(1, 2**30)
    os.environ["YUNSHANG_PRIORITY"] = str(priority)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not args.verbose:  # a line per watch event ("Handler ... succeeded") costs more than the event
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    from . import alerting, anchor, handlers, offers, response, sharing, views  # noqa: F401  (registers the handlers)

    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)

    wait_for_crds()
    asyncio.run(kopf.operator(
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=priority,
        clusterwide=True,
        liveness_endpoint=args.liveness or None,
    ))


def wait_for_crds(poll: float = 1.0) -> None:
    """Until the API server serves Tenants.  kopf finds CRDs created after it started by
    rescanning on CRD events, and a rescan that comes before discovery has caught up is never
    repeated: starting once they are served avoids that race (e.g. the operator started before
    `pulumi up` installs the CRDs)."""
    import time

    from kubernetes import client

    from .handlers import make_api

    api = make_api(2)
    said = False
    while True:
        try:
            for plural in ("tenants", "shareagreements", "shareoffers"):
                client.CustomObjectsApi(api).list_cluster_custom_object("platform.yunshang.io", "v1alpha1", plural,
                                                                        limit=1)
            return
        except client.ApiException as e:
            if e.status not in (404, 429, 503):
                raise
        if not said:
            logging.getLogger("yunshang.operator").info("waiting for the Tenant CRD to be served")
            said = True
        time.sleep(poll)


if __name__ == "__main__":
    main()
