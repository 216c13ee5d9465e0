"""A real node beside the local control plane: kubelet, containerd + runc, a CNI bridge, a guard
that keeps pod traffic on the bridge, kube-router's firewall (NetworkPolicy), kube-proxy
(Services), CoreDNS (names) and the API server's door on the bridge (``door.py``).

Pods on it really run (the images of ``images.py``, imported into its containerd).  Everything it
writes lives under its state dir where a setting allows; what remains on the host regardless (the
node's namespace and veth, cgroups under the node's own cgroup root, the pods' netns mounts, a few
fixed directories) ``down`` removes, and ``host_snapshot()`` lets a test compare the machine before
and after.

Each node is a network namespace of its own (``ysnode<k>``), as a machine would be: its bridge,
its pods' links, its routes and every iptables chain, ipset and conntrack entry the kubelet,
kube-proxy and kube-router make live in there, so that several platforms' nodes run on one
machine without touching each other (kube-router and kube-proxy keep their chains under fixed
names), and deleting the namespace takes all of it away.  The host reaches the node by a veth
pair (``ysv<k>``, 10.245.<k>.1 ↔ .2) with a route to the node's bridge address only: the API
server asks the kubelet there, Prometheus scrapes it there.  The node's processes reach the API
server through the door (``door.py``), which listens inside the namespace and connects from the
host's.  The index (chosen free at start, recorded in the state) gives the bridge (``ysbr<k>``),
pod range (``10.244.<k>.0/24``), cgroup root (``/yunshang-<k>``) and guard chains.  The node is
tainted so that only pods that ask for it (a toleration of ``TAINT``) land there; kwok's fake
nodes keep everything else.

Requires root and cgroups (v1 here: ``failCgroupV1: false``); ``why_not()`` says in one line
why this machine cannot run one, and the caller falls back to fake nodes only.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import yaml

from . import door, images, pki, toolchain

TAINT = {"key": "platform.yunshang.io/real-node", "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": TAINT["key"], "operator": "Equal", "value": "true", "effect": "NoSchedule"}
NODE_LABEL = "platform.yunshang.io/real-node"
CNI_BIN = Path("/usr/lib/cni")
RUNC = Path("/usr/sbin/runc")
CGROUP_FS = Path("/sys/fs/cgroup")
# what the kubelet, containerd 1.6 and libcni write on the host whatever their settings: removed by the
# last node of this machine to stop, where a node of yunshang's made them (host-paths.json in the claims)
HOST_PATHS = [Path("/var/lib/kubelet"), Path("/var/log/containers"), Path("/var/log/pods"), Path("/run/containerd"),
              Path("/var/lib/cni"), Path("/run/nri"), Path("/run/netns")]
MAX_NODES = 64  # indexes 0..63: bridges ysbr0.., pod ranges 10.244.0.0/24..


def why_not() -> str:
    """Empty when this machine can run a real node; else one line saying why not."""
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd and the CNI bridge change the host): running fake nodes only"
    if not (CGROUP_FS / "memory").is_dir() and not (CGROUP_FS / "cgroup.controllers").exists():
        return "no cgroup memory controller on this machine: running fake nodes only"
    for what, path in (("containerd", toolchain.find_or_none("containerd")), ("runc", RUNC),
                       ("the CNI bridge plugin", CNI_BIN / "bridge"), ("kubelet", toolchain.find_or_none("kubelet"))):
        if path is None or not Path(path).exists():
            return f"{what} is not installed (run `make setup`): running fake nodes only"
    return ""


def pod_cidr(index: int) -> str:
    return f"10.244.{index}.0/24"


def bridge_name(index: int) -> str:
    return f"ysbr{index}"


def bridge_ip(index: int) -> str:
    return str(next(ipaddress.ip_network(pod_cidr(index)).hosts()))


def cgroup_root(index: int) -> str:
    return f"/yunshang-{index}"


def netns_name(index: int) -> str:
    return f"ysnode{index}"


def netns_path(index: int) -> Path:
    return NETNS_DIR / netns_name(index)


def uplink(index: int) -> tuple[str, str, str]:
    """The veth between host and node: its host-side name, host-side and node-side addresses."""
    return f"ysv{index}", f"10.245.{index}.1", f"10.245.{index}.2"


def in_node(index: int, argv: list[str]) -> list[str]:
    """``argv`` run in the node's network namespace (and nothing else of it: same mounts, same cgroups)."""
    return ["nsenter", f"--net={netns_path(index)}", "--", *argv]


