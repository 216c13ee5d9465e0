"""A Pulumi resource for any Kubernetes object, applied with server-side apply.

Why this exists: the pulumi-kubernetes provider cannot be built here (the Go module proxy
refuses every version of github.com/pulumi/pulumi-kubernetes/provider, see the README), so
the platform's objects go through the real Pulumi engine as a Python dynamic provider that
uses the official kubernetes client.  It does one thing: keep one manifest applied.

- create/update: server-side apply with field manager ``yunshang-pulumi`` (force conflicts);
- diff: a change of the manifest is an update; a change of identity (apiVersion, kind,
  namespace, name) or of the cluster is a replacement;
- delete: delete and wait until the object is gone (namespaces take a few seconds);
- read: refreshes outputs from the live object (``pulumi refresh``).
"""
from __future__ import annotations

import json
import time
from typing import Any

import pulumi
import pulumi.dynamic as dyn

FIELD_MANAGER = "yunshang-pulumi"


def _identity(m: dict[str, Any]) -> tuple[str, str, str, str]:
    md = m.get("metadata", {})
    return (m["apiVersion"], m["kind"], md.get("namespace", ""), md["name"])


def object_id(m: dict[str, Any]) -> str:
    api, kind, ns, name = _identity(m)
    return "/".join(p for p in (api, kind, ns, name) if p)


def _resource(kubeconfig: str, context: str | None, manifest: dict[str, Any], wait: float = 60):
    """The dynamic-client resource for the manifest's kind (waiting for a new CRD to be served)."""
    from kubernetes import config, dynamic
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    api = config.new_client_from_config(config_file=kubeconfig or None, context=context or None)
    deadline = time.monotonic() + wait
    while True:
        client = dynamic.DynamicClient(api)
        try:
            return client, client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        except ResourceNotFoundError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the API server does not serve {manifest['kind']} ({manifest['apiVersion']}) after {wait:.0f}s"
                ) from None
            time.sleep(1)


def _live_outputs(obj) -> dict[str, Any]:
    md = obj.metadata
    return {"uid": md.uid}


class KubeObjectProvider(dyn.ResourceProvider):
    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        manifest = json.loads(props["manifest"])
        from kubernetes.dynamic.exceptions import NotFoundError

        _, res = _resource(props.get("kubeconfig", ""), props.get("context"), manifest)
        ns = manifest.get("metadata", {}).get("namespace")
        deadline = time.monotonic() + 120
        while True:
            try:
                obj = res.server_side_apply(body=manifest, namespace=ns, field_manager=FIELD_MANAGER,
                                            force_conflicts=True)
                return {**props, **_live_outputs(obj)}
            except NotFoundError:
                # a tenant's namespace appears when the operator provisions it: wait for it
                if not ns or time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def create(self, props):
        outs = self._apply(props)
        return dyn.CreateResult(id_=object_id(json.loads(props["manifest"])), outs=outs)

    def diff(self, id_, olds, news):
        old_m, new_m = json.loads(olds["manifest"]), json.loads(news["manifest"])
        replaces = []
        if _identity(old_m) != _identity(new_m):
            replaces.append("manifest")
        if (olds.get("kubeconfig"), olds.get("context")) != (news.get("kubeconfig"), news.get("context")):
            replaces.append("context")
        changed = old_m != new_m or bool(replaces)
        return dyn.DiffResult(changes=changed, replaces=replaces, delete_before_replace=True)

    def update(self, id_, olds, news):
        return dyn.UpdateResult(outs=self._apply(news))

    def delete(self, id_, props):
        from kubernetes.dynamic.exceptions import NotFoundError

        manifest = json.loads(props["manifest"])
        _, res = _resource(props.get("kubeconfig", ""), props.get("context"), manifest)
        md = manifest["metadata"]
        try:
            res.delete(name=md["name"], namespace=md.get("namespace"))
        except NotFoundError:
            return
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                res.get(name=md["name"], namespace=md.get("namespace"))
            except NotFoundError:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{object_id(manifest)} still exists 180s after delete")

    def read(self, id_, props):
        from kubernetes.dynamic.exceptions import NotFoundError

        manifest = json.loads(props["manifest"])
        _, res = _resource(props.get("kubeconfig", ""), props.get("context"), manifest)
        md = manifest["metadata"]
        try:
            obj = res.get(name=md["name"], namespace=md.get("namespace"))
        except NotFoundError:
            return dyn.ReadResult(id_=None, outs={})
        return dyn.ReadResult(id_=id_, outs={**props, **_live_outputs(obj)})


class KubeObject(dyn.Resource):
    """One Kubernetes object (any kind, CRDs and custom resources included) kept applied."""

    uid: pulumi.Output[str]
    manifest: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        manifest: dict[str, Any],
        kubeconfig: str = "",
        context: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            "manifest": json.dumps(manifest, sort_keys=True),
            "kubeconfig": kubeconfig,
            "context": context or "",
            "uid": None,
        }
        super().__init__(KubeObjectProvider(), resource_name, props, opts)
