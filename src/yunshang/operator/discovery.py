"""Where Prometheus finds the kubelets (Debian's Prometheus is built without Kubernetes service
discovery): every replica serves ``/sd/kubelets`` beside ``/healthz``, a document in the shape of
Prometheus' ``http_sd_configs`` made from its watch of the Nodes: each node's InternalIP and the port
its kubelet reports (status.daemonEndpoints), labelled with the node's name.  Nodes simulated by
kwok (annotation kwok.x-k8s.io/node) run no kubelet and are left out.  Read-only: no replica writes
anything for it, so a standby answers as well as the leader."""
from __future__ import annotations

from .runtime.manager import Runtime

FAKE = "kwok.x-k8s.io/node"


def target(body: dict) -> tuple[str, int] | None:
    """(address, kubelet port) of a node that runs a kubelet, else None."""
    md, st = body.get("metadata") or {}, body.get("status") or {}
    if FAKE in (md.get("annotations") or {}):
        return None
    port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    ips = [a["address"] for a in st.get("addresses") or () if a.get("type") == "InternalIP"]
    return (ips[0], int(port)) if ips and port else None


class Kubelets:
    def __init__(self, rt: Runtime):
        self.nodes: dict[str, tuple[str, int]] = {}
        rt.watch("Node", self.event)

    def event(self, etype: str, body: dict) -> None:
        name = body["metadata"]["name"]
        t = None if etype == "DELETED" else target(body)
        if t is None:
            self.nodes.pop(name, None)
        else:
            self.nodes[name] = t

    def targets(self) -> list[dict]:
        return [{"targets": [f"{ip}:{port}"], "labels": {"node": name}}
                for name, (ip, port) in sorted(self.nodes.items())]
