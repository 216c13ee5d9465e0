"""The production path's figures (issue 21): the operator's image (size, build time), `pulumi up` in
deployment mode with in-cluster monitoring, a replica's start to leading, failover, and the memory
of each replica once N tenants are Ready.

    .venv/bin/python bench/production.py [--tenants 1000]

Prints one JSON line.  Needs what the real node needs (root, cgroups) and the toolchain.  Memory is
the kubelet's own account of each operator container (working set and RSS, from its stats summary
through the API server), the leader's and the standby's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def stats(api, node_name: str) -> dict[str, dict[str, float]]:
    """Each operator pod's memory (MiB), from the kubelet's stats summary."""
    from kubernetes import client

    raw = client.CoreV1Api(api).connect_get_node_proxy_with_path(node_name, "stats/summary")
    data = json.loads(raw.replace("'", '"')) if isinstance(raw, str) and raw.startswith("{'") else \
        (json.loads(raw) if isinstance(raw, str) else raw)
    out = {}
    for pod in data.get("pods", []):
        ref = pod["podRef"]
        if ref["namespace"] == "yunshang-system" and ref["name"].startswith("yunshang-operator-"):
            mem = pod["containers"][0]["memory"]
            out[ref["name"]] = {"working_set_mib": round(mem.get("workingSetBytes", 0) / 2**20, 1),
                                "rss_mib": round(mem.get("rssBytes", 0) / 2**20, 1)}
    return out


def operator_pid(pod: str) -> int:
    """The host's pid of the operator process in ``pod`` (its POD_NAME in its environment)."""
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"yunshang.operator" in Path(f"/proc/{d}/cmdline").read_bytes() and \
                    f"POD_NAME={pod}".encode() in Path(f"/proc/{d}/environ").read_bytes().split(b"\0"):
                return int(d)
        except OSError:
            continue
    raise RuntimeError(f"no operator process of pod {pod}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenants", type=int, default=1000)
    args = ap.parse_args()

    from kubernetes import client

    import production
    from factories import approval, tenant
    from helpers import wait_for

    with tempfile.TemporaryDirectory(prefix="yunshang-bench-prod-") as tmp:
        p = production.deploy(Path(tmp))
        try:
            api, image = p.api, p.built.ref
            out: dict = {"image": p.built.summary(), **{k: round(v, 1) for k, v in p.figures.items()}}
            wait_for("two replicas", lambda: len(production.running(api, image)) == 2, timeout=120)
            lease = client.CoordinationV1Api(api).read_namespaced_lease(production.LEASE, production.NS)
            leader = next(x for x in production.running(api, image) if x.metadata.name == lease.spec.holder_identity)
            began = leader.status.container_statuses[0].state.running.started_at
            out["pod_start_to_leader_s"] = round((lease.spec.acquire_time - began).total_seconds(), 1)
            node_name = leader.spec.node_name
            out["memory_at_0_tenants"] = stats(api, node_name)
            co = client.CustomObjectsApi(api)
            names = [f"b{i:05d}" for i in range(args.tenants)]
            started = time.monotonic()

            def make() -> None:
                for n in names:
                    body = tenant(n)
                    body["spec"]["approval"] = approval()
                    co.create_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", body)

            maker = threading.Thread(target=make)
            maker.start()
            maker.join()

            def ready() -> int:
                items = co.list_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants")["items"]
                return sum((t.get("status") or {}).get("phase") == "Ready" for t in items if t["metadata"]["name"] in set(names))

            wait_for(f"{args.tenants} Ready", lambda: ready() == args.tenants, timeout=3600, interval=2)
            out["tenants"] = args.tenants
            out["all_ready_s"] = round(time.monotonic() - started, 1)
            time.sleep(30)  # a resync round or so
            out[f"memory_at_{args.tenants}_tenants"] = stats(api, node_name)
            # failover after a crash: the leader's process killed (SIGKILL: it releases nothing), so the
            # standby waits out the lease (15 s) by its own clock
            first = production.holder(api)
            killed_at, t0 = dt.datetime.now(dt.timezone.utc), time.monotonic()
            os.kill(operator_pid(first), signal.SIGKILL)
            coord = client.CoordinationV1Api(api)
            # leading again: the Lease renewed after the kill, by the standby or by the killed
            # container restarted under the same pod name (it may take its own lease back at once)
            lease = wait_for("a leader again", lambda: (lambda ls: ls if ls.spec.renew_time > killed_at else None)(
                coord.read_namespaced_lease(production.LEASE, production.NS)), timeout=120, interval=0.1)
            out["leading_again_after_kill_9_s"] = round(time.monotonic() - t0, 1)
            out["leading_again_after_kill_9_by"] = "the restarted container" if lease.spec.holder_identity == first \
                else "the standby"
            wait_for("two replicas again", lambda: len(production.running(api, image)) == 2, timeout=120)
            first = production.holder(api)
            t0 = time.monotonic()
            client.CoreV1Api(api).delete_namespaced_pod(first, production.NS, grace_period_seconds=0)
            wait_for("a new leader", lambda: production.holder(api) not in ("", first), timeout=120, interval=0.1)
            out["failover_after_delete_grace_0_s"] = round(time.monotonic() - t0, 1)
            wait_for("two replicas again", lambda: len(production.running(api, image)) == 2, timeout=120)
            second = production.holder(api)
            t0 = time.monotonic()
            client.CoreV1Api(api).delete_namespaced_pod(second, production.NS)  # graceful: it releases the lease
            wait_for("a new leader", lambda: production.holder(api) not in ("", second), timeout=120, interval=0.1)
            out["failover_after_graceful_delete_s"] = round(time.monotonic() - t0, 1)
            out["lease_duration_s"] = 15  # the Deployment's (the operator's default)
            print(json.dumps(out))
        finally:
            p.close()
            p.cp.down()


if __name__ == "__main__":
    main()
