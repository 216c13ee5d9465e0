"""The catalogue (目录) in the operator: one binding of the offer-terms admission policy per offer,
so that the API server holds every agreement made from it to its terms; a withdrawal that says
so revokes the agreements made from the offer.  On the runtime: a watch of the offers (their
specs, which the agreements read too), a controller that keeps each offer's binding."""
from __future__ import annotations

import datetime as dt
import logging

from .. import policies
from ..models.agreement import OFFER_LABEL
from .. import kube
from .runtime.manager import Runtime

log = logging.getLogger("yunshang.offers")


class Offers:
    def __init__(self, rt: Runtime):
        self.rt, self.api = rt, rt.api
        self.specs: dict[str, dict] = {}  # name -> spec, as last seen
        self.controller = rt.controller("offer", self.reconcile, workers=1, keys=lambda: list(self.specs))

    def setup(self) -> "Offers":
        self.rt.watch("ShareOffer", self.event)
        return self

    def spec(self, name: str) -> dict | None:
        return self.specs.get(name)

    def event(self, etype: str, body: dict) -> None:
        md = body["metadata"]
        name = md["name"]
        if etype == "DELETED":
            self.specs.pop(name, None)
            self.controller.add(name)
            return
        spec = dict(body.get("spec") or {})
        if self.specs.get(name) != spec:  # new, or its spec changed
            self.specs[name] = spec
            self.controller.add(name)

    def reconcile(self, name: str) -> None:
        spec = self.specs.get(name)
        binding = policies.offer_binding(name)
        if spec is None:
            # without its offer an agreement's binding would deny everything (parameterNotFoundAction:
            # Deny), which is right for new requests; existing agreements made from it keep their terms
            kube.delete(self.api, "ValidatingAdmissionPolicyBinding", binding["metadata"]["name"])
            return
        live = kube.get(self.api, "ValidatingAdmissionPolicyBinding", binding["metadata"]["name"])
        if live is None or live.get("spec") != binding["spec"]:
            kube.apply(self.api, binding)
        withdrawn = spec.get("withdrawn") or {}
        if withdrawn.get("existing") == "Revoke":
            revoke_agreements_of(self.api, name, withdrawn)


def revoke_agreements_of(api, offer: str, withdrawn: dict) -> list[str]:
    """The provider withdrew the offer and ended what was made from it."""
    ended = []
    for body in kube.list_all(api, "ShareAgreement", label_selector=f"{OFFER_LABEL}={offer}"):
        spec = body.get("spec") or {}
        if spec.get("revoked") or (body.get("status") or {}).get("phase") in ("Expired", "Rejected", "Revoked"):
            continue
        name = body["metadata"]["name"]
        kube.patch(api, "ShareAgreement", name, {"spec": {"revoked": {
            "by": withdrawn.get("by") or "provider", "reason": f"offer {offer} withdrawn: {withdrawn.get('reason', '')}".rstrip(": "),
            "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}})
        ended.append(name)
    if ended:
        log.info("offer %s withdrawn: revoked %s", offer, ", ".join(ended))
    return ended
