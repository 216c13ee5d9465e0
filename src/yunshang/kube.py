"""The one way the platform's code talks to the API server: the kind table, and get, list, watch,
server-side apply, patch, replace, create, delete and Events over it.

The operator, the installer, the Pulumi program's ownership check and the CLI all call these.  A
call goes over one of two transports: the kubernetes client's ApiClient (`connect`; the operator
and anything that needs what only the client understands: exec plugins, auth providers, proxies),
or the CLI's standard-library Endpoint (yunshang.rest: a GET costs no import of the kubernetes
package).  Errors: ``kubernetes.client.ApiException`` over the ApiClient, ``rest.RestError`` over
an Endpoint.  A client object may carry two hooks the operator's runtime sets: ``may_write()``
(every write asks it first: a replica that lost its lease writes nothing) and ``on_write(verb,
kind)`` (its write counter).  The kubernetes package is imported on first use.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from .lazy import OnFirstUse

client = OnFirstUse("kubernetes.client")

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
    "Event": ("/api/v1", "events", True),
    "Pod": ("/api/v1", "pods", True),
    "Node": ("/api/v1", "nodes", False),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "SelfSubjectAccessReview": ("/apis/authorization.k8s.io/v1", "selfsubjectaccessreviews", False),
    "SelfSubjectReview": ("/apis/authentication.k8s.io/v1", "selfsubjectreviews", False),
    "SubjectAccessReview": ("/apis/authorization.k8s.io/v1", "subjectaccessreviews", False),
    "MutatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1", "mutatingadmissionpolicies", False),
    "MutatingAdmissionPolicyBinding": ("/apis/admissionregistration.k8s.io/v1", "mutatingadmissionpolicybindings",
                                       False),
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


class NotLeading(RuntimeError):
    """A write refused in this process: it no longer holds the leader election's lease."""


def _count(verb: str, kind: str, api=None) -> None:
    """Before a write: ask the client's ``may_write`` (the runtime's leadership), tell its ``on_write``."""
    guard = getattr(api, "may_write", None)
    if guard is not None and not guard():
        raise NotLeading(f"{verb} {kind}: not the leader (any more); nothing written")
    hook = getattr(api, "on_write", None)
    if hook is not None:
        hook(verb, kind)


def connect(kubeconfig: str = "", context: str = "", pool_size: int = 8, agent: str = "") -> Any:
    """A client (kubernetes' ApiClient) for the API server: in-cluster when no kubeconfig is named and the pod's account is
    there, else the kubeconfig (``kubeconfig``, or the client's default) at ``context``."""
    from kubernetes import client as k8s, config

    cfg = k8s.Configuration()
    try:
        if kubeconfig or context:
            raise config.ConfigException("a kubeconfig was named")
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        # $KUBECONFIG read now: the client's own default is what it was when the client was imported
        config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG") or None,
                                context=context or None, client_configuration=cfg)
    cfg.connection_pool_maxsize = pool_size
    api = k8s.ApiClient(cfg)
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


def _send(api, method: str, url: str, *, body=None, query=None, content_type=None, timeout=None):
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


def request(api, method: str, url: str, *, body=None, query=None, content_type=None) -> Any:
    """One request over either transport -> the decoded JSON (``query``: a list of pairs)."""
    if hasattr(api, "send_raw"):  # yunshang.rest.Endpoint
        return api.send_raw(method, url, body=body, query=query, content_type=content_type)
    resp = _send(api, method, url, body=body, query=query, content_type=content_type)
    data = resp.read()
    if not 200 <= resp.status <= 299:
        raise client.ApiException(status=resp.status, reason=resp.reason, body=data.decode(errors="replace"))
    return json.loads(data) if data else {}


def status_of(e: BaseException) -> int | None:
    """The HTTP status of an API error from either transport (None for anything else)."""
    status = getattr(e, "status", None)
    return status if isinstance(status, int) and hasattr(e, "body") else None


def why(e: Exception) -> str:
    """One line: the API server's message for an ApiException, else the exception's first line."""
    status, text = status_of(e), getattr(e, "body", None)
    if status is not None:  # ApiException, rest.RestError
        try:
            msg = json.loads(text or "{}").get("message")
        except (ValueError, AttributeError):
            msg = None
        return f"{status} {msg or getattr(e, 'reason', '')}"[:300]
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


