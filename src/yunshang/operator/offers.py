"""The catalogue (目录) in the operator: one binding of the offer-terms admission policy per offer,
so that the API server holds every agreement made from it to its terms; a withdrawal that says
so revokes the agreements made from the offer."""
from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

import kopf

from .. import policies
from ..models.agreement import OFFER_LABEL
from ..models.tenant import GROUP, VERSION
from . import kube
from .handlers import reconciler

OFFERS = (GROUP, VERSION, "shareoffers")
log = logging.getLogger("yunshang.offers")


@kopf.index(*OFFERS)
def offer_index(name: str, spec: kopf.Spec, **_: Any) -> dict[str, dict]:
    """The catalogue as the operator last saw it (sharing.py reads an agreement's offer here)."""
    return {name: copy.deepcopy(dict(spec))}


@kopf.on.resume(*OFFERS)
@kopf.on.create(*OFFERS)
@kopf.on.update(*OFFERS, field="spec")
def offer_changed(name: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    r = reconciler(memo)
    binding = policies.offer_binding(name)
    live = kube.get(r.api, "ValidatingAdmissionPolicyBinding", binding["metadata"]["name"])
    if live is None or live.get("spec") != binding["spec"]:
        kube.apply(r.api, binding)
    withdrawn = spec.get("withdrawn") or {}
    if withdrawn.get("existing") == "Revoke":
        revoke_agreements_of(r, name, withdrawn)


def revoke_agreements_of(r, offer: str, withdrawn: dict) -> list[str]:
    """The provider withdrew the offer and ended what was made from it."""
    ended = []
    for body in kube.list_all(r.api, "ShareAgreement", label_selector=f"{OFFER_LABEL}={offer}"):
        spec = body.get("spec") or {}
        if spec.get("revoked") or (body.get("status") or {}).get("phase") in ("Expired", "Rejected", "Revoked"):
            continue
        name = body["metadata"]["name"]
        kube.patch(r.api, "ShareAgreement", name, {"spec": {"revoked": {
            "by": withdrawn.get("by") or "provider", "reason": f"offer {offer} withdrawn: {withdrawn.get('reason', '')}".rstrip(": "),
            "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}})
        ended.append(name)
    if ended:
        log.info("offer %s withdrawn: revoked %s", offer, ", ".join(ended))
    return ended


@kopf.on.delete(*OFFERS, optional=True)
def offer_deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
    """Without its offer an agreement's binding would deny everything (parameterNotFoundAction: Deny),
    which is right for new requests; existing agreements made from it keep their terms."""
    kube.delete(reconciler(memo).api, "ValidatingAdmissionPolicyBinding", policies.offer_binding(name)["metadata"]["name"])
