"""The parts of the operator that only a Deployment uses: where Prometheus finds the kubelets, the
webhooks' Service that follows the leader, and the settings that tie them together."""
from __future__ import annotations

import pytest

from yunshang.operator.discovery import target
from yunshang.operator.runtime.settings import Settings
from yunshang.operator.webhook_endpoint import endpoint_slice


def node(name="n1", ip="10.244.0.1", port=10250, annotations=None):
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def test_a_kubelet_target_is_the_nodes_internal_address_and_the_port_its_kubelet_reports():
    assert target(node()) == ("10.244.0.1", 10250)
    assert target(node(port=34567)) == ("10.244.0.1", 34567)  # the local real node's own port


def test_nodes_without_a_kubelet_are_no_target():
    assert target(node(annotations={"kwok.x-k8s.io/node": "fake"})) is None  # simulated by kwok
    assert target(node(port=0)) is None  # not reporting yet
    assert target({"metadata": {"name": "x"}, "status": {}}) is None


def test_the_webhooks_slice_names_only_the_leaders_address():
    s = endpoint_slice("yunshang-system", "yunshang-operator-webhook", "10.244.0.7", 8443, "op-abc")
    assert s["metadata"]["labels"]["kubernetes.io/service-name"] == "yunshang-operator-webhook"  # what binds it
    assert [e["addresses"] for e in s["endpoints"]] == [["10.244.0.7"]]
    assert s["ports"] == [{"name": "webhook", "port": 8443, "protocol": "TCP"}]


def test_a_webhook_service_needs_the_port_the_token_and_this_replicas_address():
    env = {"YUNSHANG_WEBHOOK_PORT": "8443", "YUNSHANG_WEBHOOK_TOKEN": "t",
           "YUNSHANG_WEBHOOK_SERVICE": "yunshang-system/yunshang-operator-webhook"}
    with pytest.raises(ValueError, match="POD_IP"):
        Settings.load([], env)
    st = Settings.load([], {**env, "POD_IP": "10.244.0.7"})
    assert (st.webhook_service, st.pod_ip) == ("yunshang-system/yunshang-operator-webhook", "10.244.0.7")
