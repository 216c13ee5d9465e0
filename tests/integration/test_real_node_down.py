"""`down` leaves the machine as it found it (issue 19.5): a platform with a real node and a running
pod, then down; bridges, addresses, routes, ip rules, iptables, mounts, cgroups, sysctls and the
fixed host paths the kubelet and containerd write are as before.  Its own module, so that no other
real node runs meanwhile (modules run one after another, whatever the order)."""
from __future__ import annotations

from kubernetes import client, config

from helpers import wait_for
from helpers import on_the_node, phase
from test_real_node import pytestmark  # noqa: F401  (the same skip: no real node, no packets)

from yunshang.dev import controlplane, node


def test_down_leaves_the_machine_as_it_found_it(tmp_path_factory):
    before = node.host_snapshot()
    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("real-node-down"), real_node=True,
                                   audit_webhook=False)
    cp.up()
    try:
        api = config.new_client_from_config(str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "left"}})
        core.create_namespaced_pod("left", on_the_node("sleeper", "exec sleep 3600", restart="Always"))
        wait_for("a pod Running", lambda: phase(core, "left", "sleeper") == "Running", timeout=60)
        during = node.host_snapshot()
        api.close()
    finally:
        cp.down()
    after = node.host_snapshot()
    changed = {k for k in during if set(during[k]) != set(before[k])}
    assert {"links", "addresses", "routes", "mounts", "cgroups"} <= changed, changed  # it did change them
    diff = {k: {"left": sorted(set(after[k]) - set(before[k])), "gone": sorted(set(before[k]) - set(after[k]))}
            for k in after if set(after[k]) != set(before[k])}
    assert not diff, diff
