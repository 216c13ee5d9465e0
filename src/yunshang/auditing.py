"""What an API server audit event means for the audit trail (pure; no I/O).

Only successful writes to tenants and share agreements count; the operator's own writes are
recorded by the operator itself (with the numbers that caused them) and skipped here.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .models.audit import ObjectRef

OPERATOR_AGENT = "yunshang-operator"
KINDS = {"tenants": "Tenant", "shareagreements": "ShareAgreement"}


@dataclasses.dataclass(frozen=True)
class Entry:
    action: str
    object: ObjectRef
    tenants: list[str]
    details: dict[str, str]


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else k, v))
        return out
    return {prefix: "" if value is None else str(value)}


def classify(ev: dict[str, Any]) -> list[Entry]:
    ref = ev.get("objectRef") or {}
    kind = KINDS.get(ref.get("resource", ""))
    status = (ev.get("responseStatus") or {}).get("code", 0)
    if (not kind or ref.get("apiGroup") != "platform.yunshang.io" or ref.get("subresource")
            or ev.get("stage") != "ResponseComplete" or not 200 <= status < 300
            or (ev.get("userAgent") or "").startswith(OPERATOR_AGENT)
            or ev.get("verb") not in ("create", "update", "patch", "delete")):
        return []
    name = ref.get("name") or ((ev.get("requestObject") or {}).get("metadata") or {}).get("name", "")
    obj = ObjectRef(kind=kind, name=name)
    body = ev.get("requestObject") or {}
    appended: list | None = None  # sign-offs a JSON patch appends (`tenant approve`: one op per decision)
    if isinstance(body, list):  # a JSON patch: its ops on spec.*
        ops = [op for op in body if isinstance(op, dict) and op.get("op") in ("add", "replace")]
        appended = [op.get("value") for op in ops if op.get("path") == "/spec/signoffs/-"]
        body = {"spec": {op["path"].split("/")[2]: op.get("value") for op in ops
                         if str(op.get("path", "")).startswith("/spec/") and len(op["path"].split("/")) == 3}}
        if appended:
            body["spec"]["signoffs"] = appended
    spec = body.get("spec") if isinstance(body, dict) else None
    verb = ev["verb"]
    if kind == "Tenant":
        tenants = [name]
        if verb == "delete":
            return [Entry("TenantDeleted", obj, tenants, {})]
        if verb == "create":
            s = spec or {}
            q = s.get("quota") or {}
            return [Entry("TenantRequested", obj, tenants, {
                "department": str((s.get("department") or {}).get("name", "")), "level": str(s.get("level", "")),
                "parent": str(s.get("parent") or ""), **{f"quota.{k}": str(v) for k, v in q.items()}})]
        if not isinstance(spec, dict):
            return []
        out = []
        if "approval" in spec and isinstance(spec["approval"], dict):
            a = spec["approval"]
            action = "TenantApproved" if a.get("decision") == "Approved" else "TenantRejected"
            out.append(Entry(action, obj, tenants, {"reason": str(a.get("reason", ""))}))
        if isinstance(spec.get("signoffs"), list) and spec["signoffs"]:
            entries = [d for d in spec["signoffs"] if isinstance(d, dict)]
            if appended is None:  # the whole list (a merge patch): the requester's decisions of the newest round
                user = (ev.get("user") or {}).get("username")
                newest = max((int(d.get("round") or 1) for d in entries), default=1)
                entries = [d for d in entries if d.get("by") == user and int(d.get("round") or 1) == newest]
            for d in entries:
                out.append(Entry("TenantSignedOff", obj, tenants, {
                    "role": str(d.get("role", "")), "decision": str(d.get("decision", "")),
                    "round": str(d.get("round", 1)), "reason": str(d.get("reason", ""))}))
        if "requestRound" in spec:
            out.append(Entry("QuotaRequested", obj, tenants, {"round": str(spec["requestRound"]),
                                                              **_flat("quota", spec.get("quota") or {})}))
        elif "quota" in spec:
            out.append(Entry("QuotaChanged", obj, tenants, _flat("quota", spec["quota"])))
        if "suspended" in spec:
            out.append(Entry("TenantSuspended" if spec["suspended"] else "TenantResumed", obj, tenants,
                             {"reason": str(spec.get("suspendReason") or "")}))
        if "quarantine" in spec:
            if spec["quarantine"] is None:
                out.append(Entry("QuarantineLifted", obj, tenants, {}))
            else:
                out.append(Entry("TenantQuarantined", obj, tenants, _flat("", spec["quarantine"])))
        rest = set(spec) - {"approval", "quota", "suspended", "suspendReason", "quarantine", "signoffs", "requestRound"}
        if rest:
            out.append(Entry("TenantChanged", obj, tenants, {"fields": ",".join(sorted(rest))}))
        return out
    # ShareAgreement
    s = spec or {}
    tenants = [t for t in (s.get("consumer"), s.get("provider")) if t]
    if verb == "delete":
        return [Entry("AgreementDeleted", obj, tenants, {})]
    if verb == "create":
        svc = s.get("service") or {}
        return [Entry("AgreementRequested", obj, tenants, {
            "consumer": str(s.get("consumer", "")), "provider": str(s.get("provider", "")),
            "service": f"{svc.get('namespace')}/{svc.get('name')}:{svc.get('port')}",
            "purpose": str(s.get("purpose", "")), "expires": str(s.get("expires", ""))})]
    out = []
    if isinstance(s.get("decision"), dict):
        d = s["decision"]
        out.append(Entry("AgreementApproved" if d.get("decision") == "Approved" else "AgreementRejected", obj, tenants,
                         {"reason": str(d.get("reason", ""))}))
    if isinstance(s.get("revoked"), dict):
        out.append(Entry("AgreementRevoked", obj, tenants, {"reason": str(s["revoked"].get("reason", ""))}))
    return out
