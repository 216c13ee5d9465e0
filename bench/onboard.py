"""Onboarding benchmark: approved tenants on a fresh local control plane.

    .venv/bin/python bench/onboard.py --tenants 100 1000          # flat: N provinces approved at once
    .venv/bin/python bench/onboard.py --tree --total 20000        # a five-level tree (about 40 min, 2 cores)
    .venv/bin/python bench/onboard.py --tree --total 400 --checkpoints 150   # a smoke run (minutes)

Both modes run a local control plane (yunshang.dev.controlplane.ControlPlane, an audit log of the
operator's and the floor's identities, no audit webhook: onboarding is measured, not the audit intake)
and the operator as a process of its own with the control plane's webhook settings (it answers the API
server's need-to-know authorization webhook).  Progress goes to stderr (the state dir first: the
operator's log is its operator.log), the result to stdout as one JSON line.

--tenants N: one JSON line per N: seconds from approval (every reviewer role's sign-off, one patch per
tenant by an identity holding all three roles) to all Ready (watched, not polled), API
requests the operator made per tenant (from the API server's audit log, by the operator's own
identity), writes during one idle resync (the operator's counter and the audit log), the
operator's peak RSS, the time to restore a deleted default-deny NetworkPolicy under that load
(p50/p99 of 20 deletions), and the floor: a bare client applying exactly the same objects
(labels, owner references to real tenants) plus the operator's status write, to tenants in the
state the operator's were in, with the same concurrency the operator uses.

--tree: the tree of bench/tree.py (1 province, 9 cities, 88 counties, about 1,500 townships, the rest
villages; quotas carved bottom-up so that every child fits its parent), all created and Pending, then
approved level by level as the bureaus would: a level's sign-offs, then a watch until all of it is
Ready, then the next level.  The villages come in batches that end where the number Ready reaches a
checkpoint (--checkpoints, every 5,000): there the clock stops, the platform is let go quiet, and a
department (a real client certificate, groups yunshang:departments and yunshang:dept:probe) reads its
own tenant and its agreements as `yunshang tenant show probe` and `yunshang share list` do, --reads
times each (p50/p99 ms; also at 0 tenants, the probe alone, and at the total).  approval_to_all_ready_s
is the sum of the batches' windows (the pauses excluded; per_level_s splits it).  The floor applies the
same objects to "f"-prefixed copies of the tree, batch by batch, timed the same way.  Besides the flat
mode's keys it prints levels, per_level_s, dept_read_ms, peak_rss_mib_by_process (VmHWM of etcd, the
API server, the controllers and the operator), cpu_s_total_by_process (the whole run), etcd_db_mib
(the etcd data file at the end) and run_s (the whole run's wall time).

Not a test: numbers, not pass/fail.
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
from yunshang.models.tenant import ADMIN_GROUP, DEPARTMENTS_GROUP, TenantSpec, dept_group  # noqa: E402
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
    # (line by line, and only lines naming the user are parsed: at 20,000 tenants the log holds gigabytes)
    for log in sorted(cp.logs.glob("audit*.log")):
        with log.open() as fh:
            for line in fh:
                if user not in line:
                    continue
                ev = json.loads(line)
                if ev.get("user", {}).get("username") == user and ev.get("stage") == "ResponseComplete":
                    c[ev["verb"]] += 1
    return c


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def writes_of(c: collections.Counter) -> int:
    return sum(v for k, v in c.items() if k in WRITE_VERBS)


def operator_writes(port: int) -> float:
    # only that family (prometheus-client's name[] filter): the whole exposition of 20,000 tenants'
    # series takes the operator seconds of CPU, which the bench's polling must not cost it
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?name[]=yunshang_operator_api_writes_total",
                                timeout=120) as r:
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
    return wait_phase(co, names, t0, None, phase, timeout)


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


def start_operator(cp: ControlPlane, resync: float, workers: int) -> tuple[subprocess.Popen, int]:
    """The operator as a process of its own, as the bench's identity, with the control plane's webhook
    settings (the API server asks it about department reads: the need-to-know authorization webhook);
    returns it and its metrics port once that answers."""
    op_kc = cp.identity_kubeconfig(OPERATOR_USER, ["system:masters"])
    port = free_port()
    env = {**os.environ, **cp.operator_env(), "KUBECONFIG": str(op_kc), "YUNSHANG_RESYNC_SECONDS": str(resync),
           "YUNSHANG_CONCURRENCY": str(workers)}
    op = subprocess.Popen([sys.executable, "-m", "yunshang.operator", "--metrics-port", str(port)],
                          env=env, stdout=(cp.state / "operator.log").open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            operator_writes(port)
            break
        except OSError:
            if time.monotonic() > deadline or op.poll() is not None:
                raise
            time.sleep(0.2)
    return op, port


def run(n: int, resync: float, workers: int, quiet_at_most: float = 900.0) -> dict:
    state = Path(tempfile.mkdtemp(prefix=f"yunshang-bench-{n}-"))
    cp = ControlPlane(state=state, audit_users=[OPERATOR_USER, BARE_USER], audit_webhook=False)
    cp.up()
    print(f"state dir {state} (the operator's log: {state / 'operator.log'})", file=sys.stderr, flush=True)
    op = None
    try:
        admin = config.new_client_from_config(str(cp.kubeconfig))
        platform.install(admin)
        # the garbage collector looks for new kinds every 30 s; until it watches Tenants it takes every
        # tenant an object names as its owner for unknown and GETs it, one by one, minutes later and in
        # the middle of a timed window. A real platform's CRDs are older than its tenants.
        installed = time.monotonic()
        op, port = start_operator(cp, resync, workers)
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


# ---------------------------------------------------------------------------------------------- --tree

PROBE = "probe"


class Progress:
    """One line per step on stderr, with the seconds since the run began."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.0f}s] {msg}", file=sys.stderr, flush=True)


