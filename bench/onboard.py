"""Onboarding benchmark: N approved tenants on a fresh local control plane.

    .venv/bin/python bench/onboard.py --tenants 100 1000

Prints one JSON line per N: seconds from approval (every reviewer role's sign-off, one patch per
tenant by an identity holding all three roles) to all Ready (watched, not polled), API
requests the operator made per tenant (from the API server's audit log, by the operator's own
identity), writes during one idle resync (the operator's counter and the audit log), the
operator's peak RSS, the time to restore a deleted default-deny NetworkPolicy under that load
(p50/p99 of 20 deletions), and the floor: a bare client applying exactly the same objects
(labels, owner references to real tenants) plus the operator's status write, to tenants in the
state the operator's were in, with the same concurrency the operator uses. Not a test: numbers,
not pass/fail.
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

from yunshang import platform, signoff  # noqa: E402
from yunshang.operator.tenants import steps  # noqa: E402
from yunshang.dev.controlplane import ControlPlane, free_port  # noqa: E402
from yunshang.models.tenant import ADMIN_GROUP, TenantSpec  # noqa: E402
from yunshang import kube  # noqa: E402
from yunshang.operator.tenants.reconciler import FINALIZER  # noqa: E402

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
    # the API server rotates its log at 100 MB (audit-<time>.log): every file counts
    for log in sorted(cp.logs.glob("audit*.log")):
        for line in log.read_text().splitlines():
            ev = json.loads(line)
            if ev.get("user", {}).get("username") == user and ev.get("stage") == "ResponseComplete":
                c[ev["verb"]] += 1
    return c


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def writes_of(c: collections.Counter) -> int:
    return sum(v for k, v in c.items() if k in WRITE_VERBS)


def operator_writes(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120) as r:
        text = r.read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("yunshang_operator_api_writes_total{"))


def cpu_seconds(pid: int, which: str = "both") -> float:
    """User plus system CPU seconds of ``pid`` so far (``which``: "user" or "system" alone)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]), int(fields[12])
    return {"both": user + system, "user": user, "system": system}[which] / os.sysconf("SC_CLK_TCK")


