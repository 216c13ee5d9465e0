"""A real node's sockets fit a Unix socket's path whatever the state dir (under a pytest worker's
temp dirs `dev up`'s containerd refused "unix socket path too long (> 104)", then the kubelet its
pod-resources socket)."""
from __future__ import annotations

import os
from pathlib import Path

from yunshang.dev import controlplane


def test_a_short_state_dir_keeps_its_node_inside():
    cp = controlplane.ControlPlane(state=Path("/tmp/s"))
    assert cp.node_state == Path("/tmp/s/node")


def test_a_long_state_dir_gets_a_short_node_dir_of_its_own(tmp_path):
    deep = tmp_path / ("d" * 70) / "platform"
    a, b = controlplane.ControlPlane(state=deep), controlplane.ControlPlane(state=deep.parent / "other")
    for cp in (a, b):
        deepest = cp.node_state / "kubelet" / "pod-resources" / "2244406994"
        assert len(os.fsencode(deepest)) <= controlplane.SOCKET_PATH_MAX
        assert not str(cp.node_state).startswith(str(deep))
    assert a.node_state != b.node_state  # each state dir its own
    assert a.node_state == controlplane.ControlPlane(state=deep).node_state  # the same every time: down finds it
