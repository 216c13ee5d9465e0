"""Step 1: the tenant's namespaces (labels, Pod Security restricted, allowances as annotations)."""
from __future__ import annotations

from typing import Any

from .... import tenancy
from ....models.tenant import TenantSpec, namespace_names

KINDS = ("Namespace",)


def allowances(spec: TenantSpec) -> dict[str, str]:
    """The tenant's allowances as namespace annotations, read by the admission policy
    (an empty registries list means the platform's default list)."""
    a = spec.allowed
    return {
        tenancy.ANN_REGISTRIES: ",".join(a.registries),
        tenancy.ANN_STORAGE_CLASSES: ",".join(a.storage_classes),
        tenancy.ANN_INGRESS_CLASSES: ",".join(a.ingress_classes),
        tenancy.ANN_SERVICE_TYPES: ",".join(t.value for t in a.service_types),
        tenancy.ANN_EXTERNAL_IPS: ",".join(a.external_ips),
        tenancy.ANN_HOSTNAMES: ",".join(a.hostnames),
    }


def desired(tenant: str, uid: str, spec: TenantSpec, lapsed: bool = False) -> list[dict[str, Any]]:
    """The tenant's namespaces: labelled, Pod Security restricted, annotated with its allowances."""
    quarantine_label = {tenancy.LABEL_QUARANTINE: "true"} if spec.quarantine else {}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": tenancy.child_meta(
                ns,
                tenant,
                uid,
                labels={
                    tenancy.LABEL_LEVEL: spec.level.value,
                    tenancy.LABEL_CLASSIFICATION: spec.classification.value,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                    **quarantine_label,
                },
                annotations=allowances(spec),
            ),
        }
        for ns in namespace_names(tenant, spec)
    ]
