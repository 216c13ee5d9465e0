"""Two platforms' real nodes on one machine never collide, and `down` leaves the machine as it found
it (issue 19.5).

Two platforms, each with a real node and a web server pod, run at once.  Each node has its own
network namespace, bridge, pod range, veth and cgroup root; a default-deny policy in one platform
closes that platform's connection while the other's stays open (kube-router and kube-proxy of the
two keep chains and ipsets of the same names, each in its own namespace); one platform going down
leaves the other's pods serving; after both, links, addresses, routes, ip rules, iptables, ipsets,
mounts, cgroups, sysctls and the fixed host paths the kubelet and containerd write are as before.
Its own module, so that no other real node of this run starts or stops meanwhile (modules run one
after another, whatever the order), and alone on the host (helpers.host_lock: the knock-out run's
real nodes, running beside the suite, wait or are waited for)."""
from __future__ import annotations

import contextlib
import uuid

from kubernetes import client, config

from helpers import host_lock, on_the_node, phase, run_in, shell_in, wait_for
from test_real_node import pytestmark  # noqa: F401  (the same skip: no real node, no packets)

from yunshang.dev import controlplane, node

FETCH = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080"
DENY_ALL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


class Side:
    """One platform with a real node, a namespace, a web server and a shell."""

    def __init__(self, state):
        self.cp = controlplane.ControlPlane(state=state, real_node=True, audit_webhook=False)
        self.api = None

    def up(self) -> "Side":
        self.cp.up()
        assert self.cp.real_node_name(), self.cp.node_note
        self.api = config.new_client_from_config(str(self.cp.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.ns = f"two-{uuid.uuid4().hex[:5]}"
        self.core.create_namespace({"metadata": {"name": self.ns}})
        self.core.create_namespaced_pod(self.ns, on_the_node("web", "exec httpd -f -p 8080 -h /www", {"app": "web"},
                                                             "Always"))
        shell_in(self.core, self.ns)
        wait_for("web Running", lambda: phase(self.core, self.ns, "web") == "Running", timeout=60)
        self.web_ip = self.core.read_namespaced_pod("web", self.ns).status.pod_ip
        self.node = node.RealNode.load(self.cp.node_state)
        return self

    def answers(self) -> bool:
        return "yunshang toolbox" in run_in(self.core, self.ns, FETCH.format(self.web_ip))

    def down(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None
        self.cp.down()


def test_two_platforms_real_nodes_side_by_side_then_the_machine_as_found(tmp_path_factory):
    with host_lock(alone=True):  # no other real node (the knock-out run's) starts or stops meanwhile
        two_nodes_then_the_machine_as_found(tmp_path_factory)


def two_nodes_then_the_machine_as_found(tmp_path_factory):
    before = node.host_snapshot()
    a, b = Side(tmp_path_factory.mktemp("node-a")), Side(tmp_path_factory.mktemp("node-b"))
    with contextlib.ExitStack() as stack:
        stack.callback(b.down)
        stack.callback(a.down)
        a.up()
        b.up()
        during = node.host_snapshot()
        # each its own: index, namespace, bridge, pod range, veth, cgroup root
        assert a.node.index != b.node.index
        for side in (a, b):
            k = side.node.index
            assert node.netns_path(k).exists() and side.web_ip.startswith(node.pod_cidr(k).rsplit(".", 2)[0] + ".")
            assert node.uplink(k)[0] in during["links"]
            assert f"memory{node.cgroup_root(k)}" in during["cgroups"]
        assert not any(ln.startswith(("-N KUBE-", ":KUBE-")) for ln in during["iptables"]), \
            "a node's chains on the host"  # they live in the nodes' namespaces
        # control: both answer; then a default-deny in a closes a's path and leaves b's open
        assert a.answers() and b.answers()
        client.NetworkingV1Api(a.api).create_namespaced_network_policy(a.ns, DENY_ALL)
        wait_for("a's policy closes a's path", lambda: not a.answers(), timeout=30, interval=0.5)
        assert b.answers(), "a's policy reached b's node"
        # a goes down: b's pods keep serving, b's node keeps its namespace
        a.down()
        assert not node.netns_path(a.node.index).exists() and node.netns_path(b.node.index).exists()
        assert b.answers(), "a's down broke b's node"
    after = node.host_snapshot()
    changed = {k for k in during if set(during[k]) != set(before[k])}
    assert {"links", "addresses", "routes", "mounts", "cgroups"} <= changed, changed  # it did change them
    diff = {k: {"left": sorted(set(after[k]) - set(before[k])), "gone": sorted(set(before[k]) - set(after[k]))}
            for k in after if set(after[k]) != set(before[k])}
    assert not diff, diff
