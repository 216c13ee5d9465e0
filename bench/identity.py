"""统一身份认证, measured: Keycloak's start and memory, sign-in to the first `tenant list`, and the
API server's read latency with a provider's token against a client certificate.

    .venv/bin/python bench/identity.py [--reads 500]

Starts a platform of its own in a temp dir (Keycloak, the control plane, yunshang's policies and
operator, one Ready department), then takes it down.  The person at the browser is
tests/signin.py (it types into Keycloak's form); its typing is part of the sign-in time.
Prints one JSON line.  Not a test: numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
YUNSHANG = str(Path(sys.executable).with_name("yunshang"))
PATH = "/apis/platform.yunshang.io/v1alpha1/tenants/gy-health"


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (kc.sh runs java)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")))
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration):
            pass
    return round(total / 1024, 1)


def _mark(marks: dict[str, float], prefix: str) -> float:
    return next(v for k, v in marks.items() if k.startswith(prefix))


def _latencies(session, url: str, n: int, **kw) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.get(url, timeout=10, **kw)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (r.status_code, r.text[:200])
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(len(times) * 0.99) - 1], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reads", type=int, default=500)
    args = p.parse_args()
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    import requests
    from kubernetes import client, config

    from factories import approval, tenant
    from helpers import wait_for
    from yunshang.dev import controlplane, keycloak, pki

    work = Path(tempfile.mkdtemp(prefix="yunshang-bench-identity-"))
    cp = controlplane.ControlPlane(state=work / "state", audit_webhook=False,
                                   identity=keycloak.LocalIdentity.of_project(ROOT))
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        cp.up(progress=lambda m: marks.setdefault(m.split(" (")[0], time.monotonic() - t0))
        up_s = time.monotonic() - t0
        rss = _rss_mib(cp.pids["keycloak"])
        cp.start_platform()
        api = config.new_client_from_config(str(cp.kubeconfig))
        co = client.CustomObjectsApi(api)
        for name, changes in {"gz-bigdata": {"level": "province"},
                              "gy-health": {"level": "city", "parent": "gz-bigdata",
                                            "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": 5,
                                                      "services": 2, "configmaps": 5, "secrets": 5,
                                                      "persistentvolumeclaims": 1}}}.items():
            body = tenant(name, **changes)
            body["spec"]["approval"] = approval()
            co.create_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", body)
        wait_for("gy-health Ready", lambda: (co.get_cluster_custom_object(
            "platform.yunshang.io", "v1alpha1", "tenants", "gy-health").get("status") or {}).get("phase") == "Ready")
        people = json.loads(cp.people_file.read_text())
        ident = json.loads(cp.identity_file.read_text())
        home = work / "person"
        home.mkdir()
        (home / "kubeconfig").write_text(cp.kubeconfig.read_text())
        env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "KUBECONFIG": str(home / "kubeconfig"),
               "YUNSHANG_STATE_DIR": str(cp.state), "BROWSER": f"{sys.executable} {ROOT / 'tests' / 'signin.py'} %s",
               "YUNSHANG_TEST_USER": "gy-health.clerk", "YUNSHANG_TEST_PASSWORD": people["gy-health.clerk"]["password"],
               "YUNSHANG_TEST_CA": ident["caFile"]}
        s0 = time.perf_counter()
        login = subprocess.run([YUNSHANG, "login"], capture_output=True, text=True, env=env)
        s1 = time.perf_counter()
        listed = subprocess.run([YUNSHANG, "tenant", "list", "-o", "json"], capture_output=True, text=True, env=env)
        s2 = time.perf_counter()
        assert login.returncode == 0 and listed.returncode == 0, (login.stderr, listed.stderr)
        again = []
        for _ in range(5):
            a0 = time.perf_counter()
            subprocess.run([YUNSHANG, "tenant", "list", "-o", "json"], capture_output=True, text=True, env=env)
            again.append(time.perf_counter() - a0)
        # reads: the same person's token against a client certificate of the same groups
        token = json.loads(subprocess.run([YUNSHANG, "token", "--issuer", ident["issuer"], "--ca-file", ident["caFile"]],
                                          capture_output=True, text=True, env=env).stdout)["status"]["token"]
        pki.issue_client(cp.pki, "bench-clerk", "bench.clerk", ["yunshang:departments", "yunshang:dept:gy-health"])
        ca = str(cp.pki / "ca.crt")
        with requests.Session() as with_token, requests.Session() as with_cert:
            with_token.trust_env = with_cert.trust_env = False
            with_token.verify = with_cert.verify = ca
            with_token.headers["Authorization"] = f"Bearer {token}"
            with_cert.cert = (str(cp.pki / "bench-clerk.crt"), str(cp.pki / "bench-clerk.key"))
            for sess in (with_token, with_cert):  # warm: connections, the authorizer's cache
                _latencies(sess, cp.server + PATH, 20)
            token_reads = _latencies(with_token, cp.server + PATH, args.reads)
            cert_reads = _latencies(with_cert, cp.server + PATH, args.reads)
        # the same department's `tenant list` with the client certificate instead of the plugin
        certs = work / "cert.kubeconfig"
        cp.write_kubeconfig(certs, "bench-clerk")
        by_cert = []
        for _ in range(5):
            a0 = time.perf_counter()
            r = subprocess.run([YUNSHANG, "tenant", "list", "-o", "json"], capture_output=True, text=True,
                               env={**env, "KUBECONFIG": str(certs)})
            by_cert.append(time.perf_counter() - a0)
            assert r.returncode == 0 and "gy-health" in r.stdout, r.stderr
        api.close()
        print(json.dumps({
            "keycloak_ready_s": round(_mark(marks, "loading the realm") - _mark(marks, "starting Keycloak"), 1),
            "control_plane_up_with_keycloak_s": round(up_s, 1),
            "keycloak_rss_mib": rss,
            "login_s": round(s1 - s0, 2),
            "first_tenant_list_s": round(s2 - s1, 2),
            "sign_in_to_first_tenant_list_s": round(s2 - s0, 2),
            "later_tenant_list_median_s": round(statistics.median(again), 2),
            "tenant_list_same_department_client_certificate_median_s": round(statistics.median(by_cert), 2),
            f"reads_{args.reads}_token": token_reads,
            f"reads_{args.reads}_client_certificate": cert_reads,
        }))
    finally:
        cp.down()


if __name__ == "__main__":
    main()
