"""A real node (dev/node.py): pods that really run, a real connection over the node's bridge, and a
machine left as it was found.

Its own control plane with a real node beside the fake ones (the session's platform keeps fake
nodes only).  Where the machine cannot run a real node the module is skipped, saying why — except
in CI, where that is a failure: CI's machine is root with cgroups, so a skip there would hide a
broken set-up."""
from __future__ import annotations

import os
import uuid

import pytest
from kubernetes import client, config

from helpers import host_lock, knock_out_if_asked, listening, on_the_node, phase, run_in, shell_in, wait_for  # noqa: F401

from yunshang.dev import controlplane, node

WHY_NOT = node.why_not()
if WHY_NOT and os.environ.get("CI"):
    pytest.fail(f"CI runs on a machine that can run a real node, but: {WHY_NOT}", pytrace=False)
pytestmark = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    with host_lock():
        cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("real-node"), real_node=True, audit_webhook=False)
        cp.up()
        try:
            assert cp.real_node_name(), cp.node_note  # e.g. not root, no cgroups
            api = config.new_client_from_config(str(cp.kubeconfig))
            knock_out_if_asked(api)
            yield cp, api
            api.close()
        finally:
            cp.down()


def test_the_node_registers_ready_with_its_taint_and_bridge_address(real):
    cp, api = real
    nodes = [n for n in client.CoreV1Api(api).list_node().items if (n.metadata.labels or {}).get(node.NODE_LABEL)]
    assert len(nodes) == 1, [n.metadata.name for n in nodes]
    n = nodes[0]
    assert any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    assert [t.key for t in n.spec.taints or []] == [node.TAINT["key"]]  # nothing lands there unasked
    internal = [a.address for a in n.status.addresses if a.type == "InternalIP"]
    index = int(n.metadata.name.rsplit("-", 1)[1])
    assert internal == [node.bridge_ip(index)]  # the node's own bridge address, nothing outside


def test_a_pod_serves_and_another_connects_over_the_bridge(real):
    """Two real pods: a server (busybox httpd) and a client that fetches its page with nc; the
    client's exit code is its verdict (Succeeded only if the page came back)."""
    cp, api = real
    core = client.CoreV1Api(api)
    ns = f"rn-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_pod(ns, on_the_node("web", "exec httpd -f -p 8080 -h /www", {"app": "web"}, "Always"))
    wait_for("the server Running", lambda: phase(core, ns, "web") == "Running", timeout=60)
    ip = core.read_namespaced_pod("web", ns).status.pod_ip
    index = int(core.read_namespaced_pod("web", ns).spec.node_name.rsplit("-", 1)[1])
    assert ip and ip.startswith(node.pod_cidr(index).rsplit(".", 2)[0] + ".")  # an address of the node's range
    fetch = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080 | grep -q 'yunshang toolbox'"
    core.create_namespaced_pod(ns, on_the_node("client", fetch))
    wait_for("the client done", lambda: phase(core, ns, "client") in ("Succeeded", "Failed"), timeout=60)
    st = core.read_namespaced_pod("client", ns).status.container_statuses[0].state.terminated
    assert phase(core, ns, "client") == "Succeeded", (st.exit_code, st.message)
    # control: the same client against a port nobody serves fails (the verdict can say no)
    core.create_namespaced_pod(ns, on_the_node("nobody", fetch.replace("8080", "8081")))
    wait_for("the second client done", lambda: phase(core, ns, "nobody") in ("Succeeded", "Failed"), timeout=60)
    assert phase(core, ns, "nobody") == "Failed"


def test_the_node_listens_on_loopback_and_its_bridge_address_only(real):
    """kubelet and containerd serve on 127.0.0.1 and the node's bridge address, nowhere else."""
    import socket
    import struct

    cp, api = real
    rn = node.RealNode.load(cp.node_state)
    addrs = listening(rn.pids.values())
    assert addrs, "found no listening sockets at all"
    as_proc = {"%08X" % struct.unpack("<I", socket.inet_aton(ip))[0] for ip in ("127.0.0.1", node.bridge_ip(rn.index))}
    assert set(addrs) <= as_proc, (addrs, as_proc)
    assert "%08X" % struct.unpack("<I", socket.inet_aton(node.bridge_ip(rn.index)))[0] in addrs  # the kubelet's