def call_in_node(index: int, fn: Callable[[], object], timeout: float = 30) -> object:
    """``fn()`` on a thread of this process moved into the node's network namespace (setns is per
    thread): the sockets it makes belong to the node."""
    return door.in_netns(str(netns_path(index)), fn, timeout)


def containerd_config(state: Path, sock: Path, cni_conf: Path) -> str:
    """containerd's config (version 2, as 1.6 reads it): its own root, state and socket; the CRI with
    the local pause image, cgroupfs, and what root without CAP_SYS_RESOURCE needs."""
    return f"""version = 2
root = "{state / 'root'}"
state = "{state / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{state / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{RUNC}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf}"
"""


def cni_config(index: int, ipam_dir: Path) -> dict:
    """The bridge network: a bridge of this node's own, its pod range, no masquerade."""
    return {"cniVersion": "1.0.0", "name": f"yunshang-{index}", "plugins": [
        {"type": "bridge", "bridge": bridge_name(index), "isGateway": True, "isDefaultGateway": True,
         "hairpinMode": True, "ipMasq": False,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr(index), "gateway": bridge_ip(index)}]],
                  "dataDir": str(ipam_dir)}}]}  # no portmap: hostPorts are refused by the platform anyway


def kubelet_config(state: Path, index: int, sock: Path, ports: dict[str, int], ca: Path, cert: Path,
                   key: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": bridge_ip(index), "port": ports["kubelet"], "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet-healthz"],
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(cert), "tlsPrivateKeyFile": str(key),
        "containerRuntimeEndpoint": f"unix://{sock}",
        "cgroupDriver": "cgroupfs", "cgroupRoot": cgroup_root(index), "failCgroupV1": False, "failSwapOn": False,
        "resolvConf": "", "podLogsDir": str(state / "pod-logs"), "clusterDomain": "cluster.local",
        "clusterDNS": [DNS_IP],
        "podCIDR": pod_cidr(index), "maxPods": 110, "serializeImagePulls": False,
        "registerWithTaints": [TAINT],
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "protectKernelDefaults": False, "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True, "logging": {"format": "text"},
    }


PROCESSES = ["kube-proxy", "kube-router", "kubelet", "containerd", "apiserver-door"]  # the order down stops them
DOOR_PORT = 6443  # the API server's door in the node: on the bridge address (pods) and the node's loopback
NODE_SERVER = f"https://127.0.0.1:{DOOR_PORT}"  # the API server as the node's own processes reach it
NETNS_DIR = Path("/run/netns")
DNS_IP = "10.96.0.10"  # Service kube-dns (the .10 of the Service range)
COREFILE = """.:53 {
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
"""
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"  # the API server, asking a kubelet for logs and exec
FIREWALL_ROLE = "yunshang:node-firewall"
FIREWALL_USER = "yunshang:node-firewall"


