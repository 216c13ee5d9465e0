"""The one-command platform as a new user runs it: `yunshang dev up` (what `make up` calls after
set-up) brings up everything and says what to try; the suggested commands work; `dev down`
leaves no process behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import host_lock, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.pulumi]
BIN = Path(sys.executable).parent / "yunshang"
CATALOG = {p.stem for p in (Path(__file__).resolve().parents[2] / "tenants").glob("*.yaml")}  # named after their tenants


def run(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(state / "kubeconfig"), "COLUMNS": "200"}
    r = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    return r


def test_up_try_next_down(tmp_path):
    with host_lock():  # `dev up` brings a real node: never while a test compares the host before and after
        up_try_next_down(tmp_path)


def up_try_next_down(tmp_path):
    state = tmp_path / "platform"
    t0 = time.monotonic()
    up = run(state, "dev", "up", "--state-dir", str(state), "--no-kubeconfig")
    seconds = time.monotonic() - t0
    try:
        out = up.stdout
        assert "local platform ready" in out and "pulumi up" in out and "try next" in out
        assert "/consoles/yunshang.html" in out
        assert "sign-in    : Keycloak at https://127.0.0.1:" in out and "yunshang login" in out, out
        print(f"dev up with the catalog: {seconds:.1f}s")

        def all_ready():
            tenants = json.loads(run(state, "tenant", "list", "-o", "json").stdout)
            return {t["name"] for t in tenants} == CATALOG and all(t["phase"] == "Ready" for t in tenants)

        wait_for("catalog Ready", all_ready, timeout=60)
        run(state, "share", "request", "--consumer", "gy-police", "--provider", "gz-bigdata",
            "--namespace", "gz-bigdata-exchange", "--service", "api", "--port", "80", "--purpose", "case lookups")
        run(state, "share", "approve", "gy-police.gz-bigdata.api")
        wait_for("agreement Active", lambda: json.loads(run(state, "share", "list", "-o", "json").stdout)[0]["phase"]
                 == "Active", timeout=30)
        from yunshang.dev import node

        if not node.why_not():  # the consent path, used by a real client on the real node
            from kubernetes import client, config

            from helpers import run_in, shell_in
            from yunshang.infra.components import DEMO_ANSWER

            api = config.new_client_from_config(str(state / "kubeconfig"))
            core = client.CoreV1Api(api)
            # by name (busybox's nslookup asks the cluster's DNS), then one GET
            fetch = ("ip=$(nslookup api.gz-bigdata-exchange.svc.cluster.local | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p'"
                     " | tail -1); printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $ip 80")
            shell_in(core, "gy-police-cases")
            wait_for("gy-police gets the exchange's answer", lambda: DEMO_ANSWER in run_in(
                core, "gy-police-cases", fetch), timeout=60, interval=1)
            shell_in(core, "gy-health-records")  # control: a department without an agreement
            assert DEMO_ANSWER not in run_in(core, "gy-health-records", fetch)
            api.close()
        wait_for("audit records", lambda: "AgreementApproved" in run(state, "audit").stdout, timeout=30)
        assert "chain intact" in run(state, "audit", "verify").stdout
        costs = json.loads(run(state, "report", "costs", "-o", "json").stdout)
        assert {c["tenant"] for c in costs} == CATALOG
        assert all(float(c["saving"]) > 0 for c in costs)
        st = json.loads(run(state, "dev", "status", "--state-dir", str(state), "-o", "json").stdout)["components"]
        assert all(c["running"] for c in st.values())
        assert {"keycloak", "etcd", "kube-apiserver", "kwok", "prometheus", "alertmanager", "operator"} <= set(st)
        from yunshang.dev import node

        if not node.why_not():  # `make up` brings a real node where the machine can run one
            assert {"kubelet", "containerd"} <= set(st) and "real node  : yunshang-node-" in out, out
        pids = [c["pid"] for c in st.values()]
    finally:
        down = run(state, "dev", "down", "--state-dir", str(state))
    assert "stopped" in down.stdout
    # no process of this platform is left
    time.sleep(0.5)
    leftover = [p for p in pids if Path(f"/proc/{p}").exists()
                and Path(f"/proc/{p}/stat").read_text().split(")")[-1].split()[0] != "Z"]
    assert leftover == []
    r = run(state, "dev", "status", "--state-dir", str(state), check=False)
    assert r.returncode == 1
