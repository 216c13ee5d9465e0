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
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from . import alerting, anchor, handlers, response, sharing  # noqa: F401  (registers the handlers)

    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)

    import random

    asyncio.run(kopf.operator(
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=args.priority or random.randint(1, 2**30),
        clusterwide=True,
        liveness_endpoint=args.liveness or None,
    ))


if __name__ == "__main__":
    main()
