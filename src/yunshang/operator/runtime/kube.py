"""The few API calls the operator makes: server-side apply, delete, status patch.

A small table of the kinds a tenant owns replaces discovery, so starting costs no requests.
Every write is counted (``WRITES``) so tests and the benchmark can assert steady state.
"""
from __future__ import annotations

import collections
import json
import threading
from typing import Any, Iterator

from kubernetes import client
from prometheus_client import Counter

FIELD_MANAGER = "yunshang-operator"

# kind -> (api prefix, plural, namespaced)
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ResourceQuota": ("/api/v1", "resourcequotas", True),
    "LimitRange": ("/api/v1", "limitranges", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "Tenant": ("/apis/platform.yunshang.io/v1alpha1", "tenants", False),
    "ShareAgreement": ("/apis/platform.yunshang.io/v1alpha1", "shareagreements", False),
    "Service": ("/api/v1", "services", True),
    "AuditRecord": ("/apis/platform.yunshang.io/v1alpha1", "auditrecords", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "ShareOffer": ("/apis/platform.yunshang.io/v1alpha1", "shareoffers", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "ValidatingAdmissionPolicyBinding": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings",
                                         False),
    # the platform's own kinds (the Pulumi program looks at what exists before it adopts anything)
    "ValidatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "PriorityClass": ("/apis/scheduling.k8s.io/v1", "priorityclasses", False),
}

WRITES: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()
API_WRITES = Counter(
    "yunshang_operator_api_writes", "Write calls the operator made to the API server", ["verb", "kind"]
)


class NotLeading(RuntimeError):
    """A write refused in this process: it no longer holds the leader election's lease."""


def _count(verb: str, kind: str, api=None) -> None:
    """Count a write, after asking the client's ``may_write`` (the runtime's leadership) if it has one."""
    guard = getattr(api, "may_write", None)
    if guard is not None and not guard():
        raise NotLeading(f"{verb} {kind}: not the leader (any more); nothing written")
    with _lock:
        WRITES[f"{verb} {kind}"] += 1
    API_WRITES.labels(verb, kind).inc()


def connect(kubeconfig: str = "", context: str = "", pool_size: int = 8, agent: str = "") -> client.ApiClient:
    """A client for the API server: in-cluster when no kubeconfig is named and the pod's account is
    there, else the kubeconfig (``kubeconfig``, or the client's default) at ``context``."""
    from kubernetes import config

    cfg = client.Configuration()
    try:
        if kubeconfig or context:
            raise config.ConfigException("a kubeconfig was named")
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig or None, context=context or None, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    api = client.ApiClient(cfg)
    if agent:
        api.user_agent = agent
    return api


def api_version(kind: str) -> str:
    """The apiVersion of ``kind`` ("v1", "rbac.authorization.k8s.io/v1", ...)."""
    prefix = KINDS[kind][0]
    return prefix.removeprefix("/apis/").removeprefix("/api/")


def path(kind: str, name: str, namespace: str | None = None, sub: str = "") -> str:
    prefix, plural, namespaced = KINDS[kind]
    ns = f"/namespaces/{namespace}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{name}" + (f"/{sub}" if sub else "")


def _send(api: client.ApiClient, method: str, url: str, *, body=None, query=None, content_type=None, timeout=None):
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method, full_url, headers, body, _ = api.param_serialize(
        method=method,
        resource_path=url,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    return api.call_api(method, full_url, header_params=headers, body=body, _request_timeout=timeout)


def _call(api: client.ApiClient, method: str, url: str, *, body=None, query=None, content_type=None):
    resp = _send(api, method, url, body=body, query=query, content_type=content_type)
    data = resp.read()
    if not 200 <= resp.status <= 299:
        raise client.ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
    return json.loads(data) if data else {}


def why(e: Exception) -> str:
    """One line: the API server's message for an ApiException, else the exception's first line."""
    if isinstance(e, client.ApiException):
        try:
            msg = json.loads(e.body or "{}").get("message")
        except (ValueError, AttributeError):
            msg = None
        return f"{e.status} {msg or e.reason}"[:300]
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


def apply(api: client.ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply ``obj`` as the operator (forcing conflicts: drift is repaired)."""
    md = obj["metadata"]
    _count("apply", obj["kind"], api)
    return _call(
        api,
        "PATCH",
        path(obj["kind"], md["name"], md.get("namespace")),
        body=obj,
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )


def patch(api: client.ApiClient, kind: str, name: str, body: dict, namespace: str | None = None, sub: str = ""):
    _count(f"patch{'/' + sub if sub else ''}", kind, api)
    return _call(
        api,
        "PATCH",
        path(kind, name, namespace, sub),
        body=body,
        content_type="application/merge-patch+json",
    )


def delete(api: client.ApiClient, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete; False if it was already gone."""
    _count("delete", kind, api)
    try:
        _call(api, "DELETE", path(kind, name, namespace), body={"propagationPolicy": "Background"})
        return True
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise


def replace(api: client.ApiClient, kind: str, body: dict, *, count: bool = True) -> dict:
    """PUT ``body`` (with its resourceVersion: refused with 409 if the object changed meanwhile)."""
    md = body["metadata"]
    if count:
        _count("update", kind, api)
    return _call(api, "PUT", path(kind, md["name"], md.get("namespace")), body=body)


def create(api: client.ApiClient, kind: str, body: dict, *, count: bool = True) -> dict:
    prefix, plural, namespaced = KINDS[kind]
    ns = body["metadata"].get("namespace")
    if count:
        _count("create", kind, api)
    return _call(api, "POST", f"{prefix}{f'/namespaces/{ns}' if namespaced else ''}/{plural}", body=body)


def list_all(api: client.ApiClient, kind: str, label_selector: str = "", namespace: str | None = None) -> list[dict]:
    return listing(api, kind, label_selector, namespace)[0]


def served(api: client.ApiClient, kind: str) -> None:
    """One GET of at most one object of ``kind``: raises ApiException (404) while it is not served."""
    _call(api, "GET", _collection(kind), query=[("limit", "1")])


def _collection(kind: str, namespace: str | None = None) -> str:
    prefix, plural, _ = KINDS[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def listing(api: client.ApiClient, kind: str, label_selector: str = "", namespace: str | None = None,
            page: int = 500) -> tuple[list[dict], str]:
    """Every object of ``kind`` (in pages) and the listing's resourceVersion, to watch from."""
    items, token = [], None
    while True:
        query = [("limit", str(page))] + ([("continue", token)] if token else []) + \
            ([("labelSelector", label_selector)] if label_selector else [])
        resp = _call(api, "GET", _collection(kind, namespace), query=query)
        items += resp.get("items", [])
        token = (resp.get("metadata") or {}).get("continue")
        if not token:
            return items, (resp.get("metadata") or {}).get("resourceVersion", "")


def watch(api: client.ApiClient, kind: str, resource_version: str, label_selector: str = "",
          timeout: int = 300) -> Iterator[dict]:
    """The watch events of ``kind`` after ``resource_version`` (bookmarks included), as decoded
    JSON, until the API server ends the watch (after ``timeout`` seconds)."""
    from kubernetes.watch.watch import iter_resp_lines

    query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", resource_version),
             ("timeoutSeconds", str(timeout))] + ([("labelSelector", label_selector)] if label_selector else [])
    resp = _send(api, "GET", _collection(kind), query=query, timeout=(10, timeout + 30))
    if not 200 <= resp.status <= 299:
        data = resp.read()
        raise client.ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
    raw = resp.response
    try:
        for line in iter_resp_lines(raw):
            if line:
                yield json.loads(line)
    finally:  # left early (or ended): the connection is closed, not handed back with a watch on it
        raw.close()
        raw.release_conn()


def get(api: client.ApiClient, kind: str, name: str, namespace: str | None = None) -> dict | None:
    try:
        return _call(api, "GET", path(kind, name, namespace))
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def event(api: client.ApiClient, obj: dict, type_: str, reason: str, message: str) -> None:
    """A core/v1 Event about ``obj``."""
    import datetime as dt
    import uuid

    md = obj["metadata"]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = md.get("namespace") or "default"
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{md['name']}.{uuid.uuid4().hex[:12]}", "namespace": ns},
        "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": md["name"],
                           "uid": md.get("uid"), **({"namespace": md["namespace"]} if md.get("namespace") else {})},
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "yunshang-operator"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    _count("create", "Event", api)
    _call(api, "POST", f"/api/v1/namespaces/{ns}/events", body=body)
