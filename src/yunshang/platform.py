"""The platform's own objects (namespaces, CRDs, RBAC, admission policies) as one list, and a
plain installer for tests and `yunshang dev up`; the Pulumi program installs the same list."""
from __future__ import annotations

import time
from typing import Any, Iterable

from . import policies
from .models import crd
from .tenancy import MONITORING_NAMESPACE, SYSTEM_NAMESPACE
from .views import VIEWS_NAMESPACE

FIELD_MANAGER = "yunshang-platform"


def system_namespaces() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/part-of": "yunshang", "pod-security.kubernetes.io/enforce": "baseline"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
        for n in (SYSTEM_NAMESPACE, MONITORING_NAMESPACE, VIEWS_NAMESPACE)
    ]


def operator_account() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": policies.OPERATOR_SA, "namespace": SYSTEM_NAMESPACE},
    }


def crds() -> list[dict[str, Any]]:
    return list(crd.all_crds().values())


def manifests() -> list[dict[str, Any]]:
    """Everything, in apply order (CRDs before anything that uses them)."""
    return [
        *system_namespaces(),
        *crds(),
        operator_account(),
        *policies.governance(),
    ]


LOCAL_STACK = "local"


def install(api, objs: Iterable[dict[str, Any]] | None = None, timeout: float = 60, stack: str = LOCAL_STACK) -> None:
    """Server-side apply every object; CRDs first, and wait until they are served.  Each is marked
    as the ``stack``'s (the local platform's: its `pulumi up` then manages them, and no other stack
    takes them over unasked; yunshang.infra.ownership)."""
    from kubernetes import dynamic

    objs = [_marked(o, stack) for o in (objs or manifests())]
    defs = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    dyn = dynamic.DynamicClient(api)
    crd_res = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    for obj in defs:
        crd_res.server_side_apply(body=obj, field_manager=FIELD_MANAGER, force_conflicts=True)
    deadline = time.monotonic() + timeout
    for obj in defs:
        while True:
            conds = crd_res.get(name=obj["metadata"]["name"]).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {obj['metadata']['name']} not established after {timeout}s")
            time.sleep(0.2)
    dyn = dynamic.DynamicClient(api)  # fresh discovery: sees the new kinds
    for obj in rest:
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        res.server_side_apply(
            body=obj, namespace=obj["metadata"].get("namespace"), field_manager=FIELD_MANAGER, force_conflicts=True
        )


def _marked(obj: dict[str, Any], stack: str) -> dict[str, Any]:
    md = dict(obj["metadata"])
    md["labels"] = {**(md.get("labels") or {}), STACK_LABEL: stack}
    return {**obj, "metadata": md}


STACK_LABEL = "platform.yunshang.io/stack"  # yunshang.infra.ownership.STACK_LABEL (infra imports this module)
