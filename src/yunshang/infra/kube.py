"""Kubernetes objects as pulumi-kubernetes' typed resources, all through one explicit provider.

yunshang's manifests are plain dicts (the same objects `yunshang dev up` and the tests apply);
`declare` turns one into the typed resource of its kind (`core.v1.Namespace`,
`apiextensions.v1.CustomResourceDefinition`, `rbac.v1.ClusterRole`, ...), and custom resources
(Tenants, offers, agreements) into `apiextensions.CustomResource`.  Server-side apply,
readiness and deletion are the provider's.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

# Objects may already exist with another field manager (`yunshang dev up` installs the CRDs and
# policies before its `pulumi up`; a cluster upgraded from an earlier yunshang): take them over.
PATCH_FORCE = {"pulumi.com/patchForce": "true"}

TYPED = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): k8s.apiextensions.v1.CustomResourceDefinition,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicy,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"):
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding,
    ("scheduling.k8s.io/v1", "PriorityClass"): k8s.scheduling.v1.PriorityClass,
}


def resource_name(obj: dict[str, Any]) -> str:
    """A stable Pulumi name for an object: kind, namespace and name (never the cluster's address)."""
    md = obj["metadata"]
    return "-".join(p for p in (obj["kind"].lower(), md.get("namespace", ""), md["name"]) if p).replace(":", "-")


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def declare(manifest: dict[str, Any], opts: pulumi.ResourceOptions,
            annotations: dict[str, str] | None = None, stack: str = "") -> pulumi.CustomResource:
    """The typed resource for one manifest (top-level fields as the class's arguments), marked with
    the ``stack`` that manages it (yunshang.infra.ownership)."""
    from .ownership import mark

    md = dict((mark(manifest, stack) if stack else manifest)["metadata"])
    md["annotations"] = {**md.get("annotations", {}), **PATCH_FORCE, **(annotations or {})}
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    cls = TYPED.get((manifest["apiVersion"], manifest["kind"]))
    name = resource_name(manifest)
    if cls is None:  # a custom resource: Tenant, ClusterKopfPeering
        return k8s.apiextensions.CustomResource(
            name, api_version=manifest["apiVersion"], kind=manifest["kind"], metadata=md, opts=opts, **body)
    return cls(name, metadata=md, opts=opts, **{_snake(k): v for k, v in body.items()})


def provider(name: str, kubeconfig: str, context: str, cluster_identifier: str,
             opts: pulumi.ResourceOptions | None = None) -> k8s.Provider:
    """The one provider every object goes through.

    How the cluster is reached must never replace anything: `clusterIdentifier` alone decides
    replacement (it names the cluster), and the kubeconfig is passed by content, not by path, so
    a copy of it elsewhere (another $HOME, a CI runner) is no change at all; another context name
    for the same cluster is an update of the provider, never a replace of the objects.
    """
    kc = Path(kubeconfig).read_text() if kubeconfig else None
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kc) if kc is not None else None,
        context=context or None,
        cluster_identifier=cluster_identifier,
        enable_server_side_apply=True,
        opts=opts,
    )