def host_address() -> str:
    """This machine's address outside the node (its default route's source)."""
    import subprocess

    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True).stdout.split()
    return out[out.index("src") + 1]


@pytest.mark.control("node-traffic-guard")
def test_pod_traffic_stays_on_the_bridge(real):
    """Control: the node's guard (mangle chains YS-NODE<k>-IN/-FWD and the pod range's ip rule, in
    the node's namespace). A pod's connection to a closed port of the bridge address is refused by
    the node (the packet got there: the API server's door); the same to the node's other address
    (its end of the veth to the host), to the host's end, to the machine's outside address or to an
    address beyond is dropped before it is routed (a time-out, never a refusal)."""
    from kubernetes.stream import stream

    cp, api = real
    core = client.CoreV1Api(api)
    ns = f"rg-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_pod(ns, on_the_node("shell", "exec sleep 2147483647", restart="Always"))
    wait_for("the shell Running", lambda: phase(core, ns, "shell") == "Running", timeout=60)
    index = int(core.read_namespaced_pod("shell", ns).spec.node_name.rsplit("-", 1)[1])

    def attempt(address: str) -> str:
        return stream(core.connect_get_namespaced_pod_exec, "shell", ns, command=[
            "/bin/sh", "-c", f"nc -w 3 {address} 1 </dev/null; echo exit=$?"],
            stderr=True, stdout=True, stdin=False, tty=False)
    control = attempt(node.bridge_ip(index))
    assert "refused" in control.lower(), control  # control: it reaches the node, which refuses
    # the node's end of its veth to the host (local to the node: refused, were it not dropped), the
    # host's end, the machine's outside address, an address beyond
    for address in (*node.uplink(index)[1:][::-1], host_address(), "198.51.100.1"):
        out = attempt(address)
        assert "refused" not in out.lower() and "exit=1" in out, (address, out)


def test_a_service_address_reaches_its_pods_and_the_api_server_its_door(real):
    """kube-proxy on the node: a ClusterIP Service (port 80 to the pod's 8080) answers from a pod;
    the `kubernetes` Service reaches the API server through its door on the bridge address (the API
    server's TLS port answers plain HTTP with its own words). Control: a Service port nobody serves."""
    cp, api = real
    core = client.CoreV1Api(api)
    ns = f"rs-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_pod(ns, on_the_node("web", "exec httpd -f -p 8080 -h /www", {"app": "web"}, "Always"))
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                              {"name": "none", "port": 81, "targetPort": 8081}]}})
    shell_in(core, ns)
    wait_for("web Running", lambda: phase(core, ns, "web") == "Running", timeout=60)
    get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} {}"
    wait_for("the Service answers", lambda: "yunshang toolbox" in run_in(core, ns, get.format(svc.spec.cluster_ip, 80)),
             timeout=15, interval=0.5)
    assert "yunshang toolbox" not in run_in(core, ns, get.format(svc.spec.cluster_ip, 81))  # control: no server
    kubernetes = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    out = run_in(core, ns, get.format(kubernetes, 443))
    assert "Client sent an HTTP request to an HTTPS server" in out, out


def test_pods_resolve_service_names(real):
    """CoreDNS on the node (Service kube-dns at the kubelet's clusterDNS): a pod resolves a Service's
    name to its ClusterIP, by its short name too (the kubelet's search path). Control: a name that
    does not exist is not found."""
    cp, api = real
    core = client.CoreV1Api(api)
    ns = f"rd-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    svc = core.create_namespaced_service(ns, {"metadata": {"name": "named"}, "spec": {
        "selector": {"app": "nothing"}, "ports": [{"port": 80}]}})
    shell_in(core, ns)
    full = run_in(core, ns, f"nslookup named.{ns}.svc.cluster.local {node.DNS_IP}")
    assert svc.spec.cluster_ip in full, full
    assert svc.spec.cluster_ip in run_in(core, ns, f"nslookup named.{ns}.svc.cluster.local")  # resolv.conf's
    missing = run_in(core, ns, f"nslookup nothing-here.{ns}.svc.cluster.local {node.DNS_IP}")
    assert svc.spec.cluster_ip not in missing and "NXDOMAIN" in missing, missing
