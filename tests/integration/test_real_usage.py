"""What pods really use (issue 19.4): Prometheus scrapes the real node's kubelet (its resource
metrics and cAdvisor's, through its own client certificate and the nodes/metrics grant), and the
recorded series yunshang:tenant_cpu_used:cores and yunshang:tenant_memory_used:bytes, which the
tenant-usage dashboard shows beside the quota, follow a tenant's real work: a tenant whose pod
burns CPU shows it, an idle one (the control) does not."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid

import pytest
from kubernetes import client

from helpers import on_the_node, phase, ready_tenant, real_platform, wait_for
from test_real_node import pytestmark  # noqa: F401  (the same skip)

from yunshang.dev import monitoring


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    with real_platform(tmp_path_factory.mktemp("usage"),
                       monitoring.Settings(scrape_interval="2s", evaluation_interval="2s")) as (cp, api):
        yield cp, api


def test_prometheus_sees_what_a_tenants_pods_really_use(watched):
    cp, api = watched
    co, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:4]
    burn, idle = f"burn-{tag}", f"idle-{tag}"
    for t, command in ((burn, "while :; do :; done"), (idle, "exec sleep 2147483647")):
        ready_tenant(co, t, namespaces=["main"], allowed={"registries": ["yunshang.local"]})
        core.create_namespaced_pod(f"{t}-main", on_the_node("work", command, restart="Always"))
    for t in (burn, idle):
        wait_for(f"{t}'s pod Running", lambda t=t: phase(core, f"{t}-main", "work") == "Running", timeout=60)
    port = cp.ports["prometheus"]
    wait_for("the kubelet scraped", lambda: query(port, 'up{job="kubelet-resource"} == 1'), timeout=60)
    wait_for("cAdvisor's per-container series scraped too", lambda: query(port, 'up{job="kubelet-cadvisor"} == 1'),
             timeout=30)

    def used(t: str) -> float | None:
        got = query(port, f'yunshang:tenant_cpu_used:cores{{tenant="{t}"}}')
        return float(got[0]["value"][1]) if got else None
    wait_for(f"{burn} shows the CPU it burns", lambda: (used(burn) or 0) > 0.2, timeout=90, interval=2)
    wait_for(f"{idle} is recorded", lambda: used(idle) is not None, timeout=60, interval=2)
    assert used(idle) < 0.05, used(idle)  # control: the idle tenant's pod uses next to nothing
    memory = query(port, f'yunshang:tenant_memory_used:bytes{{tenant="{burn}"}}')
    assert memory and float(memory[0]["value"][1]) > 0, memory
    assert query(port, f'container_cpu_usage_seconds_total{{namespace="{burn}-main",container="c"}}')  # cAdvisor's
