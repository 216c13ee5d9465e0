"""Consent-based data sharing: pure functions of an agreement (policies, phase) and a small
NetworkPolicy evaluator to check who can reach what.

An active agreement opens exactly one path: from the consumer's namespaces to the pods behind
the provider's Service, on that Service's target port.  Two NetworkPolicies do it, one on
each side (the consumer's egress, the provider's ingress); both carry the agreement's uid.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Callable, Iterable, Mapping

from .models.agreement import AgreementPhase, AgreementSpec, OfferSpec
from .models.tenant import API_VERSION, Classification, Decision
from .tenancy import LABEL_TENANT, MANAGED_BY

LABEL_AGREEMENT = "platform.yunshang.io/agreement-uid"
CLEARANCE = {Classification.public: 0, Classification.internal: 1, Classification.sensitive: 2, Classification.secret: 3}


def classification_problem(provider: Classification, consumer: Classification) -> str | None:
    """Data flows only to a tenant cleared for it: the consumer's level must be at least the provider's."""
    if CLEARANCE[consumer] < CLEARANCE[provider]:
        return (f"the platform forbids sharing {provider.value} data with a {consumer.value} tenant "
                "(the consumer's classification must be at least the provider's)")
    return None


def offer_problem(spec: AgreementSpec, offer: OfferSpec | None, created: dt.datetime | None,
                  consumer: Classification | None = None) -> str | None:
    """Why an agreement made from an offer may not open (the operator's check beside the API server's)."""
    if spec.offer is None:
        return None
    if offer is None:
        return f"offer {spec.offer} does not exist"
    if offer.withdrawn is not None and created is not None and offer.withdrawn.at is not None \
            and created > offer.withdrawn.at:
        return f"offer {spec.offer} was withdrawn before this request"
    if offer.provider != spec.provider or offer.service != spec.service:
        return f"offer {spec.offer} is for {offer.service.namespace}/{offer.service.name}:{offer.service.port} only"
    expires = spec.expires if spec.expires.tzinfo else spec.expires.replace(tzinfo=dt.timezone.utc)
    if created is not None and expires > created + dt.timedelta(days=offer.max_days):
        return f"offer {spec.offer} grants at most {offer.max_days} days"
    if consumer is not None:
        return classification_problem(offer.classification, consumer)
    return None


def ownership_problem(spec: AgreementSpec, owner_of: Callable[[str], str | None]) -> str | None:
    """The provider is whoever owns the Service's namespace by the operator's record (the namespace's
    tenant label), never whoever's name is a prefix of the namespace's name."""
    ns = spec.service.namespace
    owner = owner_of(ns)
    if owner == spec.provider:
        return None
    whose = f"tenant {owner}" if owner else "no tenant"
    return f"namespace {ns} belongs to {whose}, not to provider {spec.provider}: nothing was opened"


def auto_approved(spec: AgreementSpec, offer: OfferSpec | None) -> bool:
    """An offer that needs no approval per consumer is the provider's consent itself."""
    return spec.offer is not None and offer is not None and not offer.approval_required


def phase_of(spec: AgreementSpec, now: dt.datetime, problem: str | None = None,
             auto: bool = False) -> tuple[AgreementPhase, str]:
    if spec.revoked:
        return AgreementPhase.Revoked, f"revoked by {spec.revoked.by}: {spec.revoked.reason}".rstrip(": ")
    if spec.decision and spec.decision.decision == Decision.Rejected:
        return AgreementPhase.Rejected, f"rejected by {spec.decision.by}: {spec.decision.reason}"
    expires = spec.expires if spec.expires.tzinfo else spec.expires.replace(tzinfo=dt.timezone.utc)
    if now >= expires:
        return AgreementPhase.Expired, f"expired at {expires.isoformat()}"
    if spec.decision is None and not auto:
        return AgreementPhase.Pending, f"waiting for {spec.provider}'s owners to approve"
    if problem:
        return AgreementPhase.Refused, problem
    return AgreementPhase.Active, (f"{spec.consumer} may reach {spec.service.namespace}/{spec.service.name}:"
                                   f"{spec.service.port} until {expires.isoformat()}")


def policy_name(agreement: str) -> str:
    return f"share-{agreement}"[:253]


def desired_policies(
    agreement: str,
    uid: str,
    spec: AgreementSpec,
    selector: Mapping[str, str],
    target_port: int | str,
    consumer_namespaces: Iterable[str],
) -> list[dict[str, Any]]:
    """The provider's ingress and the consumer's egress policies of an active agreement."""
    meta = {
        "labels": {LABEL_AGREEMENT: uid, **MANAGED_BY},
        "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ShareAgreement", "name": agreement, "uid": uid,
                             "controller": True, "blockOwnerDeletion": True}],
    }
    port = [{"port": target_port, "protocol": spec.service.protocol}]
    out = [{
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(agreement), "namespace": spec.service.namespace, **meta},
        "spec": {
            "podSelector": {"matchLabels": dict(selector)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {LABEL_TENANT: spec.consumer}}}], "ports": port}],
        },
    }]
    for ns in sorted(consumer_namespaces):
        out.append({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": policy_name(agreement), "namespace": ns, **meta},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": spec.service.namespace}},
                        "podSelector": {"matchLabels": dict(selector)},
                    }],
                    "ports": port,
                }],
            },
        })
    return out


# ---------------------------------------------------------------------------- reachability

@dataclasses.dataclass(frozen=True)
class Pod:
    namespace: str
    labels: tuple[tuple[str, str], ...]

    def has(self, selector: Mapping[str, str] | None) -> bool:
        return all((k, v) in self.labels for k, v in (selector or {}).items())


def _ns_matches(sel: Mapping[str, Any] | None, ns_labels: Mapping[str, str]) -> bool:
    want = (sel or {}).get("matchLabels") or {}
    return all(ns_labels.get(k) == v for k, v in want.items())


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, pod: Pod, ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    if "namespaceSelector" in peer:
        if not _ns_matches(peer["namespaceSelector"], ns_labels[pod.namespace]):
            return False
    elif pod.namespace != policy_ns:
        return False
    return pod.has((peer.get("podSelector") or {}).get("matchLabels"))


def _ports_match(ports: list[dict] | None, port: int | str, protocol: str) -> bool:
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def _direction_allows(policies: list[dict], subject: Pod, other: Pod, direction: str, port, protocol,
                      ns_labels) -> bool:
    kind, key, peers = ("Ingress", "ingress", "from") if direction == "in" else ("Egress", "egress", "to")
    selecting = [p for p in policies
                 if p["metadata"]["namespace"] == subject.namespace
                 and kind in p["spec"].get("policyTypes", ["Ingress"])
                 and subject.has(p["spec"].get("podSelector", {}).get("matchLabels"))]
    if not selecting:
        return True  # not isolated in this direction
    for p in selecting:
        for rule in p["spec"].get(key) or []:
            if not _ports_match(rule.get("ports"), port, protocol):
                continue
            if peers not in rule or any(_peer_matches(peer, p["metadata"]["namespace"], other, ns_labels)
                                        for peer in rule[peers]):
                return True
    return False


def allowed(policies: list[dict], src: Pod, dst: Pod, port: int | str, protocol: str,
            ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
    """NetworkPolicy semantics: the source's egress and the destination's ingress must both allow."""
    return (_direction_allows(policies, src, dst, "out", port, protocol, ns_labels)
            and _direction_allows(policies, dst, src, "in", port, protocol, ns_labels))
