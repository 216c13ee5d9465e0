"""The webhooks' Service follows the leader: a Service without a selector (the platform program's
``yunshang-operator-webhook``) whose one EndpointSlice the replica that starts leading points at its
own address.  So Alertmanager's alerts and the API server's audit events reach the replica that may
act on them, never a standby (whose writes would be refused).  Between a leader's death and the next
one's start the address is the dead one's: nobody may act then anyway, and both senders retry."""
from __future__ import annotations

import asyncio
import logging

from .. import kube
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.operator")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def endpoint_slice(namespace: str, service: str, address: str, port: int, holder: str) -> dict:
    """The Service's EndpointSlice naming one ready address (the leader's)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": service, "namespace": namespace,
                         "labels": {SERVICE_NAME_LABEL: service, "endpointslice.kubernetes.io/managed-by": "yunshang-operator",
                                    "app.kubernetes.io/part-of": "yunshang"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True},
                           **({"targetRef": {"kind": "Pod", "namespace": namespace, "name": holder}} if holder else {})}],
            "ports": [{"name": "webhook", "port": port, "protocol": "TCP"}]}


def setup(rt: Runtime) -> None:
    st = rt.settings
    if not st.webhook_service:
        return
    ns, _, name = st.webhook_service.partition("/")

    def point_here() -> None:
        try:
            kube.apply(rt.api, endpoint_slice(ns, name, st.pod_ip, st.webhook_port, st.identity))
            log.info("webhook Service %s/%s now points at this replica (%s)", ns, name, st.pod_ip)
        except Exception as e:  # noqa: BLE001  (the next leading replica, or this one's next start, retries)
            log.warning("could not point webhook Service %s/%s here: %s", ns, name, e)

    rt.on_leading(lambda: rt.spawn(asyncio.to_thread(point_here)))
    if rt.elector is None:  # standalone: it is the leader from the start
        rt.on_start(lambda: rt.spawn(asyncio.to_thread(point_here)))
