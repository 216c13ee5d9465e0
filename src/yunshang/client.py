"""The API the CLI (and scripts) use: tenants on the cluster of the current kubeconfig context.

Every failure becomes a `ClientError` with one line a person can act on.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ssl

import yaml

from . import rest
from .lazy import OnFirstUse
from .models.names import API_VERSION, DEFAULT_ANCHOR, GROUP, VERSION

# imported on first use: `yunshang --help` and `tenant list` need neither the Kubernetes client
# nor the models (bench/cli_latency.py)
client = OnFirstUse("kubernetes.client")
config = OnFirstUse("kubernetes.config")
pydantic = OnFirstUse("pydantic")
tenancy = OnFirstUse("yunshang.tenancy")
tm = OnFirstUse("yunshang.models.tenant")
am = OnFirstUse("yunshang.models.agreement")
audm = OnFirstUse("yunshang.models.audit")

PLURAL = "tenants"


class ClientError(Exception):
    """One line: what went wrong and how to fix it."""


def validation_message(e: pydantic.ValidationError, prefix: str = "") -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "input"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"invalid {where}: {msg}{more}"


def api_message(e, what: str, listing: str = "yunshang tenant list") -> str:
    try:
        body = json.loads(e.body or "{}")
        msg = body.get("message") or e.reason
    except (ValueError, TypeError):
        msg = e.body or e.reason
    if e.status == 404:
        return f"{what} not found (see `{listing}`)"
    if e.status == 403:
        return f"not allowed: {msg}"
    if e.status == 409:
        return f"{what} already exists: {msg}"
    if e.status == 422:
        return f"invalid: {msg}"
    return f"{what}: API server said {e.status}: {msg}"


def load_request_file(path: Path) -> tuple[str, tm.TenantRequest]:
    """A catalog file (a Tenant manifest without approval) -> (name, validated request)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ClientError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ClientError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Tenant":
        raise ClientError(f"{path}: expected a Tenant manifest (kind: Tenant, metadata.name, spec)")
    name = (doc.get("metadata") or {}).get("name", "")
    try:
        req = tm.TenantRequest.model_validate(doc.get("spec") or {})
        tm.check_tenant_name(name, req)
    except pydantic.ValidationError as e:
        raise ClientError(f"{path}: " + validation_message(e, "spec.")) from None
    except ValueError as e:
        raise ClientError(f"{path}: {e}") from None
    return name, req


def manifest(name: str, spec: tm.TenantRequest) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