def cpu_by_process(cp: ControlPlane, extra: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each process of the control plane, this bench and ``extra``."""
    out = {}
    for name, pid in {**cp.pids, **extra, "bench": os.getpid()}.items():
        try:
            out[name] = cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 1) for k in after if k in before}


def wait_quiet(cp: ControlPlane, extra: dict[str, int], cores: float = 0.2, quiet: float = 3.0,
               at_most: float = 900.0) -> float:
    """Until the control plane (and ``extra``) together use less than ``cores`` for ``quiet``
    seconds: a timed window must not start while the controller-manager (garbage collector, service
    accounts, quota) still works through what came before it.  Seconds waited."""
    t0 = time.monotonic()
    last, since = cpu_by_process(cp, extra), time.monotonic()
    last.pop("bench", None)
    calm_since = None
    while time.monotonic() - t0 < at_most:
        time.sleep(0.5)
        now = cpu_by_process(cp, extra)
        now.pop("bench", None)
        used = sum(now[k] - last.get(k, now[k]) for k in now) / (time.monotonic() - since)
        last, since = now, time.monotonic()
        if used < cores:
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= quiet:
                break
        else:
            calm_since = None
    return time.monotonic() - t0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_all_ready(co, names: set[str], t0: float, timeout: float = 1800, phase: str = "Ready") -> float:
    """Watch tenants (no polling) until every one in ``names`` is in ``phase``; seconds since t0."""
    from kubernetes import watch

    ready: set[str] = set()
    rv = None
    while True:
        if rv is None:
            listing = co.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            ready = {t["metadata"]["name"] for t in listing["items"] if (t.get("status") or {}).get("phase") == phase}
            rv = listing["metadata"]["resourceVersion"]
        if names <= ready:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"only {len(ready & names)}/{len(names)} {phase} after {timeout:.0f}s")
        w = watch.Watch()
        try:
            for ev in w.stream(co.list_cluster_custom_object, GROUP, VERSION, PLURAL, resource_version=rv,
                               timeout_seconds=60):
                obj = ev["object"]
                rv = obj["metadata"]["resourceVersion"]
                if (obj.get("status") or {}).get("phase") == phase:
                    ready.add(obj["metadata"]["name"])
                if names <= ready:
                    w.stop()
                    return time.monotonic() - t0
        except client.ApiException as e:
            if e.status == 410:  # too old: list again
                rv = None
            else:
                raise


def drift_repairs(api, tenant: str, times: int = 20) -> list[float]:
    """Delete the tenant's default-deny NetworkPolicy and time until it is back, ``times`` times."""
    from kubernetes import watch

    net = client.NetworkingV1Api(api)
    ns, out = f"{tenant}-main", []
    for _ in range(times):
        rv = net.list_namespaced_network_policy(ns).metadata.resource_version
        t0 = time.monotonic()
        net.delete_namespaced_network_policy("default-deny", ns)
        w = watch.Watch()
        for ev in w.stream(net.list_namespaced_network_policy, ns, resource_version=rv, timeout_seconds=60):
            if ev["type"] == "ADDED" and ev["object"].metadata.name == "default-deny":
                out.append(time.monotonic() - t0)
                w.stop()
                break
        else:
            raise TimeoutError("default-deny not restored within 60 s")
        time.sleep(0.2)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(n: int, resync: float, workers: int, quiet_at_most: float = 900.0) -> dict:
    state = Path(tempfile.mkdtemp(prefix=f"yunshang-bench-{n}-"))
    cp = ControlPlane(state=state, audit_users=[OPERATOR_USER, BARE_USER])
    cp.up()
    op = None
    try:
        admin = config.new_client_from_config(str(cp.kubeconfig))
        platform.install(admin)
        # the garbage collector looks for new kinds every 30 s; until it watches Tenants it takes every
        # tenant an object names as its owner for unknown and GETs it, one by one, minutes later and in
        # the middle of a timed window. A real platform's CRDs are older than its tenants.
        installed = time.monotonic()
        op_kc = cp.identity_kubeconfig(OPERATOR_USER, ["system:masters"])
        port = free_port()
        env = dict(os.environ, KUBECONFIG=str(op_kc), YUNSHANG_RESYNC_SECONDS=str(resync),
                   YUNSHANG_CONCURRENCY=str(workers))
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
        time.sleep(max(0.0, 35 - (time.monotonic() - installed)))
        names = [f"bench-{i:05d}" for i in range(n)]
        with cf.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: co.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Tenant", "metadata": {"name": names[i]},
                "spec": spec(i)}), range(n)))
        # all Pending first (the operator has written that), then approve them all and time until all are Ready
        wait_all_ready(co, set(names), time.monotonic(), phase="Pending")
        pending_status = co.get_cluster_custom_object(GROUP, VERSION, PLURAL, names[0])["status"]
        # and until the operator and the control plane are quiet: what a department's request costs (its
        # need-to-know views, yunshang.views, and the garbage collector's look at their owners) is not
        # what approval costs
        quiet_since, last = time.monotonic(), operator_writes(port)
        while time.monotonic() - quiet_since < 3:
            time.sleep(0.5)
            w = operator_writes(port)
            if w != last:
                last, quiet_since = w, time.monotonic()
        waited = wait_quiet(cp, {"operator": op.pid}, at_most=quiet_at_most)
        before = audit_counts(cp, OPERATOR_USER)
        # parallel sign-off: one person holding every reviewer role signs all three at once (through the
        # sign-off admission policy, as a reviewer would)
        bureau = client.CustomObjectsApi(config.new_client_from_config(str(cp.identity_kubeconfig(
            "bench-bureau", [ADMIN_GROUP, *(signoff.reviewer_group(r) for r in signoff.DEFAULT_ROLES)]))))
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        signed = {nm: [{"role": r, "decision": "Approved", "by": "bench-bureau", "at": at, "round": 1,
                        "quota": spec(i)["quota"]} for r in signoff.DEFAULT_ROLES] for i, nm in enumerate(names)}
        cpu0, sys0 = cpu_seconds(op.pid), cpu_seconds(op.pid, "system")
        procs0 = cpu_by_process(cp, {"operator": op.pid})
        t0 = time.monotonic()
        with cf.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda nm: bureau.patch_cluster_custom_object(GROUP, VERSION, PLURAL, nm,
                                                                        {"spec": {"signoffs": signed[nm]}}), names))
        approvals_s = time.monotonic() - t0
        to_ready = wait_all_ready(co, set(names), t0)
        ready_status = co.get_cluster_custom_object(GROUP, VERSION, PLURAL, names[0])["status"]
        op_cpu, op_sys = cpu_seconds(op.pid) - cpu0, cpu_seconds(op.pid, "system") - sys0
        window_cpu = cpu_delta(procs0, cpu_by_process(cp, {"operator": op.pid}))
        # settle: the quota controller fills in usage, kopf finishes its bookkeeping
        settle_deadline, last, quiet_since = time.monotonic() + 600, -1.0, time.monotonic()
        while time.monotonic() < settle_deadline:
            w = operator_writes(port)
            if w != last:
                last, quiet_since = w, time.monotonic()
            elif time.monotonic() - quiet_since > 10:
                break
            time.sleep(3)
        settle_s = time.monotonic() - t0 - to_ready
        after = audit_counts(cp, OPERATOR_USER)
        onboarding = after - before
        w0, a0 = operator_writes(port), writes_of(audit_counts(cp, OPERATOR_USER))
        time.sleep(resync * 1.5)  # one full resync of every tenant
        idle_metric = operator_writes(port) - w0
        idle_audit = writes_of(audit_counts(cp, OPERATOR_USER)) - a0
        repairs = drift_repairs(admin, names[n // 2])
        rss = peak_rss_mib(op.pid)
        print(json.dumps({"tenants": n, "approval_to_all_ready_s": round(to_ready, 1),
                          "idle_resync_writes": idle_metric, "partial": True}), file=sys.stderr, flush=True)

        # the floor: a bare client applies exactly the same objects, no operator involved
        bare_api = config.new_client_from_config(str(cp.identity_kubeconfig(BARE_USER, ["system:masters"])))
        _stop(op)
        op = None
        # the floor's tenants exist beforehand (not timed), in the state the operator's were in when they
        # were signed off (finalizer, Pending status, every role's sign-off), and the floor writes the
        # status the operator wrote; its objects are exactly the operator's (labels, owner references to
        # their real tenants: the garbage collector's follow-up work is the same)
        floor_names = [f"floor-{i:05d}" for i in range(n)]

        def floor_tenant(i: int) -> str:
            nm = floor_names[i]
            uid = co.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Tenant",
                "metadata": {"name": nm, "finalizers": [FINALIZER]}, "spec": spec(i)})["metadata"]["uid"]
            co.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, nm, {"status": pending_status})
            bureau.patch_cluster_custom_object(GROUP, VERSION, PLURAL, nm, {"spec": {"signoffs": signed[names[i]]}})
            return uid

        with cf.ThreadPoolExecutor(workers) as pool:
            uids = list(pool.map(floor_tenant, range(n)))
        ready_patch = {"status": {**ready_status, "signoff": None}}
        objs = [(floor_names[i], steps.desired_objects(floor_names[i], uids[i], TenantSpec.model_validate(spec(i))))
                for i in range(n)]
        floor_waited = wait_quiet(cp, {})  # the floor starts as quiet as the operator's window did
        bare_before = audit_counts(cp, BARE_USER)
        bare_procs0 = cpu_by_process(cp, {})
        t1 = time.monotonic()

        import threading

        in_flight = threading.BoundedSemaphore(workers)  # as the operator: YUNSHANG_CONCURRENCY=workers

        def req(fn, *args, **kw):
            with in_flight:
                return fn(bare_api, *args, **kw)

        def bare(item):
            name, group = item
            req(kube.apply, group[0])  # the namespace first, then the rest together
            list(inner.map(lambda o: req(kube.apply, o), group[1:]))
            req(kube.patch, "Tenant", name, ready_patch, sub="status")

        # tenants at once as the operator's workers (8), requests in flight bounded as above
        with cf.ThreadPoolExecutor(workers * 8) as inner, cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(bare, objs))
        bare_s = time.monotonic() - t1
        bare_cpu = cpu_delta(bare_procs0, cpu_by_process(cp, {}))
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
            "operator_cpu_s_to_ready": round(op_cpu, 1),
            "operator_system_cpu_s_to_ready": round(op_sys, 1),
            "approvals_sent_s": round(approvals_s, 1),
            "waited_for_quiet_s": [round(waited, 1), round(floor_waited, 1)],
            "cpu_s_in_window_by_process": window_cpu,
            "cpu_s_in_floor_by_process": bare_cpu,
            "drift_repair_p50_s": round(pct(repairs, 50), 3),
            "drift_repair_p99_s": round(pct(repairs, 99), 3),
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
    p.add_argument("--workers", type=int, default=8,
                   help="client threads for creates, approvals and the floor; the operator's YUNSHANG_CONCURRENCY")
    p.add_argument("--quiet-at-most", type=float, default=900.0,
                   help="seconds to wait at most for a quiet control plane before the timed window")
    args = p.parse_args()
    for n in args.tenants:
        r = run(n, args.resync, args.workers, args.quiet_at_most)
        print(json.dumps(r, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
