"""Step 4: default-deny and the few paths the platform opens (DNS, monitoring, intra-tenant)."""
from __future__ import annotations

from typing import Any

from .... import tenancy
from ....models.tenant import TenantSpec, namespace_names

KINDS = ("NetworkPolicy",)


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict[str, Any]]:
    """Per namespace: default-deny, then DNS, the platform's monitoring and (unless quarantined:
    then only DNS and monitoring stay open) the tenant's own namespaces."""
    tenant_ns = {"namespaceSelector": {"matchLabels": {tenancy.LABEL_TENANT: tenant}}}
    out: list[dict[str, Any]] = []
    for ns in namespace_names(tenant, spec):
        out.append(netpol(tenant, uid, ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
        if not spec.quarantine:
            out.append(netpol(tenant, uid, ns, "allow-intra-tenant", {
                "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [tenant_ns]}], "egress": [{"to": [tenant_ns]}]}))
        out.append(netpol(tenant, uid, ns, "allow-dns", {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
        out.append(netpol(tenant, uid, ns, "allow-monitoring", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": tenancy.MONITORING_NAMESPACE}}}]}]}))
    return out


def netpol(tenant: str, uid: str, ns: str, name: str, spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": tenancy.child_meta(name, tenant, uid, ns),
        "spec": spec,
    }
