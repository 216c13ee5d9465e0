"""Sharing agreements in the operator: open exactly the agreed path while the agreement is
active, close it (within seconds) on expiry, revocation, rejection or deletion."""
from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

import kopf
from pydantic import ValidationError

from .. import sharing, tenancy
from ..models.agreement import AgreementPhase, AgreementSpec
from ..models.tenant import GROUP, VERSION, TenantSpec
from . import kube, metrics
from ..models.audit import ObjectRef
from .handlers import AUDIT, StatusWriter, _one, _plain, api

AGREEMENTS = (GROUP, VERSION, "shareagreements")
EXPIRY_CHECK_SECONDS = float(os.environ.get("YUNSHANG_SHARE_CHECK_SECONDS", "2"))
SHARED = {sharing.LABEL_AGREEMENT: kopf.PRESENT}
log = logging.getLogger("yunshang.sharing")


@kopf.index(*AGREEMENTS)
def agreement_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict]:
    return {name: _plain(body)}


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels=SHARED)
def share_policy_index(body: kopf.Body, **_: Any) -> dict[str, dict]:
    return {body["metadata"]["labels"][sharing.LABEL_AGREEMENT]: _plain(body)}


def reconcile_agreement(name: str, indices: dict[str, Any]) -> None:
    body = _one(indices["agreement_index"].get(name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    uid = body["metadata"]["uid"]
    try:
        spec = AgreementSpec.model_validate(body.get("spec") or {})
    except ValidationError as e:
        _status(name, body, {"phase": AgreementPhase.Refused.value, "message": f"invalid: {e.errors()[0]['msg']}"})
        return
    _parties[name] = (spec.consumer, spec.provider)
    tenants = indices["tenant_index"]
    consumer, provider = _one(tenants.get(spec.consumer)), _one(tenants.get(spec.provider))
    now = dt.datetime.now(dt.timezone.utc)
    problem = None
    desired: list[dict] = []
    if consumer is None or provider is None:
        problem = f"tenant {spec.consumer if consumer is None else spec.provider!r} does not exist"
    else:
        cspec, pspec = TenantSpec.model_validate(consumer["spec"]), TenantSpec.model_validate(provider["spec"])
        problem = sharing.classification_problem(pspec.classification, cspec.classification)
        for side, tspec in ((spec.consumer, cspec), (spec.provider, pspec)):
            if tspec.quarantine:  # a quarantined tenant keeps no traffic but the platform's own
                problem = f"closed while {side} is quarantined ({tspec.quarantine.reason})"
        phase, _ = sharing.phase_of(spec, now, problem)
        if phase == AgreementPhase.Active:
            svc = kube.get(api(), "Service", spec.service.name, spec.service.namespace)
            port = next((p for p in ((svc or {}).get("spec") or {}).get("ports", []) if p.get("port") == spec.service.port), None)
            selector = ((svc or {}).get("spec") or {}).get("selector")
            if svc is None or port is None or not selector:
                problem = (f"service {spec.service.namespace}/{spec.service.name} with port {spec.service.port} "
                           "and a pod selector not found")
            else:
                target = port.get("targetPort", port["port"])
                desired = sharing.desired_policies(name, uid, spec, selector, target,
                                                   tenancy.namespace_names(spec.consumer, cspec))
    phase, message = sharing.phase_of(spec, now, problem)
    live = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in indices["share_policy_index"].get(uid, [])}
    for obj in desired:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if not tenancy.in_sync(obj, live.get(key)):
            kube.apply(api(), obj)
    wanted = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in desired}
    for ns, pname in live:
        if (ns, pname) not in wanted:
            kube.delete(api(), "NetworkPolicy", pname, ns)
    expires = spec.expires if spec.expires.tzinfo else spec.expires.replace(tzinfo=dt.timezone.utc)
    if phase == AgreementPhase.Active:
        metrics.AGREEMENTS.labels(name, spec.consumer, spec.provider).set(expires.timestamp())
    else:
        try:
            metrics.AGREEMENTS.remove(name, spec.consumer, spec.provider)
        except KeyError:
            pass
    _status(name, body, {
        "phase": phase.value, "message": message,
        "policies": sorted(f"{ns}/{n}" for ns, n in wanted),
        "observedGeneration": body["metadata"].get("generation", 0),
    })


_parties: dict[str, tuple[str, str]] = {}


def parties(name: str) -> tuple[str, ...]:
    """The consumer and provider of an agreement this operator has seen."""
    return _parties.get(name, ())


AGREEMENT_STATUS = StatusWriter("ShareAgreement")


def _status(name: str, body: dict, status: dict) -> None:
    if AGREEMENT_STATUS.write(name, body, status) is None:
        return
    kube.event(api(), body, "Normal", f"Agreement{status['phase']}", status["message"])
    if status["phase"] == AgreementPhase.Expired.value:
        spec = body.get("spec") or {}
        AUDIT.append("yunshang-operator", "AgreementExpired", ObjectRef(kind="ShareAgreement", name=name),
                     [spec.get("consumer", ""), spec.get("provider", "")], {"expires": str(spec.get("expires"))})


@kopf.on.resume(*AGREEMENTS)
@kopf.on.create(*AGREEMENTS)
@kopf.on.update(*AGREEMENTS, field="spec")
def agreement_changed(name: str, **kwargs: Any) -> None:
    reconcile_agreement(name, kwargs)


@kopf.timer(*AGREEMENTS, interval=EXPIRY_CHECK_SECONDS,
            when=lambda status, **_: (status or {}).get("phase") in ("Active", "Refused"))
def agreement_expiry(name: str, **kwargs: Any) -> None:
    """Close an active agreement's path as soon as it expires or a side is quarantined, reopen it
    when the quarantine is lifted (and repair drift meanwhile)."""
    reconcile_agreement(name, kwargs)


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=SHARED)
def share_policy_event(body: kopf.Body, **kwargs: Any) -> None:
    uid = body["metadata"]["labels"][sharing.LABEL_AGREEMENT]
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("uid") == uid:
            reconcile_agreement(ref["name"], kwargs)


@kopf.on.delete(*AGREEMENTS, optional=True)
def agreement_deleted(name: str, **_: Any) -> None:
    AGREEMENT_STATUS.forget(name)


def end_agreements_of(tenant: str, indices: dict[str, Any]) -> list[str]:
    """Deleting either tenant ends its agreements (their policies go with them)."""
    ended = []
    for name in list(indices.get("agreement_index", {})):
        body = _one(indices["agreement_index"].get(name)) or {}
        spec = body.get("spec") or {}
        if tenant in (spec.get("consumer"), spec.get("provider")):
            kube.delete(api(), "ShareAgreement", name)
            ended.append(name)
    return ended
