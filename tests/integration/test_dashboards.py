"""Dashboards: every Grafana panel's query runs on the real Prometheus; the console dashboard
served by Prometheus shows the tenants in a real (headless) browser."""
from __future__ import annotations

import subprocess
import tempfile
import uuid

import pytest
from kubernetes import client

from conftest import prom_query
from factories import approval, tenant
from helpers import wait_for
from yunshang import dashboards
from yunshang.dev import toolchain

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


def test_generated_dashboards_are_checked_in():
    assert dashboards.main(["--check"]) == 0, "run `python -m yunshang.dashboards`"


@pytest.mark.parametrize("board", dashboards.DASHBOARDS, ids=lambda d: d.uid)
def test_every_panel_query_is_valid_on_prometheus(monitoring, board):
    for expr in dashboards.all_queries(board):
        q = expr.replace("$tenant", ".*")
        body = prom_query(monitoring, q, raw=True)
        assert body["status"] == "success", f"{board.uid}: {q}: {body.get('error')}"


def chromium_dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [str(toolchain.find("chromium")), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=60,
        )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_console_dashboard_shows_the_tenants_in_a_browser(monitoring, kube_api):
    co = client.CustomObjectsApi(kube_api)
    name = f"dash-{uuid.uuid4().hex[:6]}"
    body = tenant(name, department={"code": "520000-DASH", "name": "仪表盘测试局"})
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    wait_for("tenant in Prometheus", lambda: prom_query(monitoring, f'yunshang_tenant_phase{{tenant="{name}",phase="Ready"}} == 1'),
             timeout=60)
    url = f"http://127.0.0.1:{monitoring.ports['prometheus']}/consoles/yunshang.html"
    dom = chromium_dom(url)
    assert "Error executing template" not in dom
    assert name in dom and "phase-Ready" in dom
    assert "tenants" in dom and "Alerts firing" in dom