def apply(api, obj: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """Server-side apply ``obj`` as ``manager`` (forcing conflicts: drift is repaired)."""
    md = obj["metadata"]
    _count("apply", obj["kind"], api)
    return request(
        api,
        "PATCH",
        path(obj["kind"], md["name"], md.get("namespace")),
        body=obj,
        query=[("fieldManager", manager), ("force", "true")],
        content_type="application/apply-patch+yaml",
    )


def patch(api, kind: str, name: str, body: Any, namespace: str | None = None, sub: str = "",
          content_type: str = "application/merge-patch+json"):
    """A merge patch (or a JSON patch: ``content_type="application/json-patch+json"``, ``body`` a list)."""
    _count(f"patch{'/' + sub if sub else ''}", kind, api)
    return request(api, "PATCH", path(kind, name, namespace, sub), body=body, content_type=content_type)


def delete(api, kind: str, name: str, namespace: str | None = None) -> bool:
    """Delete; False if it was already gone."""
    _count("delete", kind, api)
    try:
        request(api, "DELETE", path(kind, name, namespace), body={"propagationPolicy": "Background"})
        return True
    except Exception as e:  # noqa: BLE001
        if status_of(e) == 404:
            return False
        raise


def replace(api, kind: str, body: dict, *, count: bool = True) -> dict:
    """PUT ``body`` (with its resourceVersion: refused with 409 if the object changed meanwhile)."""
    md = body["metadata"]
    if count:
        _count("update", kind, api)
    return request(api, "PUT", path(kind, md["name"], md.get("namespace")), body=body)


def create(api, kind: str, body: dict, *, count: bool = True) -> dict:
    prefix, plural, namespaced = KINDS[kind]
    ns = (body.get("metadata") or {}).get("namespace")
    if count:
        _count("create", kind, api)
    return request(api, "POST", f"{prefix}{f'/namespaces/{ns}' if namespaced else ''}/{plural}", body=body)


def list_all(api, kind: str, label_selector: str = "", namespace: str | None = None) -> list[dict]:
    return listing(api, kind, label_selector, namespace)[0]


def served(api, kind: str) -> None:
    """One GET of at most one object of ``kind``: raises ApiException (404) while it is not served."""
    request(api, "GET", collection(kind), query=[("limit", "1")])


def collection(kind: str, namespace: str | None = None) -> str:
    prefix, plural, _ = KINDS[kind]
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def pages(api, kind: str, label_selector: str = "", namespace: str | None = None,
          page: int = 500) -> Iterator[tuple[list[dict], str]]:
    """Every object of ``kind``, one page at a time (each with the listing's resourceVersion, to
    watch from), so that a listing of tens of thousands is never all in memory at once."""
    token = None
    while True:
        query = [("limit", str(page))] + ([("continue", token)] if token else []) + \
            ([("labelSelector", label_selector)] if label_selector else [])
        resp = request(api, "GET", collection(kind, namespace), query=query)
        md = resp.get("metadata") or {}
        yield resp.get("items", []), md.get("resourceVersion", "")
        token = md.get("continue")
        if not token:
            return


def listing(api, kind: str, label_selector: str = "", namespace: str | None = None,
            page: int = 500) -> tuple[list[dict], str]:
    """Every object of ``kind`` (in pages) and the listing's resourceVersion, to watch from."""
    items, rv = [], ""
    for chunk, rv in pages(api, kind, label_selector, namespace, page):
        items += chunk
    return items, rv


def watch(api, kind: str, resource_version: str, label_selector: str = "",
          timeout: int = 300, namespace: str | None = None) -> Iterator[dict]:
    """The watch events of ``kind`` after ``resource_version`` (bookmarks included), as decoded
    JSON, until the API server ends the watch (after ``timeout`` seconds)."""
    from kubernetes.watch.watch import iter_resp_lines

    query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", resource_version),
             ("timeoutSeconds", str(timeout))] + ([("labelSelector", label_selector)] if label_selector else [])
    resp = _send(api, "GET", collection(kind, namespace), query=query, timeout=(10, timeout + 30))
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


def get(api, kind: str, name: str, namespace: str | None = None) -> dict | None:
    try:
        return request(api, "GET", path(kind, name, namespace))
    except Exception as e:  # noqa: BLE001
        if status_of(e) == 404:
            return None
        raise


def event(api, obj: dict, type_: str, reason: str, message: str) -> None:
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
    request(api, "POST", f"/api/v1/namespaces/{ns}/events", body=body)
