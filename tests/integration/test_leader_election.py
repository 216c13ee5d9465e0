"""Two replicas elect their leader through a coordination.k8s.io/v1 Lease (client-go's semantics):
only the leader writes, the standby keeps a warm cache and takes over when the leader dies (kill -9:
no release) within the lease duration and one retry; a leader that cannot renew stops writing."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from kubernetes import client

import conftest
from conftest import OperatorProcess
from factories import approval, tenant
from helpers import wait_for

GROUP, VERSION, PLURAL = "platform.yunshang.io", "v1alpha1", "tenants"
LEASE_DURATION, RENEW_DEADLINE, RETRY = 6.0, 4.0, 1.0


@pytest.fixture
def no_standalone_operator():
    """Stop any standalone operator of the session while this test runs, then restart it."""
    stopped = [op for op in conftest.RUNNING if op.proc and op.proc.poll() is None]
    for op in stopped:
        op.stop()
    yield
    for op in stopped:
        op.start()


@pytest.fixture
def replicas(platform, tmp_path, no_standalone_operator):
    lease = f"op-{uuid.uuid4().hex[:6]}"
    env = {"YUNSHANG_LEASE": lease, "YUNSHANG_LEASE_DURATION": str(LEASE_DURATION),
           "YUNSHANG_RENEW_DEADLINE": str(RENEW_DEADLINE), "YUNSHANG_RETRY_PERIOD": str(RETRY)}
    made = []

    def replica(name: str) -> OperatorProcess:
        d = tmp_path / name
        d.mkdir()
        op = OperatorProcess(platform, d, extra_env={**env, "YUNSHANG_IDENTITY": name})
        made.append(op)
        return op.start()
    yield lease, replica
    for op in made:
        op.stop()
    conftest.RUNNING[:] = [op for op in conftest.RUNNING if op not in made]


def leading(op: OperatorProcess) -> bool:
    return op.metrics().get("yunshang_operator_leading{}") == 1


def _ready(co, name):
    return (co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}).get("phase") == "Ready"


def _approved(co, name):
    body = tenant(name)
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    return name


def _holder(kube_api, lease):
    return client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, "yunshang-system").spec.holder_identity


def test_the_standby_takes_over_within_the_lease_duration_after_kill_9(replicas, kube_api):
    lease, replica = replicas
    co = client.CustomObjectsApi(kube_api)
    a = replica("replica-a")
    wait_for("a leads", lambda: leading(a), timeout=20, interval=0.2)
    b = replica("replica-b")
    assert _holder(kube_api, lease) == "replica-a"
    first = _approved(co, f"lead-{uuid.uuid4().hex[:6]}")
    wait_for("the leader provisions", lambda: _ready(co, first), timeout=60)
    assert a.writes() > 0
    assert not leading(b) and b.writes() == 0, "the standby wrote while the leader was alive"
    a.kill()  # kill -9: the lease is not released, it must run out
    killed = time.monotonic()
    wait_for("b leads", lambda: leading(b), timeout=LEASE_DURATION + RETRY + 10, interval=0.1)
    took = time.monotonic() - killed
    print(f"standby leading {took:.2f}s after kill -9 (lease duration {LEASE_DURATION}s, retry {RETRY}s)")
    assert took <= LEASE_DURATION + RETRY + 0.5, took  # (+ the test's own polling)
    assert _holder(kube_api, lease) == "replica-b"
    second = _approved(co, f"lead-{uuid.uuid4().hex[:6]}")
    wait_for("the new leader provisions", lambda: _ready(co, second), timeout=30)
    assert b.writes() > 0


def test_a_leader_that_cannot_renew_stops_writing_before_its_lease_ends(replicas, kube_api):
    """Another holder takes the Lease by force (as an admin's edit or a partition would make it look):
    the leader's renewals fail, and within the renew deadline it stops acting; a tenant created
    afterwards is not provisioned by it.  Control: before, it provisions."""
    lease, replica = replicas
    co = client.CustomObjectsApi(kube_api)
    a = replica("replica-a")
    wait_for("a leads", lambda: leading(a), timeout=20, interval=0.2)
    first = _approved(co, f"lead-{uuid.uuid4().hex[:6]}")
    wait_for("the leader provisions (control)", lambda: _ready(co, first), timeout=60)
    coord = client.CoordinationV1Api(kube_api)
    stop = time.monotonic() + LEASE_DURATION * 3

    def steal() -> None:  # keep renewing it as someone else, as a leader elsewhere would
        body = coord.read_namespaced_lease(lease, "yunshang-system")
        body.spec.holder_identity = "intruder"
        body.spec.renew_time = dt.datetime.now(dt.timezone.utc)
        coord.replace_namespaced_lease(lease, "yunshang-system", body)
    stolen = time.monotonic()
    steal()
    wait_for("a stops leading", lambda: not leading(a), timeout=RENEW_DEADLINE + RETRY + 2, interval=0.1)
    assert time.monotonic() - stolen < LEASE_DURATION, "it still acted when its lease would have run out"
    writes = a.writes()
    second = _approved(co, f"lead-{uuid.uuid4().hex[:6]}")
    while time.monotonic() < stop:
        steal()
        time.sleep(RETRY)
        assert not _ready(co, second)
    assert a.writes() == writes, "a replica that lost its lease wrote"
    assert not leading(a)
