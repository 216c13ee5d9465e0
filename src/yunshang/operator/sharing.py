"""Sharing agreements in the operator: open exactly the agreed path while the agreement is
active, close it (within seconds) on expiry, revocation, rejection or deletion."""
from __future__ import annotations

import copy
import datetime as dt
import logging
import os
from typing import Any

import kopf
from pydantic import ValidationError

from .. import sharing, signoff, tenancy
from ..models.agreement import AgreementPhase, AgreementSpec, OfferSpec
from ..models.tenant import GROUP, VERSION, TenantSpec
from . import kube, metrics
from ..models.audit import ObjectRef
from .handlers import reconciler

AGREEMENTS = (GROUP, VERSION, "shareagreements")
EXPIRY_CHECK_SECONDS = float(os.environ.get("YUNSHANG_SHARE_CHECK_SECONDS", "2"))
SHARED = {sharing.LABEL_AGREEMENT: kopf.PRESENT}
log = logging.getLogger("yunshang.sharing")


def _plain(body: Any) -> dict:
    """A kopf Body (a live view) as a plain, detached dict."""
    return copy.deepcopy(dict(body))


def _one(store: Any) -> dict | None:
    for v in store or []:
        return v
    return None


@kopf.index(*AGREEMENTS)
def agreement_index(name: str, body: kopf.Body, **_: Any) -> dict[str, dict]:
    return {name: _plain(body)}


@kopf.index("networking.k8s.io", "v1", "networkpolicies", labels=SHARED)
def share_policy_index(body: kopf.Body, **_: Any) -> dict[str, dict]:
    return {body["metadata"]["labels"][sharing.LABEL_AGREEMENT]: _plain(body)}


class StatusWriter:
    """Writes an agreement's status only when it differs from both the live status and what this
    process wrote last (kopf indices lag our own writes), and says when the phase changed."""

    def __init__(self) -> None:
        self.written: dict[str, dict] = {}

    def write(self, api, name: str, body: dict, status: dict[str, Any]) -> dict | None:
        current = body.get("status") or {}
        mine = self.written.get(name)
        if tenancy.is_subset(status, current) or (mine is not None and tenancy.is_subset(status, mine)):
            return None
        kube.patch(api, "ShareAgreement", name, {"status": status}, sub="status")
        self.written[name] = status
        old = mine or current
        return old if old.get("phase") != status.get("phase") else None

    def forget(self, name: str) -> None:
        self.written.pop(name, None)


def reconcile_agreement(name: str, indices: dict[str, Any], memo: kopf.Memo) -> None:
    body = _one(indices["agreement_index"].get(name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    r = reconciler(memo)
    api = r.api
    uid = body["metadata"]["uid"]
    try:
        spec = AgreementSpec.model_validate(body.get("spec") or {})
    except ValidationError as e:
        _status(name, body, {"phase": AgreementPhase.Refused.value, "message": f"invalid: {e.errors()[0]['msg']}"})
        return
    if name not in _parties(memo):
        reconciler(memo).views_stale.set()  # its parties may read it once their roles name it
    _parties(memo)[name] = (spec.consumer, spec.provider)
    tenants = r.cache.tenants
    consumer, provider = tenants.get(spec.consumer), tenants.get(spec.provider)
    now = dt.datetime.now(dt.timezone.utc)
    offer = _offer(indices, spec.offer) if spec.offer else None
    auto = sharing.auto_approved(spec, offer)
    stamp = body["metadata"].get("creationTimestamp")
    created = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    problem = None
    desired: list[dict] = []
    if consumer is None or provider is None:
        problem = f"tenant {spec.consumer if consumer is None else spec.provider!r} does not exist"
    else:
        cspec, pspec = TenantSpec.model_validate(consumer.spec), TenantSpec.model_validate(provider.spec)
        problem = sharing.classification_problem(pspec.classification, cspec.classification)
        problem = problem or sharing.offer_problem(spec, offer, created, cspec.classification)
        problem = problem or sharing.ownership_problem(spec, r.cache.ns_owner.get)
        for side, tspec in ((spec.consumer, cspec), (spec.provider, pspec)):
            if tspec.quarantine:  # a quarantined tenant keeps no traffic but the platform's own
                problem = f"closed while {side} is quarantined ({tspec.quarantine.reason})"
        phase, _ = sharing.phase_of(spec, now, problem, auto)
        if phase == AgreementPhase.Active:
            svc = kube.get(api, "Service", spec.service.name, spec.service.namespace)
            port = next((p for p in ((svc or {}).get("spec") or {}).get("ports", []) if p.get("port") == spec.service.port), None)
            selector = ((svc or {}).get("spec") or {}).get("selector")
            if svc is None or port is None or not selector:
                problem = (f"service {spec.service.namespace}/{spec.service.name} with port {spec.service.port} "
                           "and a pod selector not found")
            else:
                target = port.get("targetPort", port["port"])
                # the consumer's egress goes into the namespaces that are its by the record only
                mine = [ns for ns in tenancy.namespace_names(spec.consumer, cspec)
                        if r.cache.ns_owner.get(ns) == spec.consumer]
                desired = sharing.desired_policies(name, uid, spec, selector, target, mine)
    phase, message = sharing.phase_of(spec, now, problem, auto)
    live = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in indices["share_policy_index"].get(uid, [])}
    for obj in desired:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if not tenancy.in_sync(obj, live.get(key)):
            kube.apply(api, obj)
    wanted = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in desired}
    for ns, pname in live:
        if (ns, pname) not in wanted:
            kube.delete(api, "NetworkPolicy", pname, ns)
    expires = spec.expires if spec.expires.tzinfo else spec.expires.replace(tzinfo=dt.timezone.utc)
    if phase == AgreementPhase.Active:
        metrics.AGREEMENTS.labels(name, spec.consumer, spec.provider).set(expires.timestamp())
    else:
        try:
            metrics.AGREEMENTS.remove(name, spec.consumer, spec.provider)
        except KeyError:
            pass
    deadline = _decision_deadline(r, name, spec, created, phase)
    _rating(memo, name, spec)
    _status(memo, name, body, {
        "phase": phase.value, "message": message,
        "policies": sorted(f"{ns}/{n}" for ns, n in wanted),
        "observedGeneration": body["metadata"].get("generation", 0),
        # while pending; the merge patch removes it once decided
        "deadline": deadline.strftime("%Y-%m-%dT%H:%M:%SZ") if deadline else None,
    })