class Tenants:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        self._kubeconfig, self._context = kubeconfig, context
        self._api = self._co = None
        try:  # reads go through the light path when the kubeconfig allows it (rest.py says why)
            self.rest: rest.Endpoint | None = rest.Endpoint(kubeconfig, context)
        except (rest.Unsupported, OSError, ValueError, ssl.SSLError):
            self.rest = None
            self.api  # noqa: B018  (a kubeconfig the client cannot use either fails here, in one line)

    @property
    def api(self):
        if self._api is None:
            try:
                self._api = config.new_client_from_config(config_file=self._kubeconfig, context=self._context)
            except (config.ConfigException, OSError) as e:
                where = self._kubeconfig or "your kubeconfig"
                raise ClientError(
                    f"cannot use {where}: {e}; start the local platform with `yunshang dev up` or pass --kubeconfig"
                ) from None
        return self._api

    @property
    def co(self):
        if self._co is None:
            self._co = client.CustomObjectsApi(self.api)
        return self._co

    # -------------------------------------------------------------- reads
    def read(self, what: str, path: str, fn, *args, listing: str = "yunshang tenant list", **kwargs):
        """GET through the light path if there is one, else through the kubernetes client."""
        if self.rest is None:
            return self.call(what, fn, *args, listing=listing, **kwargs)
        try:
            return self.rest.get(path)
        except rest.RestError as e:
            raise ClientError(api_message(e, what, listing)) from None
        except rest.Unreachable as e:
            raise ClientError(f"cannot reach the API server at {self.rest.host} ({_short(e)}); "
                              "is it running (`yunshang dev status`)?") from None

    def get(self, name: str) -> dict[str, Any]:
        return self.read(f"tenant {name!r}", f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}",
                         lambda: self.co.get_cluster_custom_object(GROUP, VERSION, PLURAL, name))

    def list(self) -> list[dict[str, Any]]:
        return self.read("tenants", f"/apis/{GROUP}/{VERSION}/{PLURAL}",
                         lambda: self.co.list_cluster_custom_object(GROUP, VERSION, PLURAL))["items"]

    def call(self, what: str, fn, *args, listing: str = "yunshang tenant list", **kwargs):
        """One API call: an API error or an unreachable server becomes a one-line ClientError."""
        try:
            return fn(*args, **kwargs)
        except client.ApiException as e:
            raise ClientError(api_message(e, what, listing)) from None
        except ClientError:
            raise
        except Exception as e:
            raise self._unreachable(e) from None

    def _unreachable(self, e: Exception) -> ClientError:
        return ClientError(f"cannot reach the API server at {self.api.configuration.host} ({_short(e)}); "
                           "is it running (`yunshang dev status`)?")

    def whoami(self) -> str:
        review = client.AuthenticationV1Api(self.api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        return review.status.user_info.username

    def events(self, name: str) -> list[Any]:
        try:
            return client.CoreV1Api(self.api).list_event_for_all_namespaces(
                field_selector=f"involvedObject.name={name},involvedObject.kind=Tenant"
            ).items
        except client.ApiException:
            return []

    def quotas(self, name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Each namespace's quota, hard and used, read live (what the caller may read; the
        operator keeps usage out of the tenant's status so that usage changes cost no writes)."""
        core = client.CoreV1Api(self.api)
        out = []
        for suffix in spec.get("namespaces") or []:
            ns = f"{name}-{suffix}"
            try:
                q = core.read_namespaced_resource_quota(tenancy.QUOTA_NAME, ns)
            except client.ApiException:
                continue
            st = q.status
            out.append({"name": ns, "hard": dict((st.hard if st else None) or {}),
                        "used": dict((st.used if st else None) or {})})
        return out

    # -------------------------------------------------------------- writes
    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call(f"tenant {name!r}", self.co.patch_cluster_custom_object, GROUP, VERSION, PLURAL, name,
                         {"spec": spec})

    def request(self, name: str, spec: tm.TenantRequest) -> dict[str, Any]:
        try:
            tm.check_tenant_name(name, spec)
        except ValueError as e:
            raise ClientError(str(e)) from None
        if spec.parent:
            self._check_carve(name, tm.TenantSpec.model_validate(spec.model_dump()), approved_only=False)
        return self.call(f"tenant {name!r}", self.co.create_cluster_custom_object, GROUP, VERSION, PLURAL,
                         manifest(name, spec))

    def _spec(self, name: str) -> tm.TenantSpec:
        body = self.get(name)
        return tm.TenantSpec.model_validate(body["spec"])

    def _check_carve(self, name: str, spec: tm.TenantSpec, approved_only: bool = True) -> None:
        """Refuse (before the operator would) a child whose quota does not fit its parent's."""
        if not spec.parent:
            return
        items = {t["metadata"]["name"]: t for t in self.list()}
        parent_body = items.get(spec.parent)
        parent = tm.TenantSpec.model_validate(parent_body["spec"]) if parent_body else None
        siblings = {}
        for n, t in items.items():
            s = t["spec"]
            if n != name and s.get("parent") == spec.parent and (s.get("approval") or {}).get("decision") == "Approved":
                siblings[n] = tm.TenantSpec.model_validate(s)
        problem = tenancy.hierarchy_problem(name, spec, spec.parent, parent, siblings)
        if problem and (approved_only or "quota over parent" in problem or "does not exist" in problem):
            raise ClientError(f"tenant {name!r}: {problem}")

    def approve(self, name: str, reason: str = "") -> dict[str, Any]:
        spec = self._spec(name)
        if spec.approval and spec.approval.decision == tm.Decision.Approved:
            raise ClientError(f"tenant {name!r} is already approved (by {spec.approval.by})")
        self._check_carve(name, spec)
        return self._decide(name, tm.Decision.Approved, reason)

    def reject(self, name: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise ClientError("a rejection needs a reason: pass --reason '...'")
        spec = self._spec(name)
        if spec.approval and spec.approval.decision == tm.Decision.Approved:
            raise ClientError(f"tenant {name!r} is already approved; suspend or delete it instead")
        return self._decide(name, tm.Decision.Rejected, reason)

    def _decide(self, name: str, decision: tm.Decision, reason: str) -> dict[str, Any]:
        approval = tm.Approval(decision=decision, by=self.whoami(), reason=reason,
                            at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        return self._patch(name, {"approval": approval.model_dump(mode="json", by_alias=True)})

    def suspend(self, name: str, reason: str) -> dict[str, Any]:
        self.get(name)
        return self._patch(name, {"suspended": True, "suspendReason": reason or "suspended by the platform bureau"})

    def resume(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._patch(name, {"suspended": False, "suspendReason": "", "quarantine": None})

    def set_quota(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        spec = self._spec(name)
        try:
            quota = tm.Quota.model_validate({**spec.quota.model_dump(), **changes})
        except pydantic.ValidationError as e:
            raise ClientError(validation_message(e, "quota.")) from None
        over = quota.fits_within(spec.ceiling())
        if over:
            ceiling = spec.ceiling().model_dump()
            raise ClientError(
                f"tenant {name!r}: quota above the approved ceiling for "
                + ", ".join(f"{k} (ceiling {ceiling[k]})" for k in over)
            )
        under = spec.floor().fits_within(quota)
        if under:
            raise ClientError(f"tenant {name!r}: quota below the approved floor for {', '.join(under)}")
        new_spec = spec.model_copy(update={"quota": quota})
        self._check_carve(name, new_spec)
        return self._patch(name, {"quota": quota.model_dump(mode="json", by_alias=True)})

    def delete(self, name: str) -> None:
        self.get(name)
        self.call(f"tenant {name!r}", self.co.delete_cluster_custom_object, GROUP, VERSION, PLURAL, name)


def _short(e: Exception) -> str:
    text = str(e)
    for needle, says in (("Connection refused", "connection refused"), ("CERTIFICATE_VERIFY_FAILED", "TLS: unknown certificate"),
                         ("timed out", "timed out"), ("Name or service not known", "unknown host")):
        if needle in text:
            return says
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


class Agreements:
    """Sharing agreements on the cluster of the current kubeconfig context."""

    PLURAL = "shareagreements"

    def __init__(self, tenants: Tenants):
        self.t = tenants

    @property
    def co(self):
        return self.t.co

    def get(self, name: str) -> dict[str, Any]:
        return self.t.read(f"agreement {name!r}", f"/apis/{GROUP}/{VERSION}/{self.PLURAL}/{name}",
                           lambda: self.co.get_cluster_custom_object(GROUP, VERSION, self.PLURAL, name),
                           listing="yunshang share list")

    def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        items = self.t.read("agreements", f"/apis/{GROUP}/{VERSION}/{self.PLURAL}",
                            lambda: self.co.list_cluster_custom_object(GROUP, VERSION, self.PLURAL))["items"]
        return [a for a in items if tenant in (None, a["spec"]["consumer"], a["spec"]["provider"])]

    def request(self, name: str, spec: am.AgreementRequest) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": "ShareAgreement", "metadata": {"name": name},
                "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)}
        return self.t.call(f"agreement {name!r}", self.co.create_cluster_custom_object, GROUP, VERSION, self.PLURAL, body)

    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.get(name)
        return self.t.call(f"agreement {name!r}", self.co.patch_cluster_custom_object, GROUP, VERSION, self.PLURAL,
                           name, {"spec": spec})

    def decide(self, name: str, decision: tm.Decision, reason: str = "") -> dict[str, Any]:
        if decision == tm.Decision.Rejected and not reason.strip():
            raise ClientError("a rejection needs a reason: pass --reason '...'")
        if self.get(name)["spec"].get("decision"):
            raise ClientError(f"agreement {name!r} was already decided")
        a = tm.Approval(decision=decision, by=self.t.whoami(), reason=reason,
                     at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        return self._patch(name, {"decision": a.model_dump(mode="json", by_alias=True)})

    def revoke(self, name: str, reason: str) -> dict[str, Any]:
        return self._patch(name, {"revoked": {"by": self.t.whoami(), "reason": reason,
                                              "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}})


class AuditTrail:
    """The hash-chained audit records (read-only for everyone but the operator)."""

    PLURAL = "auditrecords"

    def __init__(self, tenants: Tenants):
        self.t = tenants

    @property
    def co(self):
        return self.t.co

    def records(self) -> list[audm.AuditRecordSpec]:
        out, token = [], None
        while True:
            page = self.t.call("audit records", self.co.list_cluster_custom_object, GROUP, VERSION, self.PLURAL,
                               limit=500, **({"_continue": token} if token else {}))
            for item in page["items"]:
                try:
                    out.append(audm.AuditRecordSpec.model_validate(item["spec"]))
                except pydantic.ValidationError:
                    raise ClientError(f"audit record {item['metadata']['name']} is malformed") from None
            token = page["metadata"].get("continue")
            if not token:
                return sorted(out, key=lambda r: r.seq)

    def anchor(self, ref: str) -> audm.Anchor | None:
        """The chain's anchor kept in the ConfigMap ``namespace/name`` (None if there is none yet)."""
        ns, _, name = ref.partition("/")
        if not ns or not name:
            raise ClientError(f"--anchor {ref!r} is not namespace/name (e.g. {DEFAULT_ANCHOR})")
        core = client.CoreV1Api(self.t.api)
        try:
            cm = core.read_namespaced_config_map(name, ns)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise ClientError(api_message(e, f"audit anchor {ref}")) from None
        except Exception as e:
            raise self.t._unreachable(e) from None
        return audm.Anchor.from_data(cm.data)
