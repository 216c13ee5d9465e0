"""The real node's figures: how long it takes to start, how fast a pod starts, what the node's
processes use, and how long a NetworkPolicy change takes to reach the packets.

    .venv/bin/python bench/real_node.py [--pods 5] [--rounds 3]

Prints one JSON line.  Needs root and cgroups (as `yunshang dev up`'s real node), and no other
local platform's real node running.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for d in filter(str.isdigit, __import__("os").listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=5, help="pods started one after another (create -> Running)")
    p.add_argument("--rounds", type=int, default=3, help="policy changes measured (each: close, then open)")
    args = p.parse_args(argv)

    from kubernetes import client, config

    from helpers import wait_for
    from helpers import on_the_node, phase, run_in, shell_in
    from yunshang.dev import controlplane, node

    why = node.why_not()
    if why:
        print(json.dumps({"error": why}))
        return 1
    marks: dict[str, float] = {}
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="yunshang-bench-node-") as tmp:
        cp = controlplane.ControlPlane(state=Path(tmp), real_node=True, audit_webhook=False)
        t0 = time.monotonic()
        cp.up(progress=lambda m: marks.setdefault(m, time.monotonic()))
        out["dev_up_with_real_node_s"] = round(time.monotonic() - t0, 2)
        try:
            kubelet = next(v for k, v in marks.items() if k.startswith("starting kubelet"))
            firewall = next(v for k, v in marks.items() if k.startswith("starting kube-router"))
            containerd = next(v for k, v in marks.items() if k.startswith("starting containerd"))
            out["kubelet_start_to_node_ready_s"] = round(firewall - kubelet, 2)
            out["node_parts_start_s"] = round(time.monotonic() - t0 - (containerd - t0), 2)
            api = config.new_client_from_config(str(cp.kubeconfig))
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "bench"}})
            starts = []
            for i in range(args.pods):
                t = time.monotonic()
                core.create_namespaced_pod("bench", on_the_node(f"p{i}", "exec sleep 2147483647", restart="Always"))
                wait_for("Running", lambda i=i: phase(core, "bench", f"p{i}") == "Running", timeout=60, interval=0.05)
                starts.append(time.monotonic() - t)
            out["pod_create_to_running_s"] = {"median": round(statistics.median(starts), 2),
                                              "max": round(max(starts), 2), "n": len(starts)}
            # policy -> packets: a server, a shell beside it, a deny-all-ingress policy put and removed
            core.create_namespaced_pod("bench", on_the_node("srv", "exec httpd -f -p 8080 -h /www", {"app": "srv"},
                                                            "Always"))
            shell_in(core, "bench")
            wait_for("srv Running", lambda: phase(core, "bench", "srv") == "Running", timeout=60)
            srv = core.read_namespaced_pod("srv", "bench").status.pod_ip
            probe = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {srv} 8080 | grep -q toolbox && echo OPEN || echo SHUT"

            def is_open() -> bool:
                return "OPEN" in run_in(core, "bench", probe)
            wait_for("open before", is_open, timeout=30)
            t = time.monotonic()
            for _ in range(5):
                is_open()
            out["probe_round_trip_s"] = round((time.monotonic() - t) / 5, 2)
            net = client.NetworkingV1Api(api)
            closing, opening = [], []
            for r in range(args.rounds):
                t = time.monotonic()
                net.create_namespaced_network_policy("bench", {"metadata": {"name": "deny"}, "spec": {
                    "podSelector": {"matchLabels": {"app": "srv"}}, "policyTypes": ["Ingress"]}})
                wait_for("closed", lambda: not is_open(), timeout=30, interval=0.05)
                closing.append(time.monotonic() - t)
                t = time.monotonic()
                net.delete_namespaced_network_policy("deny", "bench")
                wait_for("open", is_open, timeout=30, interval=0.05)
                opening.append(time.monotonic() - t)
            out["policy_put_to_closed_s"] = {"median": round(statistics.median(closing), 2), "max": round(max(closing), 2)}
            out["policy_removed_to_open_s"] = {"median": round(statistics.median(opening), 2),
                                               "max": round(max(opening), 2)}
            time.sleep(5)  # idle: what the node's processes hold with these pods running
            rn = node.RealNode.load(cp.node_state)
            rss = {name: round(rss_mib(pid), 1) for name, pid in rn.pids.items()}
            shims = [c for c in children(1) if b"containerd-shim" in Path(f"/proc/{c}/cmdline").read_bytes()]
            shims += [c for pid in rn.pids.values() for c in children(pid)
                      if b"containerd-shim" in Path(f"/proc/{c}/cmdline").read_bytes()]
            rss["containerd-shims"] = round(sum(rss_mib(s) for s in set(shims)), 1)
            rss["pods_running"] = args.pods + 3  # the bench's, the server, the shell and CoreDNS
            out["rss_mib"] = rss
            out["node_rss_mib_total"] = round(sum(v for k, v in rss.items() if k != "pods_running"), 1)
            api.close()
        finally:
            t = time.monotonic()
            cp.down()
            out["down_s"] = round(time.monotonic() - t, 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
