"""Two replicas with peering never fight: only the leader writes; the standby takes over when it dies."""
from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

import conftest
from conftest import OperatorProcess
from factories import approval, tenant
from helpers import wait_for

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"


@pytest.fixture
def no_standalone_operator():
    """Stop any standalone operator of the session while this test runs, then restart it."""
    stopped = [op for op in conftest.RUNNING if op.proc and op.proc.poll() is None]
    for op in stopped:
        op.stop()
    yield
    for op in stopped:
        op.start()


def _ready(co, name):
    return (co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}).get("phase") == "Ready"


def _approved(co, name):
    body = tenant(name)
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    return name


def test_only_the_leader_acts_and_the_standby_takes_over(platform, kube_api, tmp_path, no_standalone_operator):
    env = {"YUNSHANG_PEERING": "yunshang", "YUNSHANG_PEERING_LIFETIME": "10"}
    hi = OperatorProcess(platform, tmp_path, extra_env={**env, "YUNSHANG_PRIORITY": "200"})
    lo = OperatorProcess(platform, tmp_path / "lo", extra_env={**env, "YUNSHANG_PRIORITY": "100"})
    lo.log_dir.mkdir()
    co = client.CustomObjectsApi(kube_api)
    try:
        hi.start()
        lo.start()
        # both have announced themselves in the peering object
        wait_for("both peers announced", lambda: len([p for p in ((co.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "yunshang").get("status") or {}).values())
            if isinstance(p, dict)]) >= 2, timeout=30)
        first = _approved(co, f"peer-{uuid.uuid4().hex[:6]}")
        wait_for("leader provisions", lambda: _ready(co, first), timeout=60)
        assert hi.writes() > 0
        assert lo.writes() == 0, "the standby wrote while the leader was alive"
        hi.kill()
        second = _approved(co, f"peer-{uuid.uuid4().hex[:6]}")
        wait_for("standby takes over", lambda: _ready(co, second), timeout=90)
        assert lo.writes() > 0
    finally:
        hi.stop()
        lo.stop()
        conftest.RUNNING[:] = [op for op in conftest.RUNNING if op not in (hi, lo)]