def list_in_phase(co, names: set[str], phase: str) -> tuple[set[str], str]:
    """Which of ``names`` are in ``phase`` (a list in pages of 500: 20,000 tenants at once would be
    hundreds of megabytes in this process), and the list's resourceVersion."""
    got, token, rv = set(), None, None
    while True:
        page = co.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=500, _continue=token)
        rv = rv or page["metadata"]["resourceVersion"]
        got |= {t["metadata"]["name"] for t in page["items"]
                if t["metadata"]["name"] in names and (t.get("status") or {}).get("phase") == phase}
        token = page["metadata"].get("continue")
        if not token:
            return got, rv


def current_rv(co) -> str:
    """The Tenants' resourceVersion now (a list of one: no tenant is read in full)."""
    return co.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)["metadata"]["resourceVersion"]


def wait_phase(co, names: set[str], t0: float, rv: str | None = None, phase: str = "Ready",
               timeout: float = 3600) -> float:
    """Watch tenants until every one in ``names`` is in ``phase``; seconds since ``t0``.  With ``rv``
    (taken before the change that moves them) none of ``names`` is in ``phase`` yet and the watch
    starts there: no list of every tenant inside a timed window.  A list (paged) otherwise, or when
    the watch is too old (410)."""
    from kubernetes import watch

    ready: set[str] = set()
    while True:
        if rv is None:
            ready, rv = list_in_phase(co, names, phase)
        if len(ready) == len(names):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"only {len(ready)}/{len(names)} {phase} after {timeout:.0f}s")
        w = watch.Watch()
        try:
            for ev in w.stream(co.list_cluster_custom_object, GROUP, VERSION, PLURAL, resource_version=rv,
                               timeout_seconds=60):
                obj = ev["object"]
                rv = obj["metadata"]["resourceVersion"]
                nm = obj["metadata"]["name"]
                if nm in names and (obj.get("status") or {}).get("phase") == phase:
                    ready.add(nm)
                    if len(ready) == len(names):
                        w.stop()
                        return time.monotonic() - t0
        except client.ApiException as e:
            if e.status == 410:  # too old: list again
                rv = None
            else:
                raise


