"""Onboarding benchmark: N approved tenants on a fresh local control plane.

    .venv/bin/python bench/onboard.py --tenants 100 1000

Prints, per N: seconds from approval to all Ready, API requests the operator made per tenant
(from the API server's audit log, by the operator's own identity), writes during one idle
resync, the operator's peak RSS, and the same objects created by a bare client (the floor) as
a ratio. Not a test: numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from yunshang import platform, tenancy  # noqa: E402
from yunshang.dev.controlplane import ControlPlane, free_port  # noqa: E402
from yunshang.models.tenant import TenantSpec  # noqa: E402
from yunshang.operator import kube  # noqa: E402

OPERATOR_USER = "bench-operator"
BARE_USER = "bench-bare"
GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


def spec(i: int) -> dict:
    return {
        "department": {"code": f"B{i:05d}", "name": f"基准测试局 {i}"},
        "level": "province",
        "owners": [{"kind": "User", "name": f"owner-{i}"}],
        "purpose": "benchmark",
        "project": f"BENCH-{i}",
        "namespaces": ["main"],
        "quota": {"cpu": "2", "memory": "4Gi", "pods": 20},
    }


def audit_counts(cp: ControlPlane, user: str) -> collections.Counter:
    c: collections.Counter = collections.Counter()
    log = cp.logs / "audit.log"
    if not log.exists():
        return c
    for line in log.read_text().splitlines():
        ev = json.loads(line)
        if ev.get("user", {}).get("username") == user and ev.get("stage") == "ResponseComplete":
            c[ev["verb"]] += 1
    return c


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def writes_of(c: collections.Counter) -> int:
    return sum(v for k, v in c.items() if k in WRITE_VERBS)


def operator_writes(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("yunshang_operator_api_writes_total{"))


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(n: int, resync: float, workers: int) -> dict:
    state = Path(tempfile.mkdtemp(prefix=f"yunshang-bench-{n}-"))
    cp = ControlPlane(state=state, audit_users=[OPERATOR_USER, BARE_USER])
    cp.up()
    op = None
    try:
        admin = config.new_client_from_config(str(cp.kubeconfig))
        platform.install(admin)
        op_kc = cp.identity_kubeconfig(OPERATOR_USER, ["system:masters"])
        port = free_port()
        env = dict(os.environ, KUBECONFIG=str(op_kc), YUNSHANG_RESYNC_SECONDS=str(resync))
        op = subprocess.Popen([sys.executable, "-m", "yunshang.operator", "--metrics-port", str(port)],
                              env=env, stdout=(state / "operator.log").open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                operator_writes(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        co = client.CustomObjectsApi(admin)
        names = [f"bench-{i:05d}" for i in range(n)]
        with cf.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: co.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Tenant", "metadata": {"name": names[i]},
                "spec": spec(i)}), range(n)))
        # all Pending first, then approve them all and time until every one is Ready
        time.sleep(2)
        before = audit_counts(cp, OPERATOR_USER)
        approval = {"decision": "Approved", "by": "bench", "reason": ""}
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda nm: co.patch_cluster_custom_object(GROUP, VERSION, PLURAL, nm,
                                                                    {"spec": {"approval": approval}}), names))
        while True:
            items = co.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
            ready = sum(1 for t in items if (t.get("status") or {}).get("phase") == "Ready")
            if ready == n:
                break
            if time.monotonic() - t0 > 1800:
                raise TimeoutError(f"only {ready}/{n} Ready after 30 min")
            time.sleep(0.5)
        to_ready = time.monotonic() - t0
        # settle: the quota controller fills in usage, kopf finishes its bookkeeping
        settle_deadline, last, quiet_since = time.monotonic() + 600, -1.0, time.monotonic()
        while time.monotonic() < settle_deadline:
            w = operator_writes(port)
            if w != last:
                last, quiet_since = w, time.monotonic()
            elif time.monotonic() - quiet_since > 10:
                break
            time.sleep(1)
        settle_s = time.monotonic() - t0 - to_ready
        after = audit_counts(cp, OPERATOR_USER)
        onboarding = after - before
        w0, a0 = operator_writes(port), writes_of(audit_counts(cp, OPERATOR_USER))
        time.sleep(resync * 1.5)  # one full resync of every tenant
        idle_metric = operator_writes(port) - w0
        idle_audit = writes_of(audit_counts(cp, OPERATOR_USER)) - a0
        rss = peak_rss_mib(op.pid)
        print(json.dumps({"tenants": n, "approval_to_all_ready_s": round(to_ready, 1),
                          "idle_resync_writes": idle_metric, "partial": True}), file=sys.stderr, flush=True)

        # the floor: a bare client applies exactly the same objects, no operator involved
        bare_api = config.new_client_from_config(str(cp.identity_kubeconfig(BARE_USER, ["system:masters"])))
        _stop(op)
        op = None
        objs = []
        for i in range(n):
            s = TenantSpec.model_validate({**spec(i), "approval": approval})
            objs += [tenancy.desired_objects(f"floor-{i:05d}", "00000000-0000-0000-0000-000000000000", s)]
        for group in objs:  # owner refs to a fake uid would be collected: drop them for the floor
            for o in group:
                o["metadata"].pop("ownerReferences")
                o["metadata"]["labels"].pop(tenancy.LABEL_TENANT)
                if o["kind"] == "Namespace":
                    o["metadata"]["name"] = o["metadata"]["name"]
        bare_before = audit_counts(cp, BARE_USER)
        t1 = time.monotonic()

        def bare(group):
            for o in group:
                kube.apply(bare_api, o)

        with cf.ThreadPoolExecutor(workers) as pool:
            list(pool.map(bare, objs))
        bare_s = time.monotonic() - t1
        bare_reqs = sum((audit_counts(cp, BARE_USER) - bare_before).values())
        op_reqs = sum(onboarding.values())
        return {
            "tenants": n,
            "approval_to_all_ready_s": round(to_ready, 1),
            "settled_after_ready_s": round(settle_s, 1),
            "operator_requests_per_tenant": round(op_reqs / n, 1),
            "operator_requests_by_verb": dict(onboarding),
            "idle_resync_writes_metric": idle_metric,
            "idle_resync_writes_audit": idle_audit,
            "operator_peak_rss_mib": round(rss, 1),
            "bare_client_s": round(bare_s, 1),
            "bare_client_requests_per_tenant": round(bare_reqs / n, 1),
            "time_ratio_operator_over_bare": round(to_ready / bare_s, 2),
            "request_ratio_operator_over_bare": round(op_reqs / max(bare_reqs, 1), 2),
        }
    finally:
        if op is not None:
            _stop(op)
        cp.down()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tenants", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--resync", type=float, default=20.0, help="operator resync interval during the run")
    p.add_argument("--workers", type=int, default=8, help="client threads for creates and approvals")
    args = p.parse_args()
    for n in args.tenants:
        r = run(n, args.resync, args.workers)
        print(json.dumps(r, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