def _rating(memo: kopf.Memo, name: str, spec: AgreementSpec) -> None:
    """好差评: each provider's ratings as two gauges (the dashboard divides them)."""
    ratings: dict[str, tuple[str, int]] = memo.setdefault("agreement_ratings", {})
    if spec.rating is None or ratings.get(name) == (spec.provider, spec.rating.score):
        return
    ratings[name] = (spec.provider, spec.rating.score)
    scores = [score for provider, score in ratings.values() if provider == spec.provider]
    metrics.RATING_SUM.labels(spec.provider).set(sum(scores))
    metrics.RATING_COUNT.labels(spec.provider).set(len(scores))


def _offer(indices: dict[str, Any], name: str) -> OfferSpec | None:
    """The offer from kopf's index (offers.py): no API call, even on the 2-second expiry timer."""
    spec = _one(indices["offer_index"].get(name))
    try:
        return OfferSpec.model_validate(spec) if spec is not None else None
    except ValidationError:
        return None


def _decision_deadline(r, name: str, spec: AgreementSpec, opened: dt.datetime | None,
                       phase: AgreementPhase) -> dt.datetime | None:
    """限时办结 for the provider: its decision is due `agreement_days` after the request; the
    deadline is exported while pending, the time the decision took once (histogram)."""
    due = signoff.deadline(opened, r.settings.agreement_days)
    pending = spec.decision is None and phase == AgreementPhase.Pending  # (an offer without approval: never)
    metrics.pending_decisions("agreement", name, {spec.provider: due.timestamp() if pending and due else None})
    key = (f"agreement:{name}", 1, spec.provider)
    d = spec.decision
    if d is not None and d.at is not None and opened is not None and key not in r.decisions_seen:
        r.decisions_seen.add(key)
        if d.at >= r.started:
            metrics.DECISION_SECONDS.labels("agreement", spec.provider).observe(max(0.0, (d.at - opened).total_seconds()))
    return due if pending else None


def _parties(memo: kopf.Memo) -> dict[str, tuple[str, str]]:
    return memo.setdefault("agreement_parties", {})


def parties(memo: kopf.Memo, name: str) -> tuple[str, ...]:
    """The consumer and provider of an agreement this operator has seen."""
    return _parties(memo).get(name, ())


def _writer(memo: kopf.Memo) -> StatusWriter:
    return memo.setdefault("agreement_status", StatusWriter())


def _status(memo: kopf.Memo, name: str, body: dict, status: dict) -> None:
    r = reconciler(memo)
    if _writer(memo).write(r.api, name, body, status) is None:
        return
    kube.event(r.api, body, "Normal", f"Agreement{status['phase']}", status["message"])
    if status["phase"] == AgreementPhase.Expired.value:
        spec = body.get("spec") or {}
        r.audit.append("yunshang-operator", "AgreementExpired", ObjectRef(kind="ShareAgreement", name=name),
                       [spec.get("consumer", ""), spec.get("provider", "")], {"expires": str(spec.get("expires"))})


@kopf.on.startup()
def ending_with_tenants(memo: kopf.Memo, **_: Any) -> None:
    """Deleting either tenant ends its agreements (their policies go with them)."""
    r = reconciler(memo)
    r.on_tenant_gone.append(lambda tenant: end_agreements_of(r.api, tenant))


@kopf.on.resume(*AGREEMENTS)
@kopf.on.create(*AGREEMENTS)
@kopf.on.update(*AGREEMENTS, field="spec")
def agreement_changed(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    reconcile_agreement(name, kwargs, memo)


@kopf.timer(*AGREEMENTS, interval=EXPIRY_CHECK_SECONDS,
            when=lambda status, **_: (status or {}).get("phase") in ("Active", "Refused"))
def agreement_expiry(name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    """Close an active agreement's path as soon as it expires or a side is quarantined, reopen it
    when the quarantine is lifted (and repair drift meanwhile)."""
    reconcile_agreement(name, kwargs, memo)


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=SHARED)
def share_policy_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    uid = body["metadata"]["labels"][sharing.LABEL_AGREEMENT]
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("uid") == uid:
            reconcile_agreement(ref["name"], kwargs, memo)


@kopf.on.delete(*AGREEMENTS, optional=True)
def agreement_deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
    _writer(memo).forget(name)
    _parties(memo).pop(name, None)
    reconciler(memo).views_stale.set()  # its parties lose it from their roles and views


def end_agreements_of(api, tenant: str) -> list[str]:
    """The agreements either side of which is ``tenant``, deleted."""
    ended = []
    for body in kube.list_all(api, "ShareAgreement"):
        spec = body.get("spec") or {}
        if tenant in (spec.get("consumer"), spec.get("provider")):
            kube.delete(api, "ShareAgreement", body["metadata"]["name"])
            ended.append(body["metadata"]["name"])
    return ended
