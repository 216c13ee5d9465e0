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
    from . import kube

    objs = [_marked(o, stack) for o in (objs or manifests())]
    defs = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    for obj in defs:
        kube.apply(api, obj, manager=FIELD_MANAGER)
    deadline = time.monotonic() + timeout
    for obj in defs:
        while True:
            conds = ((kube.get(api, obj["kind"], obj["metadata"]["name"]) or {}).get("status") or {}).get("conditions")
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds or []):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {obj['metadata']['name']} not established after {timeout}s")
            time.sleep(0.2)
    for obj in objs:
        if obj["kind"] != "CustomResourceDefinition":
            kube.apply(api, obj, manager=FIELD_MANAGER)


def _marked(obj: dict[str, Any], stack: str) -> dict[str, Any]:
    md = dict(obj["metadata"])
    md["labels"] = {**(md.get("labels") or {}), STACK_LABEL: stack}
    return {**obj, "metadata": md}


STACK_LABEL = "platform.yunshang.io/stack"  # yunshang.infra.ownership.STACK_LABEL (infra imports this module)
