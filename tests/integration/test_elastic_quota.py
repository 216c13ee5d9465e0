"""Elastic quota against a real Prometheus holding a backfilled history: a tenant that stayed
busy grows by one step (within its ceiling), an idle one shrinks (not below its floor), each
change an Event with the numbers that caused it."""
from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid

import pytest
from kubernetes import client

from conftest import OperatorProcess
from factories import approval, tenant
from helpers import wait_for
from yunshang.dev import toolchain
from yunshang.dev.controlplane import free_port

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


def openmetrics(series: dict[str, tuple[float, float]], minutes: int = 40) -> str:
    """Usage and limit of each tenant's cpu, one sample a minute for the last `minutes`."""
    now = int(time.time()) - 60
    lines = ["# TYPE yunshang_tenant_resource_usage gauge", "# TYPE yunshang_tenant_resource_limit gauge"]
    usage, limit = [], []
    for tenant_name, (used, hard) in series.items():
        for m in range(minutes, 0, -1):
            ts = now - m * 60
            usage.append(f'yunshang_tenant_resource_usage{{tenant="{tenant_name}",resource="cpu"}} {used} {ts}')
            limit.append(f'yunshang_tenant_resource_limit{{tenant="{tenant_name}",resource="cpu"}} {hard} {ts}')
    lines = [lines[0], *usage, lines[1], *limit, "# EOF"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def backfilled_prometheus(tmp_path):
    busy, idle = f"busy-{uuid.uuid4().hex[:5]}", f"idle-{uuid.uuid4().hex[:5]}"
    om = tmp_path / "history.om"
    om.write_text(openmetrics({busy: (7.6, 8), idle: (0.4, 8)}))
    data = tmp_path / "tsdb"
    r = subprocess.run([str(toolchain.find("promtool")), "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    proc = subprocess.Popen([str(toolchain.find("prometheus")), f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready():
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
            return r.status == 200

    try:
        wait_for("prometheus ready", ready, timeout=30)
        yield url, busy, idle
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory):
    """A control plane of this module's own: its operator asks a Prometheus of backfilled history, and
    must be the only operator acting on the platform (the session's would act on the same tenants)."""
    from kubernetes import config

    from yunshang import platform as plat
    from yunshang.dev import controlplane

    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("elastic-platform"), audit_webhook=False)
    cp.up()
    api = config.new_client_from_config(str(cp.kubeconfig))
    plat.install(api)
    yield cp, api
    api.close()
    cp.down()


def _rounds(op) -> float:
    return sum(v for k, v in op.metrics().items() if k.startswith("yunshang_elastic_rounds_total"))


def test_quota_grows_and_shrinks_from_backfilled_history(own_platform, backfilled_prometheus, tmp_path):
    from yunshang import elastic

    platform, kube_api = own_platform
    url, busy, idle = backfilled_prometheus
    obs = elastic.observe(url, busy, "cpu")
    assert obs is not None and obs.min_ratio == pytest.approx(0.95) and obs.samples >= 30

    op = OperatorProcess(platform, tmp_path, extra_env={
        "YUNSHANG_PROMETHEUS_URL": url, "YUNSHANG_ELASTIC_SECONDS": "2", "YUNSHANG_ELASTIC_WINDOW": "30m",
        "YUNSHANG_ELASTIC_COOLDOWN": "3600"}).start()
    co = client.CustomObjectsApi(kube_api)
    core = client.CoreV1Api(kube_api)
    try:
        for name in (busy, idle):
            body = tenant(name, quota={"cpu": "8", "memory": "16Gi"},
                          elastic={"enabled": True, "floor": {"cpu": "4"}, "ceiling": {"cpu": "12"}})
            body["spec"]["approval"] = approval()
            co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)

        def cpu(name):
            return str(co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)["spec"]["quota"]["cpu"])

        wait_for("busy grows one step", lambda: cpu(busy) == "10", timeout=60)
        wait_for("idle shrinks one step", lambda: cpu(idle) == "6", timeout=60)
        # the cool-down holds: no second step in the next two whole rounds of the loop
        seen = _rounds(op)
        wait_for("two more elastic rounds", lambda: _rounds(op) >= seen + 2, timeout=30)
        assert (cpu(busy), cpu(idle)) == ("10", "6")
        # the ResourceQuota follows
        wait_for("quota applied", lambda: core.read_namespaced_resource_quota("tenant-quota", f"{busy}-main").spec.hard["requests.cpu"] == "10")
        events = core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={busy},reason=ElasticQuota").items
        assert events and "8 -> 10" in events[0].message and "ceiling 12" in events[0].message and "min 95%" in events[0].message
    finally:
        op.stop()
