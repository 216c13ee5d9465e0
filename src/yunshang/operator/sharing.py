"""Sharing agreements in the operator: open exactly the agreed path while the agreement is
active, close it (within seconds) on expiry, revocation, rejection or deletion.

On the runtime: a watch of agreements and one of the sharing NetworkPolicies (by their label: the
API server sends only those) keep two small indexes; an event enqueues the agreement's name (its
status-only changes, our own writes, do not); a controller reconciles each in a thread; every
``share_check_seconds`` the active and refused agreements are looked at again (expiry, a side's
quarantine lifted, drift)."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from pydantic import ValidationError

from .. import sharing, signoff, tenancy
from ..models.agreement import AgreementPhase, AgreementSpec, OfferSpec
from ..models.audit import ObjectRef
from ..models.tenant import TenantSpec, namespace_names
from .. import kube
from .runtime import metrics
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.sharing")
LOOKED_AT_AGAIN = ("Active", "Refused")  # the phases a clock or a tenant's change can end


class StatusWriter:
    """Writes an agreement's status only when it differs from both the live status and what this
    process wrote last (the watch brings our own writes back later), and says when the phase changed."""

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


class Agreements:
    """The agreements and their sharing paths as last seen, and the controller that keeps them."""

    def __init__(self, rt: Runtime, offer: Callable[[str], dict | None] = lambda name: None):
        """``offer(name)``: an offer's spec as last seen (offers.Offers.spec), None if unknown."""
        self.rt, self.api, self.offer_spec = rt, rt.api, offer
        self.bodies: dict[str, dict] = {}  # name -> the agreement as last seen
        self.names: dict[str, str] = {}  # uid -> name (a sharing policy's label names its agreement's uid)
        self.policies: dict[str, dict[tuple[str, str], dict]] = {}  # agreement uid -> (ns, name) -> its policy
        self.parties: dict[str, tuple[str, str]] = {}  # name -> (consumer, provider), for the audit trail
        self.ratings: dict[str, tuple[str, int]] = {}  # name -> (provider, score)
        self.writer = StatusWriter()
        self.controller = rt.controller("agreement", self.reconcile, workers=2, keys=lambda: list(self.bodies))

    def setup(self) -> "Agreements":
        self.rt.watch("ShareAgreement", self.agreement_event)
        self.rt.watch("NetworkPolicy", self.policy_event, sharing.LABEL_AGREEMENT)
        self.rt.every("agreement expiry", self.tick, self.rt.settings.share_check_seconds, in_thread=False)
        # deleting either tenant ends its agreements (their policies go with them)
        self.rt.on_tenant_gone.append(lambda tenant: end_agreements_of(self.api, tenant))
        return self

    # ------------------------------------------------------------------ intake (on the loop)
    def agreement_event(self, etype: str, body: dict) -> None:
        md = body["metadata"]
        name = md["name"]
        if etype == "DELETED":
            self.bodies.pop(name, None)
            self.names.pop(md.get("uid", ""), None)
            self.writer.forget(name)
            self.parties.pop(name, None)
            self.rt.views_changed()  # its parties lose it from their roles and views
            return
        old = self.bodies.get(name)
        self.bodies[name] = body
        self.names[md.get("uid", "")] = name
        # what a person changed (spec: generation), or a new one; not our own status writes
        if old is None or (old["metadata"].get("generation"), old["metadata"].get("uid")) != \
                (md.get("generation"), md.get("uid")):
            self.controller.add(name)

    def policy_event(self, etype: str, body: dict) -> None:
        md = body["metadata"]
        uid = (md.get("labels") or {}).get(sharing.LABEL_AGREEMENT)
        if not uid:
            return
        key = (md.get("namespace", ""), md["name"])
        live = self.policies.setdefault(uid, {})
        if etype == "DELETED":
            live.pop(key, None)
            if not live:
                self.policies.pop(uid, None)
        else:
            live[key] = body
        if uid in self.names:  # (a policy whose agreement is gone: the garbage collector's)
            self.controller.add(self.names[uid])

    def tick(self) -> None:
        """Active and refused agreements looked at again (low priority: behind what people did)."""
        for name, body in list(self.bodies.items()):
            if (body.get("status") or {}).get("phase") in LOOKED_AT_AGAIN:
                self.controller.add(name, low=True)

    # ------------------------------------------------------------------ reconcile (in a thread)
    def reconcile(self, name: str) -> None:
        body = self.bodies.get(name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        rt, api = self.rt, self.api
        uid = body["metadata"]["uid"]
        try:
            spec = AgreementSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            self._status(name, body, {"phase": AgreementPhase.Refused.value,
                                      "message": f"invalid: {e.errors()[0]['msg']}"})
            return
        if name not in self.parties:
            rt.views_changed()  # its parties may read it once their roles name it
        self.parties[name] = (spec.consumer, spec.provider)
        tenants = rt.cache.tenants
        consumer, provider = tenants.get(spec.consumer), tenants.get(spec.provider)
        now = dt.datetime.now(dt.timezone.utc)
        offer = self._offer(spec.offer) if spec.offer else None
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
            problem = problem or sharing.ownership_problem(spec, rt.cache.ns_owner.get)
            for side, tspec in ((spec.consumer, cspec), (spec.provider, pspec)):
                if tspec.quarantine:  # a quarantined tenant keeps no traffic but the platform's own
                    problem = f"closed while {side} is quarantined ({tspec.quarantine.reason})"
            phase, _ = sharing.phase_of(spec, now, problem, auto)
            if phase == AgreementPhase.Active:
                svc = kube.get(api, "Service", spec.service.name, spec.service.namespace)
                port = next((p for p in ((svc or {}).get("spec") or {}).get("ports", [])
                             if p.get("port") == spec.service.port), None)
                selector = ((svc or {}).get("spec") or {}).get("selector")
                if svc is None or port is None or not selector:
                    problem = (f"service {spec.service.namespace}/{spec.service.name} with port "
                               f"{spec.service.port} and a pod selector not found")
                else:
                    target = port.get("targetPort", port["port"])
                    # the consumer's egress goes into the namespaces that are its by the record only
                    mine = [ns for ns in namespace_names(spec.consumer, cspec)
                            if rt.cache.ns_owner.get(ns) == spec.consumer]
                    desired = sharing.desired_policies(name, uid, spec, selector, target, mine)
        phase, message = sharing.phase_of(spec, now, problem, auto)
        live = dict(self.policies.get(uid, {}))
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
        deadline = self._decision_deadline(name, spec, created, phase)
        self._rating(name, spec)
        self._status(name, body, {
            "phase": phase.value, "message": message,
            "policies": sorted(f"{ns}/{n}" for ns, n in wanted),
            "observedGeneration": body["metadata"].get("generation", 0),
            # while pending; the merge patch removes it once decided
            "deadline": deadline.strftime("%Y-%m-%dT%H:%M:%SZ") if deadline else None,
        })

    def _rating(self, name: str, spec: AgreementSpec) -> None:
        """好差评: each provider's ratings as two gauges (the dashboard divides them)."""
        if spec.rating is None or self.ratings.get(name) == (spec.provider, spec.rating.score):
            return
        self.ratings[name] = (spec.provider, spec.rating.score)
        scores = [score for provider, score in list(self.ratings.values()) if provider == spec.provider]
        metrics.RATING_SUM.labels(spec.provider).set(sum(scores))
        metrics.RATING_COUNT.labels(spec.provider).set(len(scores))

    def _offer(self, name: str) -> OfferSpec | None:
        """The offer as the offers' watch last saw it: no API call, even on the expiry clock."""
        spec = self.offer_spec(name)
        try:
            return OfferSpec.model_validate(spec) if spec is not None else None
        except ValidationError:
            return None

    def _decision_deadline(self, name: str, spec: AgreementSpec, opened: dt.datetime | None,
                           phase: AgreementPhase) -> dt.datetime | None:
        """限时办结 for the provider: its decision is due `agreement_days` after the request; the
        deadline is exported while pending, the time the decision took once (histogram)."""
        rt = self.rt
        due = signoff.deadline(opened, rt.settings.agreement_days)
        pending = spec.decision is None and phase == AgreementPhase.Pending  # (an offer without approval: never)
        metrics.pending_decisions("agreement", name, {spec.provider: due.timestamp() if pending and due else None})
        key = (f"agreement:{name}", 1, spec.provider)
        d = spec.decision
        if d is not None and d.at is not None and opened is not None and key not in rt.decisions_seen:
            rt.decisions_seen.add(key)
            if d.at >= rt.started:
                metrics.DECISION_SECONDS.labels("agreement", spec.provider).observe(
                    max(0.0, (d.at - opened).total_seconds()))
        return due if pending else None

    def _status(self, name: str, body: dict, status: dict) -> None:
        if self.writer.write(self.api, name, body, status) is None:
            return
        kube.event(self.api, body, "Normal", f"Agreement{status['phase']}", status["message"])
        if status["phase"] == AgreementPhase.Expired.value:
            spec = body.get("spec") or {}
            self.rt.audit.append("yunshang-operator", "AgreementExpired", ObjectRef(kind="ShareAgreement", name=name),
                                 [spec.get("consumer", ""), spec.get("provider", "")],
                                 {"expires": str(spec.get("expires"))})


def end_agreements_of(api, tenant: str) -> list[str]:
    """The agreements either side of which is ``tenant``, deleted."""
    ended = []
    for body in kube.list_all(api, "ShareAgreement"):
        spec = body.get("spec") or {}
        if tenant in (spec.get("consumer"), spec.get("provider")):
            kube.delete(api, "ShareAgreement", body["metadata"]["name"])
            ended.append(body["metadata"]["name"])
    return ended
