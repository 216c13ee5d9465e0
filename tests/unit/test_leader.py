"""The Lease's rules (yunshang.operator.runtime.leader), on an in-memory Lease and a hand-moved clock."""
from __future__ import annotations

import copy

import pytest
from kubernetes import client

from yunshang.operator.runtime.leader import LeaderElector


class FakeLeases:
    """get/create/replace of Leases with resourceVersion checks (409 when it moved), as the API server."""

    def __init__(self):
        self.obj: dict | None = None
        self.rv = 0
        self.down = False

    def _up(self):
        if self.down:
            raise client.ApiException(status=503, reason="unavailable")

    def get(self, api, kind, name, namespace=None):
        self._up()
        return copy.deepcopy(self.obj)

    def create(self, api, kind, body, count=True):
        self._up()
        if self.obj is not None:
            raise client.ApiException(status=409, reason="exists")
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)

    def replace(self, api, kind, body, count=True):
        self._up()
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise client.ApiException(status=409, reason="conflict")
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)

    def renew_as(self, who):
        self.rv += 1
        self.obj["spec"].update(holderIdentity=who, renewTime=f"t{self.rv}")
        self.obj["metadata"]["resourceVersion"] = str(self.rv)


@pytest.fixture
def world():
    now = [1000.0]
    leases = FakeLeases()

    def elector(identity):
        return LeaderElector(None, "yunshang-system", "op", identity, lease_duration=15, renew_deadline=10,
                             retry_period=2, clock=lambda: now[0], k=leases)
    return now, leases, elector


def test_the_first_takes_it_and_the_second_waits_while_it_is_renewed(world):
    now, leases, elector = world
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew() and leases.obj["spec"]["holderIdentity"] == "a"
    assert leases.obj["spec"]["leaseTransitions"] == 0
    for _ in range(20):  # a renews every 2 s for 40 s: b never takes it
        now[0] += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert leases.obj["spec"]["holderIdentity"] == "a"


def test_a_lease_nobody_renews_is_taken_only_after_the_duration_by_the_standbys_own_clock(world):
    now, leases, elector = world
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b first sees it now: its clock starts here
    now[0] += 14.9
    assert not b.try_acquire_or_renew()
    now[0] += 0.2
    assert b.try_acquire_or_renew()
    spec = leases.obj["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_two_that_try_at_once_never_both_win(world):
    """b decides on what it read; a renews between b's read and b's write: b's write is refused (409)."""
    now, leases, elector = world
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    now[0] += 16  # to b, the lease looks expired
    stale = leases.get(None, "Lease", "op")
    assert a.try_acquire_or_renew()  # a renews meanwhile
    real_get, leases.get = leases.get, lambda *args, **kw: copy.deepcopy(stale)
    b._observed = None  # (b's clock on the record it read: as if it saw it 16 s ago)
    b._seen(stale)
    b._observed_at -= 16
    assert not b.try_acquire_or_renew()
    leases.get = real_get
    assert leases.obj["spec"]["holderIdentity"] == "a"


def test_a_leader_that_cannot_renew_stops_before_its_lease_can_be_taken(world):
    now, leases, elector = world
    a = elector("a")
    assert a.try_acquire_or_renew()
    a._renewed = now[0]
    leases.down = True
    now[0] += 9.9
    assert a.leading()
    now[0] += 0.2  # the renew deadline (10 s) passed: it stops, 5 s before anyone may take the lease
    assert not a.leading()


def test_release_lets_a_standby_take_it_at_once(world):
    now, leases, elector = world
    a, b = elector("a"), elector("b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert leases.obj["spec"]["holderIdentity"] == ""
    assert b.try_acquire_or_renew() and leases.obj["spec"]["holderIdentity"] == "b"


def test_the_settings_refuse_a_deadline_that_is_not_inside_the_duration():
    from yunshang.operator.runtime.settings import Settings

    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Settings(lease="op", lease_duration=10, renew_deadline=10)