def kubernetes_endpoints(index: int) -> dict:
    """The ``kubernetes`` Service's endpoints: the door on the bridge address (the API server's own
    endpoint reconciler is off: its loopback address is no endpoint a pod could use)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes",
                                    "endpointslice.kubernetes.io/managed-by": "node.yunshang.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [bridge_ip(index)], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": DOOR_PORT, "protocol": "TCP"}]}


def dns_objects() -> list[dict]:
    """CoreDNS on the real node: names of Services and pods from the API server, cached, nothing
    forwarded; as a non-root pod (port 53 through the pod's own ip_unprivileged_port_start) behind
    Service kube-dns, labelled k8s-app=kube-dns (what the tenants' allow-dns policy opens)."""
    labels = {"k8s-app": "kube-dns"}
    read = ["list", "watch"]
    dns_ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "yunshang:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": read},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "yunshang:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "yunshang:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
         "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system",
                                                                      "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"serviceAccountName": "coredns", "nodeSelector": {NODE_LABEL: "true"}, "tolerations": [TOLERATION],
                      "dnsPolicy": "Default",
                      "securityContext": {"runAsNonRoot": True, "runAsUser": images.NOBODY,
                                          "seccompProfile": {"type": "RuntimeDefault"},
                                          "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
                      "containers": [{"name": "coredns", "image": images.COREDNS, "imagePullPolicy": "Never",
                                      "args": ["-conf", "/etc/coredns/Corefile"],
                                      "ports": [{"containerPort": 53, "protocol": "UDP", "name": "dns"},
                                                {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}],
                                      "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                                    "limits": {"memory": "128Mi"}},
                                      "securityContext": {"allowPrivilegeEscalation": False,
                                                          "readOnlyRootFilesystem": True,
                                                          "capabilities": {"drop": ["ALL"]}},
                                      "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}]}],
                      "volumes": [{"name": "config", "configMap": {"name": "coredns"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system",
                                                             "labels": labels},
         "spec": {"clusterIP": DNS_IP, "selector": labels, "ports": dns_ports}},
    ]


def kube_proxy_config(index: int, name: str, kubeconfig: Path, service_cidr: str, ports: dict[str, int]) -> dict:
    """iptables mode; node ports only on the bridge address, none on localhost; conntrack left as
    the machine has it (zeros: kube-proxy writes no sysctl); its servers on loopback."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)}, "mode": "iptables", "hostnameOverride": name,
        "clusterCIDR": pod_cidr(index), "bindAddress": bridge_ip(index),
        "healthzBindAddress": f"127.0.0.1:{ports['kube-proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['kube-proxy-metrics']}",
        "nodePortAddresses": [f"{bridge_ip(index)}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s",
                      "udpTimeout": "0s", "udpStreamTimeout": "0s"},
    }


def firewall_rbac() -> list[dict]:
    """What kube-router's firewall reads: pods, namespaces, nodes and NetworkPolicies (nothing it
    writes); and the API server's own grant on kubelets (logs, exec)."""
    read = ["get", "list", "watch"]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": FIREWALL_ROLE},
         "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"], "verbs": read},
                   {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": FIREWALL_ROLE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FIREWALL_ROLE},
         "subjects": [{"kind": "User", "name": FIREWALL_USER, "apiGroup": "rbac.authorization.k8s.io"}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "yunshang:apiserver-to-kubelet"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
         "subjects": [{"kind": "User", "name": KUBELET_CLIENT_USER, "apiGroup": "rbac.authorization.k8s.io"}]},
    ]


def guard_rules(index: int, service_cidr: str) -> list[list[str]]:
    """iptables (mangle) rules, in the node's namespace, that keep its pod traffic on the bridge, whatever the CNI
    plugin, kube-proxy or the policy engine put in filter: a packet from the bridge goes to a pod,
    a Service address or the bridge's own address (the API server's door), and a forwarded packet
    goes bridge to bridge — everything else is dropped before it is routed anywhere."""
    br, cidr, chain_in, chain_fwd = bridge_name(index), pod_cidr(index), f"YS-NODE{index}-IN", f"YS-NODE{index}-FWD"
    return [
        ["-N", chain_in], ["-A", chain_in, "-d", cidr, "-j", "RETURN"],
        ["-A", chain_in, "-d", service_cidr, "-j", "RETURN"],
        ["-A", chain_in, "-d", f"{bridge_ip(index)}/32", "-j", "RETURN"],
        ["-A", chain_in, "-j", "DROP"],
        ["-N", chain_fwd], ["-A", chain_fwd, "-i", br, "-o", br, "-s", cidr, "-j", "RETURN"],
        ["-A", chain_fwd, "-i", br, "-o", br, "-d", cidr, "-j", "RETURN"],
        ["-A", chain_fwd, "-j", "DROP"],
        ["-I", "PREROUTING", "-i", br, "-j", chain_in],
        ["-I", "FORWARD", "-i", br, "-j", chain_fwd], ["-I", "FORWARD", "-o", br, "-j", chain_fwd],
    ]


def route_table(index: int) -> int:
    return 7700 + index


def _iptables(index: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(in_node(index, ["iptables", "-w", "5", "-t", "mangle", *args]), capture_output=True, text=True)


def _guard(index: int, service_cidr: str) -> None:
    """The guard rules, and an ip rule: traffic from the pod range coming in on the bridge (not the
    node's own replies from its bridge address) looks up a table with only the
    bridge's route and a blackhole default (so it routes nowhere but the bridge: not to the veth
    towards the host either)."""
    _unguard(index)
    for rule in guard_rules(index, service_cidr):
        r = _iptables(index, *rule)
        if r.returncode != 0:
            raise RuntimeError(f"`iptables -t mangle {' '.join(rule)}` failed: {r.stderr.strip()}")
    table = str(route_table(index))
    ns = netns_name(index)
    for cmd in (["ip", "-n", ns, "route", "add", pod_cidr(index), "dev", bridge_name(index), "table", table],
                ["ip", "-n", ns, "route", "add", "blackhole", "default", "table", table],
                ["ip", "-n", ns, "rule", "add", "from", pod_cidr(index), "iif", bridge_name(index), "lookup", table,
                 "priority", table]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {r.stderr.strip()}")


def _unguard(index: int) -> list[str]:
    """The guard taken away (down does not need it: the namespace goes; the knock-out run does)."""
    out: list[str] = []
    if not netns_path(index).exists():
        return out
    br, chain_in, chain_fwd = bridge_name(index), f"YS-NODE{index}-IN", f"YS-NODE{index}-FWD"
    for rule in (["PREROUTING", "-i", br, "-j", chain_in], ["FORWARD", "-i", br, "-j", chain_fwd],
                 ["FORWARD", "-o", br, "-j", chain_fwd]):
        while _iptables(index, "-D", *rule).returncode == 0:
            out.append(f"mangle {' '.join(rule)}")
    for chain in (chain_in, chain_fwd):
        if _iptables(index, "-F", chain).returncode == 0:
            _iptables(index, "-X", chain)
            out.append(f"mangle chain {chain}")
    table, ns = str(route_table(index)), netns_name(index)
    while subprocess.run(["ip", "-n", ns, "rule", "del", "priority", table], capture_output=True).returncode == 0:
        out.append(f"ip rule {table}")
    if subprocess.run(["ip", "-n", ns, "route", "flush", "table", table], capture_output=True).returncode == 0:
        out.append(f"route table {table}")
    return out


def _used_indexes() -> set[int]:
    """Indexes whose namespace, veth or cgroup root exists on this machine (another platform's node)."""
    used = set()
    for i in range(MAX_NODES):
        if netns_path(i).exists() or Path(f"/sys/class/net/{uplink(i)[0]}").exists() \
                or (CGROUP_FS / "memory" / cgroup_root(i).lstrip("/")).exists():
            used.add(i)
    return used


def _claim_live(claim: Path) -> bool:
    """A claim names its node's state dir: live while that node's processes run (or it is starting)."""
    try:
        state = Path(claim.read_text())
        age = time.time() - claim.stat().st_mtime
    except (OSError, ValueError):
        return False
    node = RealNode.load(state) if state.is_dir() else None
    if node is None:
        return age < 120  # starting: its record is not written yet
    if not node.pids:
        return age < 120
    for pid in node.pids.values():
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            continue
    return False


def _claim_index(claims: Path, state: Path) -> int:
    """A free index, claimed by a file naming ``state`` in a directory shared by this machine's nodes."""
    claims.mkdir(parents=True, exist_ok=True)
    used = _used_indexes()
    for i in range(MAX_NODES):
        claim = claims / f"{i}"
        if i in used:
            continue
        if claim.exists():
            if _claim_live(claim) and Path(claim.read_text()) != state:
                continue
            claim.unlink(missing_ok=True)  # stale, or our own from before
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.write(fd, str(state).encode())
        os.close(fd)
        return i
    raise RuntimeError(f"no free node index (0..{MAX_NODES - 1}): stop another local platform first")


@dataclasses.dataclass
class RealNode:
    """One real node of a local control plane (``cp``: anything with state, pki, server, ports, _spawn)."""

    state: Path
    name: str = "node-0"
    index: int = -1
    service_cidr: str = "10.96.0.0/16"
    pids: dict[str, int] = dataclasses.field(default_factory=dict)
    ports: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def sock(self) -> Path:
        return self.state / "containerd" / "containerd.sock"

    def _record(self) -> Path:
        return self.state / "node.json"

    def save(self) -> None:
        self._record().write_text(json.dumps(dataclasses.asdict(self) | {"state": str(self.state)}, indent=2))

    @classmethod
    def load(cls, state: Path) -> "RealNode | None":
        rec = state / "node.json"
        if not rec.exists():
            return None
        data = json.loads(rec.read_text())
        data["state"] = Path(data["state"])
        return cls(**data)

    # ------------------------------------------------------------------ up
    def up(self, api: str, cluster_pki: Path, spawn: Callable, wait: Callable, free_port: Callable[[], int],
           progress: Callable[[str], None] = lambda m: None, timeout: float = 60) -> None:
        """The node's namespace and network, the door to the API server (``api``: its host:port on
        the host's loopback), containerd with the images, the kubelet."""
        self.state.mkdir(parents=True, exist_ok=True)
        claims = toolchain.cache_root() / "node-claims"
        self.index = _claim_index(claims, self.state)
        self.name = f"yunshang-node-{self.index}"
        self.ports = {n: free_port() for n in ("kubelet", "kubelet-healthz", "kube-proxy-healthz", "kube-proxy-metrics")}
        _remember_host_paths(claims)
        self.save()
        built = images.build(toolchain.toolchain_dir() / "images", progress, coredns=toolchain.find("coredns"))
        cd = self.state / "containerd"
        cni_conf = self.state / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-yunshang.conflist").write_text(json.dumps(cni_config(self.index, self.state / "cni" / "ipam")))
        cd.mkdir(parents=True, exist_ok=True)
        (cd / "config.toml").write_text(containerd_config(cd, self.sock, cni_conf))
        self._network()
        # the API server's door inside the node (its loopback for the node's processes, the bridge
        # address for pods), connecting from the host's namespace to the API server's loopback port
        import sys

        proc = spawn("apiserver-door", [sys.executable, "-m", "yunshang.dev.door", "--netns", str(netns_path(self.index)),
                                        "--listen", f"127.0.0.1:{DOOR_PORT}",
                                        "--listen", f"{bridge_ip(self.index)}:{DOOR_PORT}", "--to", api])
        self.pids["apiserver-door"] = proc.pid
        self.save()
        _guard(self.index, self.service_cidr)  # before any pod: the CNI plugin turns on ip_forward
        progress(f"starting containerd for node {self.name}")
        proc = spawn("containerd", in_node(self.index, [str(toolchain.find("containerd")),
                                                        f"--config={cd / 'config.toml'}", "--log-level=warn"]))
        self.pids["containerd"] = proc.pid
        self.save()
        wait("containerd", lambda: self.sock.exists() and self._ctr("version").returncode == 0, timeout, proc)
        for ref, archive in built.items():
            self.import_image(archive, ref)
        # the kubelet's identity and serving certificate, from the cluster's CA
        pki.issue_client(cluster_pki, f"kubelet-{self.index}", f"system:node:{self.name}", ["system:nodes"])
        pki.issue_server(cluster_pki, f"kubelet-serving-{self.index}", [bridge_ip(self.index), self.name])
        kubeconfig = self.kubeconfig(cluster_pki, f"kubelet-{self.index}", self.state / "kubelet.kubeconfig")
        config = kubelet_config(self.state, self.index, self.sock, self.ports, cluster_pki / "ca.crt",
                                cluster_pki / f"kubelet-serving-{self.index}.crt",
                                cluster_pki / f"kubelet-serving-{self.index}.key")
        (self.state / "kubelet.yaml").write_text(yaml.safe_dump(config))
        for hierarchy in CGROUP_FS.iterdir():  # the node's own cgroup root, in every hierarchy (v1)
            if hierarchy.is_dir() and (hierarchy / "cgroup.procs").exists():
                (hierarchy / cgroup_root(self.index).lstrip("/")).mkdir(exist_ok=True)
        progress(f"starting kubelet for node {self.name}")
        proc = spawn("kubelet", in_node(self.index, [
            str(toolchain.find("kubelet")), f"--config={self.state / 'kubelet.yaml'}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.state / 'kubelet'}", f"--hostname-override={self.name}",
            f"--node-ip={bridge_ip(self.index)}",
            f"--node-labels={NODE_LABEL}=true", "--v=1"]))
        self.pids["kubelet"] = proc.pid
        self.save()

    def _network(self) -> None:
        """The node's namespace; the veth to the host (a route to the bridge address only); the
        bridge (and the Services' range on it, for the node's own processes), made before the kubelet
        so that it can serve on (and report) its address (the CNI plugin finds it with its gateway
        address in place)."""
        ns, br = netns_name(self.index), bridge_name(self.index)
        host_if, host_ip, node_ip = uplink(self.index)
        for cmd in (["ip", "netns", "add", ns],
                    ["ip", "link", "add", host_if, "type", "veth", "peer", "name", "uplink", "netns", ns],
                    ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if], ["ip", "link", "set", host_if, "up"],
                    ["ip", "-n", ns, "link", "set", "lo", "up"],
                    ["ip", "-n", ns, "addr", "add", f"{node_ip}/30", "dev", "uplink"],
                    ["ip", "-n", ns, "link", "set", "uplink", "up"],
                    ["ip", "-n", ns, "link", "add", br, "type", "bridge"],
                    ["ip", "-n", ns, "addr", "add", f"{bridge_ip(self.index)}/24", "dev", br],
                    ["ip", "-n", ns, "link", "set", br, "up"],
                    # the node's own processes reach Services too (the API server's webhooks through the
                    # reverse door): kube-proxy rewrites the address to a pod's; nothing leaves the bridge
                    ["ip", "-n", ns, "route", "add", self.service_cidr, "dev", br, "src", bridge_ip(self.index)],
                    ["ip", "route", "add", f"{bridge_ip(self.index)}/32", "via", node_ip, "dev", host_if]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"`{' '.join(cmd)}` failed: {r.stderr.strip()}")

    def kubeconfig(self, cluster_pki: Path, stem: str, path: Path) -> Path:
        """A kubeconfig for one of the node's processes: the API server through the node's door."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": NODE_SERVER,
                                                       "certificate-authority": str(cluster_pki / "ca.crt")}}],
            "users": [{"name": stem, "user": {"client-certificate": str(cluster_pki / f"{stem}.crt"),
                                              "client-key": str(cluster_pki / f"{stem}.key")}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": stem}}],
            "current-context": "local"}))
        path.chmod(0o600)
        return path

    def start_firewall(self, cluster_pki: Path, spawn: Callable, apply: Callable[[list[dict]], None],
                       progress: Callable[[str], None] = lambda m: None) -> None:
        """kube-router, its firewall only (NetworkPolicy for this node's pods): no routing, no service
        proxy, no CNI, no health or metrics port; with an identity that only reads."""
        apply(firewall_rbac())
        pki.issue_client(cluster_pki, "node-firewall", FIREWALL_USER, [])
        kubeconfig = self.kubeconfig(cluster_pki, "node-firewall", self.state / "firewall.kubeconfig")
        progress(f"starting kube-router's firewall for node {self.name}")
        proc = spawn("kube-router", in_node(self.index, [
            str(toolchain.find("kube-router")), f"--kubeconfig={kubeconfig}", f"--hostname-override={self.name}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--enable-pod-egress=false", "--enable-ipv6=false", "--health-port=0", "--metrics-port=0",
            f"--service-cluster-ip-range={self.service_cidr}", "--iptables-sync-period=1m", "--v=1"]))
        self.pids["kube-router"] = proc.pid
        self.save()

    def start_services(self, cluster_pki: Path, spawn: Callable, apply: Callable[[list[dict]], None],
                       progress: Callable[[str], None] = lambda m: None):
        """Services on the node: the ``kubernetes`` Service's EndpointSlice naming the door on the
        bridge address (pods reach the API server there and nowhere else), kube-proxy (iptables mode,
        its node ports on the bridge address only, writing no sysctls) and CoreDNS."""
        apply([kubernetes_endpoints(self.index)])
        pki.issue_client(cluster_pki, "kube-proxy", "system:kube-proxy", [])  # bound to system:node-proxier
        kubeconfig = self.kubeconfig(cluster_pki, "kube-proxy", self.state / "kube-proxy.kubeconfig")
        config = kube_proxy_config(self.index, self.name, kubeconfig, self.service_cidr, self.ports)
        (self.state / "kube-proxy.yaml").write_text(yaml.safe_dump(config))
        progress(f"starting kube-proxy for node {self.name}")
        proc = spawn("kube-proxy", in_node(self.index, [str(toolchain.find("kube-proxy")),
                                                        f"--config={self.state / 'kube-proxy.yaml'}", "--v=1"]))
        self.pids["kube-proxy"] = proc.pid
        self.save()
        progress("starting CoreDNS on the node")
        apply(dns_objects())
        return proc

    def import_image(self, archive: Path, ref: str = "") -> None:
        """An OCI archive into the node's containerd (pods run it with imagePullPolicy Never/IfNotPresent)."""
        r = self._ctr("images", "import", "--all-platforms", str(archive), timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"importing {ref or archive} into containerd failed: {r.stderr.strip()[-300:]}")

    # ------------------------------------------------------------------ down
    def _ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([str(toolchain.find("ctr")), f"--address={self.sock}", "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout)

    def down(self, stop: Callable[[str, int], None]) -> list[str]:
        """Stop the node's processes and every pod's containers, then delete its namespace (its
        bridge, links, routes, chains, ipsets and conntrack entries with it) and undo what they did
        to the host.  Returns what was left to clean (for the log); safe to call twice."""
        notes: list[str] = []
        for name in PROCESSES:
            if name not in self.pids:
                continue
            if name == "containerd" and self.sock.exists():  # the pods' containers first
                for task in self._lines(self._ctr("tasks", "list", "-q")):
                    self._ctr("tasks", "kill", "-s", "SIGKILL", task)
                time.sleep(0.5)
                for task in self._lines(self._ctr("tasks", "list", "-q")):
                    self._ctr("tasks", "delete", "-f", task)
                for c in self._lines(self._ctr("containers", "list", "-q")):
                    self._ctr("containers", "delete", c)
            stop(name, self.pids.pop(name))
        notes += self._kill_shims()
        notes += self._unmount()
        if self.index >= 0:
            host_if = uplink(self.index)[0]
            if netns_path(self.index).exists():
                subprocess.run(["ip", "netns", "delete", netns_name(self.index)], capture_output=True)
                notes.append(f"netns {netns_name(self.index)}")
            if Path(f"/sys/class/net/{host_if}").exists():  # gone with its peer, unless the namespace lingers
                subprocess.run(["ip", "link", "delete", host_if], capture_output=True)
                notes.append(f"veth {host_if}")
            notes += self._remove_cgroups()
            claims = toolchain.cache_root() / "node-claims"
            mine = claims / str(self.index)
            if mine.exists() and mine.read_text() == str(self.state):
                mine.unlink()
            if not _live_claims(claims):  # the last node of this machine: what they all left on the host
                notes += _forget_host_paths(claims)
        self.save()
        return notes

    @staticmethod
    def _lines(r: subprocess.CompletedProcess) -> list[str]:
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()] if r.returncode == 0 else []

    def _kill_shims(self) -> list[str]:
        """containerd's shims outlive it: those started for this node's containerd (its socket in argv)."""
        out = []
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(self.sock).encode() in b" ".join(argv):
                try:
                    os.kill(int(d), signal.SIGKILL)
                    out.append(f"shim {d}")
                except ProcessLookupError:
                    pass
        return out

    def _unmount(self) -> list[str]:
        """Mounts under the state dir (rootfs, shm, netns), deepest first."""
        out = []
        for _ in range(3):
            mounts = [ln.split()[1].replace("\\040", " ") for ln in Path("/proc/mounts").read_text().splitlines()]
            ours = sorted((m for m in mounts if m.startswith(str(self.state) + "/")), key=len, reverse=True)
            if not ours:
                break
            for m in ours:
                subprocess.run(["umount", "-l", m], capture_output=True)
                out.append(f"mount {m}")
        # network namespaces containerd 1.6 keeps in /run/netns (named cni-<uuid>): those of this node's pods
        for ns in Path("/run/netns").glob("cni-*") if Path("/run/netns").is_dir() else []:
            if self._netns_ours(ns):
                subprocess.run(["umount", "-l", str(ns)], capture_output=True)
                ns.unlink(missing_ok=True)
                out.append(f"netns {ns.name}")
        return out

    def _netns_ours(self, ns: Path) -> bool:
        """A netns is this node's if its only link besides lo sits on this node's pod range or has none left."""
        r = subprocess.run(["ip", "-n", ns.name, "-o", "-4", "addr"], capture_output=True, text=True)
        if r.returncode != 0:
            return False
        addrs = [w for ln in r.stdout.splitlines() for w in ln.split() if "/" in w and w[0].isdigit()]
        net = ipaddress.ip_network(pod_cidr(self.index))
        others = [a for a in addrs if not a.startswith("127.")]
        return bool(others) and all(ipaddress.ip_interface(a).ip in net for a in others)

    def _remove_cgroups(self) -> list[str]:
        out = []
        root = cgroup_root(self.index).lstrip("/")
        for hierarchy in CGROUP_FS.iterdir():
            top = hierarchy / root
            if not top.is_dir():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
                out.append(f"cgroup {hierarchy.name}{cgroup_root(self.index)}")
            except OSError as e:
                out.append(f"cgroup {top} left: {e}")
        return out


def _live_claims(claims: Path) -> list[int]:
    return [int(c.name) for c in claims.glob("[0-9]*") if _claim_live(c)]


def _remember_host_paths(claims: Path) -> None:
    """Note which of HOST_PATHS do not exist yet (the first node of this machine will make them), and
    whether /run/netns is a mount point yet (`ip netns add` makes it one, shared, and leaves it)."""
    record = claims / "host-paths.json"
    known = set(json.loads(record.read_text())) if record.exists() else set()
    known |= {str(p) for p in HOST_PATHS if not p.exists()}
    record.write_text(json.dumps(sorted(known)))
    mounted = claims / "host-netns-mount.json"
    if not mounted.exists():
        mounted.write_text(json.dumps(_is_mount(NETNS_DIR)))


def _is_mount(path: Path) -> bool:
    """A mount point, bind mounts of a directory onto itself included (os.path.ismount misses those)."""
    return any(ln.split()[1] == str(path) for ln in Path("/proc/mounts").read_text().splitlines())


def _forget_host_paths(claims: Path) -> list[str]:
    out: list[str] = []
    mounted = claims / "host-netns-mount.json"
    if mounted.exists():
        if not json.loads(mounted.read_text()):
            while _is_mount(NETNS_DIR) and not list(NETNS_DIR.iterdir()):
                if subprocess.run(["umount", str(NETNS_DIR)], capture_output=True).returncode != 0:
                    break
                out.append(f"mount {NETNS_DIR}")
        mounted.unlink()
    record = claims / "host-paths.json"
    if not record.exists():
        return out
    for p in sorted((Path(x) for x in json.loads(record.read_text())), key=lambda p: len(p.parts), reverse=True):
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            out.append(str(p))
    record.unlink()
    return out


def host_snapshot() -> dict[str, list[str]]:
    """What a node may change on this machine, as text: compare one taken before ``up`` with one
    taken after ``down``."""
    def run(*cmd: str) -> list[str]:
        r = subprocess.run(cmd, capture_output=True, text=True)
        return sorted(ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#"))

    def rules(tool: str) -> list[str]:  # chains without their counters
        return [ln.split(" [")[0] if ln.startswith(":") else ln for ln in run(f"{tool}-save")]

    cgroups = sorted(f"{h.name}/{d.name}" for h in CGROUP_FS.iterdir() if h.is_dir()
                     for d in h.iterdir() if d.is_dir())
    return {
        "iptables": rules("iptables"), "ip6tables": rules("ip6tables"),
        "links": [ln.split(":")[1].strip().split("@")[0] for ln in run("ip", "-o", "link")],
        "addresses": [" ".join(ln.split()[1:4]) for ln in run("ip", "-o", "addr")],
        "routes": run("ip", "route", "show", "table", "all"), "rules": run("ip", "rule"),
        "mounts": sorted(ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()),
        "cgroups": cgroups,
        "sysctls": [f"{k}={Path('/proc/sys', k).read_text().strip()}" for k in
                    ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables") if Path("/proc/sys", k).exists()],
        "paths": [str(p) for p in HOST_PATHS if p.exists()],
        "ipsets": run("ipset", "list", "-n") if shutil.which("ipset") else [],
    }