def dept_reads(kubeconfig: Path, tenant: str, times: int) -> dict[str, float]:
    """`reads_here` in a process of its own, as a department's CLI is: not in this one, whose heap
    (the whole tree, the audit counts) makes Python's collector pause it for tens of milliseconds,
    now and then, in the middle of a timed read."""
    out = subprocess.run([sys.executable, __file__, "--dept-reads", str(kubeconfig), tenant, str(times)],
                         check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reads_here(kubeconfig: Path, tenant: str, times: int) -> dict[str, float]:
    """A department's own reads, as `yunshang tenant show <tenant>` and `yunshang share list` make them
    (through the need-to-know webhook): ``times`` of each, alternating, p50/p99 in milliseconds.  The
    first of each is timed apart (*_first): a new connection, the client asking once who it is, and
    the API server asking the operator's webhook (it keeps an allowed answer 10 s: the timed reads after
    it are answered from that cache, as a department's repeated reads would be)."""
    from yunshang.client import Agreements, Tenants

    t = Tenants(kubeconfig=str(kubeconfig))
    a = time.perf_counter()
    t.get(tenant)
    b = time.perf_counter()
    Agreements(t).list()
    c = time.perf_counter()
    first = {"tenant_show_first": round((b - a) * 1000, 2), "share_list_first": round((c - b) * 1000, 2)}
    show, share = [], []
    for _ in range(times):
        a = time.perf_counter()
        t.get(tenant)
        b = time.perf_counter()
        Agreements(t).list()
        c = time.perf_counter()
        show.append((b - a) * 1000)
        share.append((c - b) * 1000)
    return {"tenant_show_p50": round(pct(show, 50), 2), "tenant_show_p99": round(pct(show, 99), 2),
            "share_list_p50": round(pct(share, 50), 2), "share_list_p99": round(pct(share, 99), 2), **first}


def batches(levels: list[tuple[str, list[str]]], checkpoints: list[int]) -> list[tuple[str, list[str], int | None]]:
    """Level by level, each level cut where the number of tenants approved so far reaches a
    checkpoint: (level, names, the checkpoint it ends on or None)."""
    out, done = [], 0
    for level, names in levels:
        i = 0
        while i < len(names):
            nxt = next((c for c in checkpoints if c > done), None)
            take = len(names) - i if nxt is None else min(len(names) - i, nxt - done)
            out.append((level, names[i:i + take], done + take if done + take in checkpoints else None))
            i, done = i + take, done + take
    return out


def signoffs(quota: dict, at: str) -> list[dict]:
    """Every reviewer role's Approved sign-off of round 1 with ``quota``, by the bench's bureau."""
    return [{"role": r, "decision": "Approved", "by": "bench-bureau", "at": at, "round": 1, "quota": quota}
            for r in signoff.DEFAULT_ROLES]


def tenant_body(name: str, spec_: dict, finalizers: list[str] | None = None) -> dict:
    md: dict = {"name": name}
    if finalizers:
        md["finalizers"] = finalizers
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Tenant", "metadata": md, "spec": spec_}


def cpu_add(into: dict[str, float], delta: dict[str, float]) -> None:
    for k, v in delta.items():
        into[k] = round(into.get(k, 0.0) + v, 1)


def etcd_db_mib(cp: ControlPlane) -> float | None:
    dbs = sorted(cp.state.glob("**/member/snap/db"))
    return round(dbs[0].stat().st_size / 2**20, 1) if dbs else None


def run_tree(total: int, checkpoint_every: int, resync: float, workers: int, reads: int = 200,
             quiet_at_most: float = 900.0) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tree import LEVELS, build_tree

    say = Progress()
    run_t0 = time.monotonic()
    tree = build_tree(total)
    specs = dict(tree)
    by_level = [(lv, [nm for nm, s in tree if s["level"] == lv]) for lv in LEVELS]
    checkpoints = [c for c in range(checkpoint_every, total, checkpoint_every)] if checkpoint_every > 0 else []
    plan = batches(by_level, checkpoints)
    state = Path(tempfile.mkdtemp(prefix=f"yunshang-bench-tree-{total}-"))
    cp = ControlPlane(state=state, audit_users=[OPERATOR_USER, BARE_USER], audit_webhook=False)
    say(f"state dir {state} (the operator's log: {state / 'operator.log'}); {total} tenants "
        f"{dict((lv, len(ns)) for lv, ns in by_level)}, {len(plan)} batches, checkpoints {checkpoints}")
    cp.up()
    op = None
    try:
        admin = config.new_client_from_config(str(cp.kubeconfig))
        platform.install(admin)
        installed = time.monotonic()  # the garbage collector's 30 s, as in run()
        op, port = start_operator(cp, resync, workers)
        co = client.CustomObjectsApi(admin)
        bureau = client.CustomObjectsApi(config.new_client_from_config(str(cp.identity_kubeconfig(
            "bench-bureau", [ADMIN_GROUP, *(signoff.reviewer_group(r) for r in signoff.DEFAULT_ROLES)]))))
        dept_kc = cp.identity_kubeconfig("bench-dept", [DEPARTMENTS_GROUP, dept_group(PROBE)])
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        time.sleep(max(0.0, 35 - (time.monotonic() - installed)))

        # the probe: a department of its own, Ready on an otherwise empty platform
        probe_spec = {**spec(0), "department": {"code": "PROBE", "name": "基准测试探针局"}, "project": "BENCH-PROBE"}
        co.create_cluster_custom_object(GROUP, VERSION, PLURAL, tenant_body(PROBE, probe_spec))
        wait_phase(co, {PROBE}, time.monotonic(), phase="Pending")
        rv = current_rv(co)
        bureau.patch_cluster_custom_object(GROUP, VERSION, PLURAL, PROBE,
                                           {"spec": {"signoffs": signoffs(probe_spec["quota"], at)}})
        wait_phase(co, {PROBE}, time.monotonic(), rv)
        wait_quiet(cp, {"operator": op.pid}, at_most=quiet_at_most)
        read_ms = {"0": dept_reads(dept_kc, PROBE, reads)}
        say(f"probe Ready; department reads at 0 tenants: {read_ms['0']}")

        # every tenant of the tree, level by level (a child after its parent), all Pending
        t = time.monotonic()
        with cf.ThreadPoolExecutor(workers) as pool:
            for lv, names in by_level:
                list(pool.map(lambda nm: co.create_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                                         tenant_body(nm, specs[nm])), names))
                say(f"created {len(names)} {lv} tenants")
        wait_phase(co, set(specs), t, phase="Pending", timeout=7200)
        pending_status = {lv: co.get_cluster_custom_object(GROUP, VERSION, PLURAL, names[0])["status"]
                          for lv, names in by_level}
        say(f"all {total} Pending after {time.monotonic() - t:.0f} s")
        quiet_since, last = time.monotonic(), operator_writes(port)
        while time.monotonic() - quiet_since < 3:
            time.sleep(0.5)
            w = operator_writes(port)
            if w != last:
                last, quiet_since = w, time.monotonic()
        waited = wait_quiet(cp, {"operator": op.pid}, at_most=quiet_at_most)
        say(f"quiet after {waited:.0f} s; approving level by level")
        before = audit_counts(cp, OPERATOR_USER)
        cpu0, sys0 = cpu_seconds(op.pid), cpu_seconds(op.pid, "system")

        # approval, level by level (the villages in batches that end on the checkpoints); the clock
        # runs from a batch's first sign-off until all of it is Ready, and stops at the checkpoints
        per_level: dict[str, float] = {}
        window_cpu: dict[str, float] = {}
        ready_status: dict[str, dict] = {}
        approvals_s, to_ready, n_ready, paused = 0.0, 0.0, 0, 0.0
        with cf.ThreadPoolExecutor(workers) as pool:
            for lv, names, checkpoint in plan:
                rv = current_rv(co)
                procs0 = cpu_by_process(cp, {"operator": op.pid})
                t0 = time.monotonic()
                list(pool.map(lambda nm: bureau.patch_cluster_custom_object(
                    GROUP, VERSION, PLURAL, nm, {"spec": {"signoffs": signoffs(specs[nm]["quota"], at)}}), names))
                approvals_s += time.monotonic() - t0
                window = wait_phase(co, set(names), t0, rv)
                cpu_add(window_cpu, cpu_delta(procs0, cpu_by_process(cp, {"operator": op.pid})))
                to_ready += window
                per_level[lv] = per_level.get(lv, 0.0) + window
                n_ready += len(names)
                ready_status.setdefault(lv, co.get_cluster_custom_object(GROUP, VERSION, PLURAL, names[0])["status"])
                say(f"{lv}: {len(names)} approved, all Ready in {window:.1f} s ({n_ready}/{total} Ready, "
                    f"{to_ready:.0f} s on the clock)")
                if checkpoint:
                    p0 = time.monotonic()
                    wait_quiet(cp, {"operator": op.pid}, at_most=quiet_at_most)
                    read_ms[str(checkpoint)] = dept_reads(dept_kc, PROBE, reads)
                    paused += time.monotonic() - p0
                    say(f"checkpoint {checkpoint}: department reads {read_ms[str(checkpoint)]} "
                        f"(paused {time.monotonic() - p0:.0f} s)")
        op_cpu, op_sys = cpu_seconds(op.pid) - cpu0, cpu_seconds(op.pid, "system") - sys0
        settle_deadline, last, quiet_since = time.monotonic() + 600, -1.0, time.monotonic()
        t_settle = time.monotonic()
        while time.monotonic() < settle_deadline:
            w = operator_writes(port)
            if w != last:
                last, quiet_since = w, time.monotonic()
            elif time.monotonic() - quiet_since > 10:
                break
            time.sleep(3)
        settle_s = time.monotonic() - t_settle
        after = audit_counts(cp, OPERATOR_USER)
        onboarding = after - before
        w0, a0 = operator_writes(port), writes_of(audit_counts(cp, OPERATOR_USER))
        time.sleep(resync * 1.5)  # one full resync of every tenant
        idle_metric = operator_writes(port) - w0
        idle_audit = writes_of(audit_counts(cp, OPERATOR_USER)) - a0
        say(f"settled {settle_s:.0f} s after the last Ready; idle resync writes {idle_metric} (audit {idle_audit})")
        wait_quiet(cp, {"operator": op.pid}, at_most=quiet_at_most)
        read_ms[str(total)] = dept_reads(dept_kc, PROBE, reads)
        say(f"all {total}: department reads {read_ms[str(total)]}")
        repairs = drift_repairs(admin, tree[-1][0])
        op_rss = peak_rss_mib(op.pid)
        op_cpu_total = cpu_seconds(op.pid)
        print(json.dumps({"tenants": total, "approval_to_all_ready_s": round(to_ready, 1),
                          "per_level_s": {k: round(v, 1) for k, v in per_level.items()},
                          "idle_resync_writes": idle_metric, "partial": True}), file=sys.stderr, flush=True)

        # the floor: a bare client applies the same objects to tenants in the state the operator's were in
        bare_api = config.new_client_from_config(str(cp.identity_kubeconfig(BARE_USER, ["system:masters"])))
        _stop(op)
        op = None
        floor = {nm: "f" + nm for nm in specs}

        def floor_spec(nm: str) -> dict:
            s = dict(specs[nm])
            if s.get("parent"):
                s["parent"] = floor[s["parent"]]
            return s

        uids: dict[str, str] = {}

        def floor_tenant(nm: str) -> None:
            fn = floor[nm]
            uids[nm] = co.create_cluster_custom_object(GROUP, VERSION, PLURAL, tenant_body(
                fn, floor_spec(nm), [FINALIZER]))["metadata"]["uid"]
            co.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, fn,
                                                  {"status": pending_status[specs[nm]["level"]]})
            bureau.patch_cluster_custom_object(GROUP, VERSION, PLURAL, fn,
                                               {"spec": {"signoffs": signoffs(specs[nm]["quota"], at)}})

        t = time.monotonic()
        with cf.ThreadPoolExecutor(workers) as pool:
            for lv, names in by_level:
                list(pool.map(floor_tenant, names))
        say(f"floor: {total} tenants created in the operator's pre-approval state in {time.monotonic() - t:.0f} s")
        floor_waited = wait_quiet(cp, {}, at_most=quiet_at_most)
        bare_before = audit_counts(cp, BARE_USER)

        import threading

        in_flight = threading.BoundedSemaphore(workers)  # as the operator: YUNSHANG_CONCURRENCY=workers

        def req(fn, *args, **kw):
            with in_flight:
                return fn(bare_api, *args, **kw)

        bare_s, bare_per_level, bare_cpu = 0.0, {}, {}
        with cf.ThreadPoolExecutor(workers * 8) as inner, cf.ThreadPoolExecutor(8) as pool:
            for lv, names, checkpoint in plan:
                ready_patch = {"status": {**ready_status[lv], "signoff": None}}
                # this batch's objects only (built before its window): 20,000 tenants' at once would be gigabytes
                objs = [(floor[nm], steps.desired_objects(floor[nm], uids[nm], TenantSpec.model_validate(floor_spec(nm))))
                        for nm in names]

                def bare(item):
                    name, group = item
                    req(kube.apply, group[0])  # the namespace first, then the rest together
                    list(inner.map(lambda o: req(kube.apply, o), group[1:]))
                    req(kube.patch, "Tenant", name, ready_patch, sub="status")

                procs0 = cpu_by_process(cp, {})
                t1 = time.monotonic()
                list(pool.map(bare, objs))
                window = time.monotonic() - t1
                cpu_add(bare_cpu, cpu_delta(procs0, cpu_by_process(cp, {})))
                del objs
                bare_s += window
                bare_per_level[lv] = bare_per_level.get(lv, 0.0) + window
                say(f"floor {lv}: {len(names)} applied in {window:.1f} s ({bare_s:.0f} s on the clock)")
                if checkpoint:  # the operator's run paused here on a quiet platform: so does the floor
                    wait_quiet(cp, {}, at_most=quiet_at_most)
        bare_reqs = sum((audit_counts(cp, BARE_USER) - bare_before).values())
        op_reqs = sum(onboarding.values())
        rss = {name: round(peak_rss_mib(pid), 1) for name, pid in cp.pids.items() if Path(f"/proc/{pid}").exists()}
        cpu_total = cpu_by_process(cp, {})
        cpu_total["operator"] = op_cpu_total
        return {
            "tenants": total,
            "levels": {lv: len(ns) for lv, ns in by_level},
            "approval_to_all_ready_s": round(to_ready, 1),
            "per_level_s": {k: round(v, 1) for k, v in per_level.items()},
            "batches": len(plan),
            "paused_for_checkpoints_s": round(paused, 1),
            "settled_after_ready_s": round(settle_s, 1),
            "operator_requests_per_tenant": round(op_reqs / total, 1),
            "operator_requests_by_verb": dict(onboarding),
            "idle_resync_writes_metric": idle_metric,
            "idle_resync_writes_audit": idle_audit,
            "operator_peak_rss_mib": round(op_rss, 1),
            "operator_cpu_s_to_ready": round(op_cpu, 1),
            "operator_system_cpu_s_to_ready": round(op_sys, 1),
            "approvals_sent_s": round(approvals_s, 1),
            "waited_for_quiet_s": [round(waited, 1), round(floor_waited, 1)],
            "cpu_s_in_window_by_process": window_cpu,
            "cpu_s_in_floor_by_process": bare_cpu,
            "drift_repair_p50_s": round(pct(repairs, 50), 3),
            "drift_repair_p99_s": round(pct(repairs, 99), 3),
            "bare_client_s": round(bare_s, 1),
            "bare_per_level_s": {k: round(v, 1) for k, v in bare_per_level.items()},
            "bare_client_requests_per_tenant": round(bare_reqs / total, 1),
            "time_ratio_operator_over_bare": round(to_ready / bare_s, 2),
            "request_ratio_operator_over_bare": round(op_reqs / max(bare_reqs, 1), 2),
            "dept_read_ms": read_ms,
            "peak_rss_mib_by_process": {**rss, "operator": round(op_rss, 1)},
            "cpu_s_total_by_process": {k: round(v, 1) for k, v in cpu_total.items()},
            "etcd_db_mib": etcd_db_mib(cp),
            "run_s": round(time.monotonic() - run_t0, 1),
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
    p.add_argument("--tenants", type=int, nargs="+", default=None, metavar="N",
                   help="flat mode: N province tenants approved at once, one run (and one JSON line) per N "
                        "(default: 100 1000)")
    p.add_argument("--tree", action="store_true",
                   help="tree mode: a five-level tree (province, city, county, township, village; bench/tree.py) "
                        "approved level by level; one JSON line")
    p.add_argument("--total", type=int, default=20000,
                   help="--tree: tenants in the tree (default 20000: 1 province, 9 cities, 88 counties, "
                        "1,500 townships, 18,402 villages; fewer: each level scaled by total/20000)")
    p.add_argument("--checkpoints", type=int, default=5000, metavar="EVERY",
                   help="--tree: every EVERY Ready tenants the clock stops, the platform is let go quiet and a "
                        "department's reads are measured (also at 0 tenants and at the total; 0: only those)")
    p.add_argument("--reads", type=int, default=500,
                   help="--tree: reads of each kind (tenant show, share list) per measurement, for p50/p99")
    p.add_argument("--resync", type=float, default=20.0, help="operator resync interval during the run")
    p.add_argument("--workers", type=int, default=8,
                   help="client threads for creates, approvals and the floor; the operator's YUNSHANG_CONCURRENCY")
    p.add_argument("--quiet-at-most", type=float, default=900.0,
                   help="seconds to wait at most for a quiet control plane before a timed window (and, --tree, "
                        "before each read measurement)")
    p.add_argument("--dept-reads", nargs=3, metavar=("KUBECONFIG", "TENANT", "TIMES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dept_reads:  # the bench's own child: one measurement of a department's reads
        kubeconfig, tenant, times = args.dept_reads
        print(json.dumps(reads_here(Path(kubeconfig), tenant, int(times))), flush=True)
        return
    if args.tree:
        if args.tenants is not None:
            p.error("--tree and --tenants are two modes: give one")
        r = run_tree(args.total, args.checkpoints, args.resync, args.workers, args.reads, args.quiet_at_most)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        return
    for n in args.tenants or [100, 1000]:
        r = run(n, args.resync, args.workers, args.quiet_at_most)
        print(json.dumps(r, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
