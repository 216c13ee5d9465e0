"""Who may do what with tenants: RBAC and a ValidatingAdmissionPolicy (CEL on userInfo).

The API server enforces these, whatever client is used:
- a department (group ``yunshang:departments`` plus its own ``yunshang:dept:<tenant>``) may
  request its own tenant and edit it while pending, but never approve or reject it, never
  change an approved quota or elastic ceiling, never suspend or resume, never touch another
  department's tenant, and never delete;
- the platform bureau (``yunshang:platform-admins``) may do all of it;
- the operator's service account may update status and metadata.

    python -m yunshang.policies            # rewrite operator/policies/
    python -m yunshang.policies --check    # exit 1 if the checked-in manifests drifted
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .models.audit import DEFAULT_ANCHOR
from .models.agreement import OFFER_LABEL
from .models.tenant import ADMIN_GROUP, DEPARTMENTS_GROUP, DEPT_GROUP_PREFIX, GROUP, TenantSpec
from .signoff import DEFAULT_ROLES, REVIEWER_GROUP_PREFIX
from .views import VIEWS_NAMESPACE
from .tenancy import (
    ANN_EXTERNAL_IPS,
    ANN_HOSTNAMES,
    ANN_INGRESS_CLASSES,
    ANN_REGISTRIES,
    ANN_SERVICE_TYPES,
    ANN_STORAGE_CLASSES,
    LABEL_RETAINED,
    LABEL_TENANT,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    MONITORING_NAMESPACE,
    SYSTEM_NAMESPACE,
    DEFAULT_HOST_SUFFIXES,
)

OPERATOR_SA = "yunshang-operator"
OPERATOR_LEASE = "yunshang-operator"  # the leader election's Lease, in SYSTEM_NAMESPACE
OPERATOR_WEBHOOK_SERVICE = "yunshang-operator-webhook"  # its webhooks' Service (the leader's address), ditto
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR_SA}"
PROMETHEUS_USER = "yunshang-prometheus"  # the local platform's Prometheus client certificate
POLICY = "yunshang-tenant-governance"

# spec fields a department may never change once a reviewer has decided on its request
FROZEN_AFTER_APPROVAL = ["level", "parent", "namespaces", "department", "classification", "allowed", "reviewDate"]
# ... and these only by asking again: raising spec.requestRound by one (a new round of sign-off)
ASKED_AGAIN = ["quota", "elastic"]
SIGNOFF_POLICY = "yunshang-tenant-signoff"


def _opt(var: str, field: str) -> str:
    return f"has({var}.spec.{field})"


NOT_THE_PLATFORM = {
    "name": "not-the-platform",
    "expression": (f"!('{ADMIN_GROUP}' in request.userInfo.groups) && "
                   "!('system:masters' in request.userInfo.groups) && "
                   f"request.userInfo.username != '{OPERATOR_USER}'"),
}


def _vap(name: str, resource: str, operations: list[str], validations: list[dict], *,
         match_conditions: list[dict] | None = None, variables: list[dict] | None = None) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy on one of our resources, and its Deny binding."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{
            "apiGroups": [GROUP], "apiVersions": ["*"], "operations": operations, "resources": [resource]}]},
    }
    if match_conditions:
        spec["matchConditions"] = match_conditions
    if variables:
        spec["variables"] = variables
    spec["validations"] = validations
    return _with_binding(name, spec)


def _with_binding(name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and the binding that makes it deny."""
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": name}, "spec": spec},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": name}, "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]


def _same(fields: list[str]) -> str:
    return " && ".join(
        f"(has(object.spec.{f}) == has(oldObject.spec.{f}) && (!has(object.spec.{f}) || object.spec.{f} == oldObject.spec.{f}))"
        for f in fields)


def admission_policy() -> list[dict[str, Any]]:
    # decided: legacy approval, or any reviewer's decision on any round
    decided_old = (
        f"request.operation == 'UPDATE' && (({_opt('oldObject', 'approval')} "
        "&& oldObject.spec.approval.decision == 'Approved') || "
        f"({_opt('oldObject', 'signoffs')} && size(oldObject.spec.signoffs) > 0))"
    )
    frozen = _same(FROZEN_AFTER_APPROVAL)
    asked_again = (f"({_same(ASKED_AGAIN)}) || "
                   "(has(object.spec.requestRound) ? object.spec.requestRound : 1) == "
                   "(has(oldObject.spec.requestRound) ? oldObject.spec.requestRound : 1) + 1")
    susp = "(has(object.spec.suspended) && object.spec.suspended == true)"
    old_susp = "(request.operation == 'UPDATE' && has(oldObject.spec.suspended) && oldObject.spec.suspended == true)"
    reviewer_only = (f"request.userInfo.groups.exists(g, g.startsWith('{REVIEWER_GROUP_PREFIX}')) && "
                     f"!(('{DEPT_GROUP_PREFIX}' + object.metadata.name) in request.userInfo.groups)")
    return _vap(
        POLICY,
        'tenants',
        ['CREATE', 'UPDATE'],
        [
                {
                    "expression": "variables.deptGroup in request.userInfo.groups",
                    "messageExpression": (
                        "'only members of ' + variables.deptGroup + ' may request or edit tenant ' + object.metadata.name"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": (
                        f"request.operation == 'CREATE' ? !{_opt('object', 'approval')} : "
                        f"(({_opt('object', 'approval')}) == ({_opt('oldObject', 'approval')}) && "
                        f"(!{_opt('object', 'approval')} || object.spec.approval == oldObject.spec.approval))"
                    ),
                    "message": "a department cannot approve or reject a tenant: the reviewers sign off (`yunshang tenant approve`)",
                    "reason": "Forbidden",
                },
                {
                    "expression": f"!({decided_old}) || ({frozen})",
                    "message": (
                        "once a reviewer has decided, a tenant's level, parent, namespaces, department, classification, "
                        "allowances and review date can be changed by the platform bureau only"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": f"!({decided_old}) || ({asked_again})",
                    "message": (
                        "once a reviewer has decided, more quota or a new elastic ceiling is a new request: raise "
                        "spec.requestRound by one with it (`yunshang tenant quota` does) and the reviewers sign off again"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": f"{susp} == {old_susp}",
                    "message": "only the platform bureau may suspend or resume a tenant",
                    "reason": "Forbidden",
                },
                {
                    "expression": (
                        "request.operation == 'CREATE' ? !has(object.spec.quarantine) : "
                        "(has(object.spec.quarantine) == has(oldObject.spec.quarantine) && "
                        "(!has(object.spec.quarantine) || object.spec.quarantine == oldObject.spec.quarantine))"
                    ),
                    "message": "only the platform may quarantine a tenant or lift a quarantine (`yunshang tenant resume`)",
                    "reason": "Forbidden",
                },
            ],
        # reviewers who are not the department are held by the sign-off policy instead
        match_conditions=[NOT_THE_PLATFORM, {"name": "not-a-reviewer", "expression": f"!({reviewer_only})"}],
        variables=[{"name": "deptGroup", "expression": f"'{DEPT_GROUP_PREFIX}' + object.metadata.name"}],
    )


def signoff_policy() -> list[dict[str, Any]]:
    """Parallel sign-off, for everyone but the operator and system:masters (platform admins included): a decision is
    recorded only by a member of its role's group, as itself, for the current round and quota,
    once per role and round, and is never changed or removed; spec.approval is no longer given;
    a reviewer who is not the department changes nothing but the sign-offs."""
    others = [f for f in (TenantSpec.model_fields[n].alias or n for n in TenantSpec.model_fields) if f != "signoffs"]
    only_signoffs = _same(others)
    return _vap(
        SIGNOFF_POLICY,
        "tenants",
        ["CREATE", "UPDATE"],
        [
            {"expression": "variables.old.all(o, o in variables.new)",
             "message": "a recorded sign-off can be neither changed nor removed", "reason": "Forbidden"},
            {"expression": (f"variables.new.all(d, d in variables.old || (('{REVIEWER_GROUP_PREFIX}' + d.role) in "
                            "request.userInfo.groups && d.by == request.userInfo.username))"),
             "messageExpression": (f"'only members of {REVIEWER_GROUP_PREFIX}<role> may record the decision of that role, "
                                   "as themselves (you are ' + request.userInfo.username + ')'"),
             "reason": "Forbidden"},
            {"expression": ("variables.new.all(d, d in variables.old || (d.round == variables.round && "
                            "(!has(object.spec.quota) || d.quota == object.spec.quota)))"),
             "message": "a sign-off answers the current round (spec.requestRound) and the quota asked in it",
             "reason": "Invalid"},
            {"expression": "variables.new.all(d, variables.new.exists_one(e, e.role == d.role && e.round == d.round))",
             "message": "each role decides once per round", "reason": "Invalid"},
            {"expression": ("request.operation == 'CREATE' ? variables.round == 1 : "
                            "(variables.round == variables.oldRound || variables.round == variables.oldRound + 1)"),
             "message": "spec.requestRound starts at 1 and goes up by one for each new request", "reason": "Invalid"},
            {"expression": (f"request.operation == 'CREATE' || (({_opt('object', 'approval')}) == ({_opt('oldObject', 'approval')}) && "
                            f"(!{_opt('object', 'approval')} || object.spec.approval == oldObject.spec.approval))"),
             "message": ("a tenant is approved by parallel sign-off now (`yunshang tenant approve NAME --role ROLE`); "
                         "spec.approval can no longer be added or changed"),
             "reason": "Forbidden"},
            {"expression": f"!variables.reviewerOnly || (request.operation == 'UPDATE' && {only_signoffs})",
             "message": "a reviewer records sign-offs and changes nothing else of a department's tenant",
             "reason": "Forbidden"},
            # nobody but the operator and system:masters creates a tenant already decided (platform admins too)
            {"expression": ("request.operation != 'CREATE' || (!has(object.spec.approval) && size(variables.new) == 0)"),
             "messageExpression": ("'tenant ' + object.metadata.name + ': a new tenant cannot carry an approval or "
                                   "sign-offs (' + request.userInfo.username + ' tried); create it, then each reviewer "
                                   "role signs off (`yunshang tenant approve`)'"),
             "reason": "Forbidden"},
            # separation of duties: never sign for a department whose group or owners you belong to
            {"expression": ("variables.new.all(d, d in variables.old || (!(variables.deptGroup in "
                            "request.userInfo.groups) && !variables.owner))"),
             "messageExpression": ("'tenant ' + object.metadata.name + ': ' + request.userInfo.username + ' belongs to "
                                   "the department (' + variables.deptGroup + ' or its owners) and cannot sign off its "
                                   "request; another member of the role decides'"),
             "reason": "Forbidden"},
            # more than the approved ceiling is a new request, for platform admins too (within it the
            # bureau adjusts without a round)
            {"expression": (f"request.operation != 'UPDATE' || variables.round != variables.oldRound || "
                            f"!variables.decided || ({_same(['elastic'])} && {_quota_within_old_ceiling()})"),
             "messageExpression": ("'tenant ' + object.metadata.name + ': quota above the approved ceiling, or a new "
                                   "elastic ceiling, is a new request even for the platform bureau: raise "
                                   "spec.requestRound by one with it (`yunshang tenant quota`) and the reviewers sign "
                                   "off again'"),
             "reason": "Forbidden"},
        ],
        # the operator writes a legacy approval down as sign-offs; system:masters is break-glass
        match_conditions=[{"name": "not-the-operator",
                           "expression": (f"request.userInfo.username != '{OPERATOR_USER}' && "
                                          "!('system:masters' in request.userInfo.groups)")}],
        variables=[
            {"name": "old", "expression": ("request.operation == 'UPDATE' && has(oldObject.spec.signoffs) ? "
                                           "oldObject.spec.signoffs : []")},
            {"name": "new", "expression": "has(object.spec.signoffs) ? object.spec.signoffs : []"},
            {"name": "round", "expression": "has(object.spec.requestRound) ? object.spec.requestRound : 1"},
            {"name": "oldRound", "expression": ("request.operation == 'UPDATE' && has(oldObject.spec.requestRound) ? "
                                                "oldObject.spec.requestRound : 1")},
            {"name": "deptGroup", "expression": f"'{DEPT_GROUP_PREFIX}' + object.metadata.name"},
            {"name": "owner", "expression": (
                "has(object.spec.owners) && object.spec.owners.exists(o, (o.kind == 'User' && o.name == "
                "request.userInfo.username) || (o.kind == 'Group' && o.name in request.userInfo.groups))")},
            {"name": "decided", "expression": (
                "request.operation == 'UPDATE' && ((has(oldObject.spec.approval) && "
                "oldObject.spec.approval.decision == 'Approved') || size(variables.old) > 0)")},
            {"name": "reviewerOnly", "expression": (
                f"request.userInfo.groups.exists(g, g.startsWith('{REVIEWER_GROUP_PREFIX}')) && "
                f"!(('{DEPT_GROUP_PREFIX}' + object.metadata.name) in request.userInfo.groups) && "
                f"!('{ADMIN_GROUP}' in request.userInfo.groups) && !('system:masters' in request.userInfo.groups)")},
        ],
    )


QUOTA_FIELDS = ["cpu", "memory", "storage", "pods", "services", "configmaps", "secrets", "persistentvolumeclaims"]


def _quota_within_old_ceiling() -> str:
    """CEL: every resource of the new quota is at most what the old spec's ceiling allowed (the
    elastic ceiling where it names the resource, else the old quota)."""
    def amount(expr: str) -> str:
        return f"quantity(string({expr}))"

    from .models.tenant import Quota

    defaults = Quota().model_dump()
    checks = []
    for f in QUOTA_FIELDS:
        new, old = f"object.spec.quota.{f}", f"oldObject.spec.quota.{f}"
        # a field left out of the old spec had the model's default
        old_amount = f"(has(oldObject.spec.quota) && has({old}) ? {amount(old)} : quantity('{defaults[f]}'))"
        ceiling = (f"(has(oldObject.spec.elastic) && has(oldObject.spec.elastic.ceiling) && "
                   f"has(oldObject.spec.elastic.ceiling.{f}) ? {amount('oldObject.spec.elastic.ceiling.' + f)} : "
                   f"{old_amount})")
        checks.append(f"(!has(object.spec.quota) || !has({new}) || {amount(new)}.compareTo({ceiling}) <= 0)")
    return " && ".join(checks)


AGREEMENT_POLICY = "yunshang-sharing-consent"


def agreement_policy() -> list[dict[str, Any]]:
    """The consumer applies, the provider decides, either side may revoke; nobody edits the terms
    once the provider has decided."""
    consumer = f"'{DEPT_GROUP_PREFIX}' + object.spec.consumer in request.userInfo.groups"
    provider = f"'{DEPT_GROUP_PREFIX}' + object.spec.provider in request.userInfo.groups"
    terms = " && ".join(f"object.spec.{f} == oldObject.spec.{f}"
                        for f in ("consumer", "provider", "service", "purpose", "expires"))
    return _vap(
        AGREEMENT_POLICY,
        'shareagreements',
        ['CREATE', 'UPDATE'],
        [
                {"expression": f"request.operation != 'CREATE' || ({consumer})",
                 "messageExpression": "'only members of yunshang:dept:' + object.spec.consumer + ' may apply for this agreement'",
                 "reason": "Forbidden"},
                {"expression": "request.operation != 'CREATE' || (!has(object.spec.decision) && !has(object.spec.revoked))",
                 "message": "a new agreement cannot carry a decision or a revocation", "reason": "Forbidden"},
                {"expression": f"request.operation != 'UPDATE' || {_same(['decision'])} || ({provider})",
                 "messageExpression": "'only the provider (yunshang:dept:' + object.spec.provider + ') may approve or reject'",
                 "reason": "Forbidden"},
                {"expression": f"request.operation != 'UPDATE' || {_same(['revoked'])} || ({provider}) || ({consumer})",
                 "message": "only the consumer's or the provider's owners may revoke an agreement", "reason": "Forbidden"},
                {"expression": f"request.operation != 'UPDATE' || ({terms}) || (!has(oldObject.spec.decision) && ({consumer}))",
                 "message": "the terms of an agreement (sides, service, purpose, expiry) are fixed once the provider decided",
                 "reason": "Forbidden"},
                {"expression": (f"!has(object.spec.offer) || (has(object.metadata.labels) && "
                                f"'{OFFER_LABEL}' in object.metadata.labels && "
                                f"object.metadata.labels['{OFFER_LABEL}'] == object.spec.offer)"),
                 "message": f"an agreement made from an offer carries the label {OFFER_LABEL}=<offer> (`yunshang share request --offer` sets it)",
                 "reason": "Invalid"},
                {"expression": (f"request.operation != 'UPDATE' || ({_same(['offer'])} && "
                                f"(has(object.metadata.labels) && '{OFFER_LABEL}' in object.metadata.labels) == "
                                f"(has(oldObject.metadata.labels) && '{OFFER_LABEL}' in oldObject.metadata.labels) && "
                                f"(!(has(object.metadata.labels) && '{OFFER_LABEL}' in object.metadata.labels) || "
                                f"object.metadata.labels['{OFFER_LABEL}'] == oldObject.metadata.labels['{OFFER_LABEL}']))"),
                 "message": "the offer an agreement was made from is fixed", "reason": "Forbidden"},
            ],
        match_conditions=[NOT_THE_PLATFORM],
    )


OFFER_POLICY = "yunshang-offer-governance"
OFFER_TERMS_POLICY = "yunshang-offer-terms"
RATING_POLICY = "yunshang-agreement-rating"


def offer_policy() -> list[dict[str, Any]]:
    """A provider department publishes and withdraws its own offers; what is offered (provider,
    service) never changes, and a withdrawal is final."""
    provider = f"'{DEPT_GROUP_PREFIX}' + object.spec.provider in request.userInfo.groups"
    return _vap(
        OFFER_POLICY, "shareoffers", ["CREATE", "UPDATE"],
        [
            {"expression": provider,
             "messageExpression": "'only members of yunshang:dept:' + object.spec.provider + ' may offer its services'",
             "reason": "Forbidden"},
            {"expression": f"request.operation != 'UPDATE' || ({_same(['provider'])} && {_same(['service'])})",
             "message": "an offer's provider and service are fixed: withdraw it and publish a new one", "reason": "Forbidden"},
            {"expression": "request.operation != 'CREATE' || !has(object.spec.withdrawn)",
             "message": "a new offer cannot be withdrawn already", "reason": "Invalid"},
            {"expression": ("request.operation != 'UPDATE' || !has(oldObject.spec.withdrawn) || "
                            "oldObject.spec == object.spec"),
             "message": "a withdrawn offer is final: publish a new one", "reason": "Forbidden"},
        ],
        match_conditions=[NOT_THE_PLATFORM],
    )


def offer_terms_policy() -> list[dict[str, Any]]:
    """An agreement made from an offer stays within the offer's terms: the offer is the policy's
    parameter.  The operator binds it once per offer (objectSelector: the agreement's offer label,
    paramRef: the offer); the agreement policy makes an agreement that names an offer carry that
    label, so it cannot slip past its binding."""
    return [{
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": OFFER_TERMS_POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ShareOffer"},
            "matchConstraints": {"resourceRules": [{"apiGroups": [GROUP], "apiVersions": ["*"],
                                                    "operations": ["CREATE", "UPDATE"],
                                                    "resources": ["shareagreements"]}]},
            "validations": [
                {"expression": "request.operation != 'CREATE' || !has(params.spec.withdrawn)",
                 "messageExpression": "'offer ' + params.metadata.name + ' was withdrawn: it takes no new requests'",
                 "reason": "Forbidden"},
                {"expression": ("object.spec.provider == params.spec.provider && "
                                "object.spec.service == params.spec.service"),
                 "messageExpression": ("'an agreement from offer ' + params.metadata.name + ' is for exactly its "
                                       "service: ' + params.spec.service.namespace + '/' + params.spec.service.name + "
                                       "':' + string(params.spec.service.port)"),
                 "reason": "Invalid"},
                {"expression": ("timestamp(object.spec.expires) <= timestamp(object.metadata.creationTimestamp) + "
                                "duration(string(params.spec.maxDays * 24) + 'h')"),
                 "messageExpression": ("'offer ' + params.metadata.name + ' grants at most ' + "
                                       "string(params.spec.maxDays) + ' days: choose an earlier expiry'"),
                 "reason": "Invalid"},
            ],
        },
    }]


def offer_binding(offer: str) -> dict[str, Any]:
    """The binding the operator keeps for one offer (see offer_terms_policy)."""
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"{OFFER_TERMS_POLICY}.{offer}", "labels": {"app.kubernetes.io/part-of": "yunshang",
                                                                           "app.kubernetes.io/managed-by": "yunshang"}},
            "spec": {"policyName": OFFER_TERMS_POLICY, "validationActions": ["Deny"],
                     "paramRef": {"name": offer, "parameterNotFoundAction": "Deny"},
                     "matchResources": {"objectSelector": {"matchLabels": {OFFER_LABEL: offer}}}}}


def rating_policy() -> list[dict[str, Any]]:
    """好差评: the consumer rates an agreement's service once, after it ended, as itself."""
    consumer = f"'{DEPT_GROUP_PREFIX}' + object.spec.consumer in request.userInfo.groups"
    return _vap(
        RATING_POLICY, "shareagreements", ["CREATE", "UPDATE"],
        [
            {"expression": "request.operation != 'CREATE' || !has(object.spec.rating)",
             "message": "an agreement is rated after it ended", "reason": "Invalid"},
            {"expression": (f"request.operation != 'UPDATE' || {_same(['rating'])} || "
                            f"(!has(oldObject.spec.rating) && ({consumer}) && object.spec.rating.by == request.userInfo.username "
                            "&& has(oldObject.status) && has(oldObject.status.phase) && "
                            "oldObject.status.phase in ['Expired', 'Revoked'])"),
             "message": ("only the consumer's owners rate an agreement, as themselves, once, after it expired or was "
                         "revoked (`yunshang share rate`)"),
             "reason": "Forbidden"},
        ],
        match_conditions=[{"name": "not-the-operator",
                           "expression": (f"request.userInfo.username != '{OPERATOR_USER}' && "
                                          "!('system:masters' in request.userInfo.groups)")}],
    )


AUDIT_POLICY = "yunshang-audit-append-only"


def audit_policy() -> list[dict[str, Any]]:
    """Audit records are written by the operator only and never changed or removed by anyone
    (a ValidatingAdmissionPolicy binds system:masters too)."""
    return _vap(
        AUDIT_POLICY,
        'auditrecords',
        ['CREATE', 'UPDATE', 'DELETE'],
        [
                {"expression": "request.operation == 'CREATE'",
                 "message": "the audit trail is append-only: records cannot be changed or removed",
                 "reason": "Forbidden"},
                {"expression": (f"request.userInfo.username == '{OPERATOR_USER}' || "
                                "'system:masters' in request.userInfo.groups"),
                 "message": "only the operator appends to the audit trail", "reason": "Forbidden"},
            ],
    )


CONTROLS_POLICY = "yunshang-tenant-controls"
PROTECT_POLICY = "yunshang-platform-objects"
# when a tenant names no registry: the platform's own (stack config yunshang:defaultRegistries)
DEFAULT_REGISTRIES = ["registry.gz.gov.local"]
TENANT_NAMESPACES = {"matchExpressions": [{"key": LABEL_TENANT, "operator": "Exists"}]}
# who may change the platform's objects in tenant namespaces, besides the platform itself: the
# controllers that delete a namespace's contents or a deleted owner's children
SYSTEM_CLEANERS = ["system:serviceaccount:kube-system:namespace-controller",
                   "system:serviceaccount:kube-system:generic-garbage-collector"]


def _namespaced_vap(name: str, rules: list[dict], validations: list[dict], *, variables: list[dict],
                    match_conditions: list[dict] | None = None) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy on built-in resources in tenant namespaces, and its Deny binding."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {"namespaceSelector": TENANT_NAMESPACES, "resourceRules": rules},
        "variables": variables,
        "validations": validations,
    }
    if match_conditions:
        spec["matchConditions"] = match_conditions
    return _with_binding(name, spec)


def _allowance(annotation: str, default: list[str] | None = None) -> str:
    """CEL: the namespace's allowance list, kept by the operator as a comma-separated annotation."""
    ann = f"namespaceObject.metadata.annotations['{annotation}']"
    present = (f"has(namespaceObject.metadata.annotations) && '{annotation}' in namespaceObject.metadata.annotations "
               f"&& {ann} != ''")
    fallback = "[" + ", ".join(f"'{d}'" for d in (default or [])) + "]"
    return f"{present} ? {ann}.split(',') : {fallback}"


def _shown(var: str) -> str:
    return f"(size({var}) == 0 ? 'none' : {var}.join(', '))"


def _hostnames_allowance(suffixes: list[str]) -> str:
    """CEL: the hostnames the namespace's tenant may serve: its allowance, else its own name under
    each of the platform's suffixes (tenancy.default_hostnames)."""
    ann = f"namespaceObject.metadata.annotations['{ANN_HOSTNAMES}']"
    present = (f"has(namespaceObject.metadata.annotations) && '{ANN_HOSTNAMES}' in namespaceObject.metadata.annotations "
               f"&& {ann} != ''")
    t = f"namespaceObject.metadata.labels['{LABEL_TENANT}']"
    fallback = "[" + ", ".join(f"{t} + '.{sfx}', '*.' + {t} + '.{sfx}'" for sfx in suffixes) + "]"
    return f"{present} ? {ann}.split(',') : {fallback}"


def tenant_controls(default_registries: list[str] | None = None,
                    host_suffixes: list[str] | None = None) -> list[dict[str, Any]]:
    """What a tenant may use, from its namespace's allowances (annotations the operator keeps
    from `spec.allowed`): images only from allowed registries (or the platform's default list),
    PVCs only of allowed storage classes, Ingresses only of allowed classes, no NodePort or
    LoadBalancer Service unless allowed.  Workload templates are checked too, so a Deployment
    is refused at once rather than its pods later."""
    registries = default_registries if default_registries is not None else DEFAULT_REGISTRIES
    suffixes = host_suffixes if host_suffixes is not None else DEFAULT_HOST_SUFFIXES
    allowed_host = ("variables.hostnames.exists(a, a == {h} || (a.startsWith('*.') && {h}.endsWith(a.substring(1))))")
    rule_hosts = ("object.kind == 'Ingress' && has(object.spec.rules) ? "
                  "object.spec.rules.filter(r, has(r.host)).map(r, r.host) : []")
    tls_hosts = ("object.kind == 'Ingress' && has(object.spec.tls) ? "
                 "object.spec.tls.filter(t, has(t.hosts)).map(t, t.hosts) : []")
    pod_spec = ("object.kind == 'Pod' ? object.spec : "
                "object.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : "
                "(object.kind in ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController'] "
                "? object.spec.template.spec : null)")
    images = ("variables.podSpec == null ? [] : "
              "variables.podSpec.containers.map(c, c.image) + "
              "(has(variables.podSpec.initContainers) ? variables.podSpec.initContainers.map(c, c.image) : []) + "
              "(has(variables.podSpec.ephemeralContainers) ? variables.podSpec.ephemeralContainers.map(c, c.image) : [])")
    refused_images = "variables.images.filter(i, !variables.registries.exists(r, i.startsWith(r + '/')))"
    ingress_class = ("has(object.spec.ingressClassName) ? object.spec.ingressClassName : "
                     "(has(object.metadata.annotations) && 'kubernetes.io/ingress.class' in object.metadata.annotations "
                     "? object.metadata.annotations['kubernetes.io/ingress.class'] : '')")
    service_type = "has(object.spec.type) ? object.spec.type : 'ClusterIP'"
    tenant = f"'tenant ' + namespaceObject.metadata.labels['{LABEL_TENANT}'] + ': '"
    return _namespaced_vap(
        CONTROLS_POLICY,
        [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
          # pods/ephemeralcontainers: `kubectl debug` adds a container to a running pod through it
          "resources": ["pods", "pods/ephemeralcontainers", "persistentvolumeclaims", "services",
                        "replicationcontrollers"]},
         {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
          "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
         {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
          "resources": ["jobs", "cronjobs"]},
         {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
          "resources": ["ingresses"]}],
        [
            {"expression": f"size({refused_images}) == 0",
             "messageExpression": (f"{tenant} + 'image ' + {refused_images}[0] + ' is not from an allowed registry "
                                   f"(allowed: ' + {_shown('variables.registries')} + '); ask the platform bureau to "
                                   "add it to spec.allowed.registries'"),
             "reason": "Forbidden"},
            {"expression": ("object.kind != 'PersistentVolumeClaim' || !has(object.spec.storageClassName) || "
                            "object.spec.storageClassName in variables.storageClasses"),
             "messageExpression": (f"{tenant} + 'storage class ' + object.spec.storageClassName + ' is not allowed "
                                   f"(allowed: ' + {_shown('variables.storageClasses')} + ')'"),
             "reason": "Forbidden"},
            {"expression": "object.kind != 'Ingress' || variables.ingressClass == '' || "
                           "variables.ingressClass in variables.ingressClasses",
             "messageExpression": (f"{tenant} + 'ingress class ' + variables.ingressClass + ' is not allowed "
                                   f"(allowed: ' + {_shown('variables.ingressClasses')} + ')'"),
             "reason": "Forbidden"},
            {"expression": f"object.kind != 'Service' || !(({service_type}) in ['NodePort', 'LoadBalancer']) || "
                           f"({service_type}) in variables.serviceTypes",
             "messageExpression": (f"{tenant} + 'a Service of type ' + object.spec.type + ' is not allowed "
                                   f"(allowed beyond ClusterIP: ' + {_shown('variables.serviceTypes')} + ')'"),
             "reason": "Forbidden"},
            {"expression": ("object.kind != 'Service' || !has(object.spec.externalIPs) || "
                            "object.spec.externalIPs.all(ip, ip in variables.externalIPs)"),
             "messageExpression": (f"{tenant} + 'external IP ' + object.spec.externalIPs.filter(ip, !(ip in "
                                   f"variables.externalIPs))[0] + ' is not allowed (allowed: ' + "
                                   f"{_shown('variables.externalIPs')} + '); an external IP takes the traffic of that address "
                                   "cluster-wide: ask the platform bureau for spec.allowed.externalIPs'"),
             "reason": "Forbidden"},
            {"expression": ("object.kind != 'Ingress' || (!has(object.spec.defaultBackend) && "
                            "(!has(object.spec.rules) || object.spec.rules.all(r, has(r.host) && r.host != '')))"),
             "messageExpression": (f"{tenant} + 'an Ingress without a host (or with a defaultBackend) would serve "
                                   f"every hostname; name a host (allowed: ' + {_shown('variables.hostnames')} + ')'"),
             "reason": "Forbidden"},
            {"expression": f"variables.ingressHosts.all(h, {allowed_host.format(h='h')})",
             "messageExpression": (f"{tenant} + 'hostname ' + variables.ingressHosts.filter(h, "
                                   f"!({allowed_host.format(h='h')}))[0] + ' is not allowed (allowed: ' + "
                                   f"{_shown('variables.hostnames')} + '); ask the platform bureau to add it to "
                                   "spec.allowed.hostnames'"),
             "reason": "Forbidden"},
            {"expression": f"variables.tlsHosts.all(hs, hs.all(h, {allowed_host.format(h='h')}))",
             "messageExpression": (f"{tenant} + 'a TLS host of this Ingress is not allowed (allowed: ' + "
                                   f"{_shown('variables.hostnames')} + ')'"),
             "reason": "Forbidden"},
        ],
        variables=[
            {"name": "podSpec", "expression": pod_spec},
            {"name": "images", "expression": images},
            {"name": "registries", "expression": _allowance(ANN_REGISTRIES, registries)},
            {"name": "storageClasses", "expression": _allowance(ANN_STORAGE_CLASSES)},
            {"name": "ingressClasses", "expression": _allowance(ANN_INGRESS_CLASSES)},
            {"name": "serviceTypes", "expression": _allowance(ANN_SERVICE_TYPES)},
            {"name": "ingressClass", "expression": f"object.kind == 'Ingress' ? ({ingress_class}) : ''"},
            {"name": "externalIPs", "expression": _allowance(ANN_EXTERNAL_IPS)},
            {"name": "hostnames", "expression": _hostnames_allowance(suffixes)},
            {"name": "ingressHosts", "expression": rule_hosts},
            {"name": "tlsHosts", "expression": tls_hosts},
        ],
    )


def platform_objects_policy() -> list[dict[str, Any]]:
    """The objects the operator applies in tenant namespaces (quota, limits, owners' binding,
    network policies; labelled managed-by yunshang) can be changed or deleted by the operator and
    the platform only; nobody else may create an object carrying that label."""
    managed = f"'{MANAGED_BY_KEY}' in {{obj}}.metadata.labels && {{obj}}.metadata.labels['{MANAGED_BY_KEY}'] == '{MANAGED_BY_VALUE}'"
    managed_of = lambda o: f"(has({o}.metadata.labels) && {managed.format(obj=o)})"  # noqa: E731
    cleaners = " && ".join(f"request.userInfo.username != '{u}'" for u in SYSTEM_CLEANERS)
    return _namespaced_vap(
        PROTECT_POLICY,
        [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
          "resources": ["resourcequotas", "limitranges"]},
         {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
          "resources": ["rolebindings", "roles"]},
         {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
          "resources": ["networkpolicies"]}],
        [{"expression": "!variables.managed",
          "messageExpression": (f"'tenant ' + namespaceObject.metadata.labels['{LABEL_TENANT}'] + ': ' + "
                                "variables.kind + ' ' + variables.name + ' belongs to the platform (managed-by yunshang) "
                                "and cannot be created, changed or deleted by ' + request.userInfo.username + "
                                "'; ask the platform bureau'"),
          "reason": "Forbidden"}],
        variables=[
            {"name": "managed", "expression": (f"(request.operation != 'CREATE' && {managed_of('oldObject')}) || "
                                               f"(request.operation != 'DELETE' && {managed_of('object')})")},
            {"name": "kind", "expression": "request.kind.kind"},
            {"name": "name", "expression": "request.name"},
        ],
        match_conditions=[{**NOT_THE_PLATFORM, "expression": f"{NOT_THE_PLATFORM['expression']} && {cleaners}"}],
    )


NAMESPACE_POLICY = "yunshang-namespace-ownership"
PROVIDER_NAMESPACE_POLICY = "yunshang-provider-namespace"


def provider_namespace_policy() -> list[dict[str, Any]]:
    """An offer's or agreement's Service is in a namespace of its provider: <provider>-<suffix> with a
    suffix without '-' (suffixes have none), so x-b-main is tenant x-b's and never tenant x's.  For
    everyone, system:masters included; the operator also checks the namespace's tenant label before it
    opens anything."""
    objs = _vap(PROVIDER_NAMESPACE_POLICY, "shareagreements", ["CREATE", "UPDATE"], [
        {"expression": ("object.spec.service.namespace.startsWith(object.spec.provider + '-') && "
                        "object.spec.service.namespace.lastIndexOf('-') == size(object.spec.provider)"),
         "messageExpression": ("'service.namespace ' + object.spec.service.namespace + ' is not a namespace of provider ' + "
                               "object.spec.provider + ' (' + object.spec.provider + '-<suffix>, the suffix letters and "
                               "digits only): name a namespace of the provider'"),
         "reason": "Forbidden"}])
    objs[0]["spec"]["matchConstraints"]["resourceRules"][0]["resources"].append("shareoffers")
    return objs




def namespace_ownership_policy() -> list[dict[str, Any]]:
    """A namespace belongs to the tenant whose mark (label and owner reference) it got when it was
    created: nobody (the operator and system:masters included: a namespace changes hands only when a
    person removes this policy's binding on purpose) puts a tenant's mark on a namespace that did not
    carry that very mark, nor takes a tenant's owner reference away while the mark stays.  So the operator never adopts another tenant's namespace, a retained one, or one it
    did not create (kube-system, default, a namespace made by hand): its apply is refused and the
    tenant goes to phase Conflict."""
    label = f"'{LABEL_TENANT}'"
    mark = lambda o: f"(has({o}.metadata.labels) && {label} in {o}.metadata.labels ? {o}.metadata.labels[{label}] : '')"  # noqa: E731
    refs = lambda o: (f"(has({o}.metadata.ownerReferences) ? {o}.metadata.ownerReferences.filter(r, r.kind == 'Tenant')"  # noqa: E731
                      ".map(r, r.uid) : [])")
    cleaners = " && ".join(f"request.userInfo.username != '{u}'" for u in SYSTEM_CLEANERS)
    return _with_binding(NAMESPACE_POLICY, {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                                                "resources": ["namespaces"]}]},
        "matchConditions": [{"name": "not-a-cleaner", "expression": cleaners}],
        "variables": [{"name": "mark", "expression": mark("object")},
                      {"name": "oldMark", "expression": mark("oldObject")},
                      {"name": "retained", "expression": (
                          f"has(oldObject.metadata.labels) && '{LABEL_RETAINED}' in oldObject.metadata.labels ? "
                          f"oldObject.metadata.labels['{LABEL_RETAINED}'] : ''")}],
        "validations": [
            {"expression": "variables.mark == '' || variables.mark == variables.oldMark",
             "messageExpression": ("'namespace ' + object.metadata.name + (variables.oldMark != '' ? ' belongs to tenant ' "
                                   "+ variables.oldMark : variables.retained != '' ? ' was kept from deleted tenant ' + "
                                   "variables.retained + ' (its data stays theirs)' : ' was not created for a tenant') + "
                                   "': it cannot be "
                                   "given to tenant ' + variables.mark + ' (' + request.userInfo.username + ' tried); "
                                   "a namespace is never taken over'"),
             "reason": "Forbidden"},
            {"expression": (f"variables.mark == '' || ({refs('oldObject')}.all(u, u in {refs('object')}) && "
                            f"{refs('object')}.all(u, u in {refs('oldObject')}))"),
             "messageExpression": ("'namespace ' + object.metadata.name + ' belongs to tenant ' + variables.oldMark + "
                                   "': its Tenant owner reference can be neither replaced nor joined by another'"),
             "reason": "Forbidden"},
        ],
    })


OPERATOR_SCOPE_POLICY = "yunshang-operator-scope"
OPERATOR_OWN_NAMESPACES = [SYSTEM_NAMESPACE, VIEWS_NAMESPACE, MONITORING_NAMESPACE]


def operator_scope_policy() -> list[dict[str, Any]]:
    """What the operator's ServiceAccount may write, narrower than its ClusterRole can say (RBAC cannot
    select by label or name prefix): namespaces that carry a tenant's mark; objects inside those and
    inside the platform's own namespaces only (never kube-system, default, a namespace made by hand);
    cluster roles and bindings of the departments' need-to-know of the earlier shape
    (``yunshang:dept:*``, which it deletes) only, so it can neither rewrite cluster-admin nor the
    platform's roles.  A stolen token of the operator is bounded
    by this.  (Not the offers' admission policy bindings it keeps: no admission policy applies to
    admission objects, and RBAC cannot name a prefix.)"""
    label = f"'{LABEL_TENANT}'"
    mark = lambda o: f"(has({o}.metadata.labels) && {label} in {o}.metadata.labels)"  # noqa: E731
    own = ", ".join(f"'{n}'" for n in OPERATOR_OWN_NAMESPACES)
    return _with_binding(OPERATOR_SCOPE_POLICY, {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
             "resources": ["namespaces", "resourcequotas", "limitranges", "configmaps", "secrets", "services"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
             "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]},
            {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE", "DELETE"],
             "resources": ["networkpolicies"]}]},
        "matchConditions": [{"name": "the-operator", "expression": f"request.userInfo.username == '{OPERATOR_USER}'"}],
        "variables": [
            {"name": "res", "expression": "request.resource.resource"},
            {"name": "where", "expression": ("variables.res == 'namespaces' ? "
                                             f"(request.operation == 'CREATE' ? {mark('object')} : {mark('oldObject')}) : "
                                             "variables.res in ['clusterroles', 'clusterrolebindings'] ? "
                                             "request.name.startsWith('yunshang:dept:') : "
                                             f"request.namespace in [{own}] || "
                                             f"(namespaceObject != null && {mark('namespaceObject')})")},
        ],
        "validations": [{
            "expression": "variables.where",
            "messageExpression": ("'the operator may not ' + request.operation.lowerAscii() + ' ' + variables.res + ' ' + "
                                  "(has(request.namespace) && request.namespace != '' ? request.namespace + '/' : '') + request.name + "
                                  "': it writes tenant namespaces and what is in them, the platform namespaces "
                                  f"({', '.join(OPERATOR_OWN_NAMESPACES)}) and the yunshang:dept:* roles of "
                                  "departments, nothing else'"),
            "reason": "Forbidden"}],
    })


def governance_files(audit_anchor: str = DEFAULT_ANCHOR, roles: tuple[str, ...] | list[str] = DEFAULT_ROLES,
                     default_registries: list[str] | None = None,
                     host_suffixes: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every RBAC object and admission policy of the platform, listed once, by the file under
    operator/ that shows it (`python -m yunshang.policies`, with the defaults), in apply order."""
    return {
        "policies/rbac.yaml": rbac(audit_anchor, roles),
        "policies/tenant-admission.yaml": admission_policy(),
        "policies/tenant-signoff.yaml": signoff_policy(),
        "policies/sharing-admission.yaml": agreement_policy(),
        "policies/offer-admission.yaml": [*offer_policy(), *offer_terms_policy(), *rating_policy()],
        "policies/audit-admission.yaml": audit_policy(),
        "policies/tenant-controls.yaml": tenant_controls(default_registries, host_suffixes),
        "policies/platform-objects.yaml": platform_objects_policy(),
        "policies/namespace-ownership.yaml": [*namespace_ownership_policy(), *provider_namespace_policy()],
        "policies/operator-scope.yaml": operator_scope_policy(),
    }


def governance(audit_anchor: str = DEFAULT_ANCHOR, roles: tuple[str, ...] | list[str] = DEFAULT_ROLES,
               default_registries: list[str] | None = None,
               host_suffixes: list[str] | None = None) -> list[dict[str, Any]]:
    """The same objects in one list: the installer and the Pulumi program both apply this."""
    return [o for objs in governance_files(audit_anchor, roles, default_registries, host_suffixes).values()
            for o in objs]


def _role(name: str, rules: list[dict]) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "yunshang"}},
        "rules": rules,
    }


def _binding(name: str, role: str, subject: dict) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "yunshang"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def _group(name: str) -> dict:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def rbac(audit_anchor: str = DEFAULT_ANCHOR, roles: tuple[str, ...] | list[str] = DEFAULT_ROLES) -> list[dict[str, Any]]:
    """``audit_anchor``: namespace/name of the ConfigMap holding the audit chain's anchor;
    ``roles``: the reviewer roles of parallel sign-off (a group each)."""
    read = ["get", "list", "watch"]
    anchor_name = audit_anchor.partition("/")[2]
    tenants = {"apiGroups": [GROUP], "resources": ["tenants"]}
    shares = {"apiGroups": [GROUP], "resources": ["shareagreements"]}
    offers = {"apiGroups": [GROUP], "resources": ["shareoffers"]}
    return [
        # need-to-know: a department creates tenants and agreements but lists neither (RBAC cannot filter a
        # list by name); the operator grants each department its own by name (yunshang.views)
        _role("yunshang:department", [{**tenants, "verbs": ["create"]},
                                      {**shares, "verbs": ["create"]},
                                      {**offers, "verbs": [*read, "create", "update", "patch"]}]),
        _binding("yunshang:departments", "yunshang:department", _group(DEPARTMENTS_GROUP)),
        _role(
            "yunshang:platform-admin",
            [
                {**tenants, "verbs": ["*"]},
                {**shares, "verbs": ["*"]},
                {**offers, "verbs": ["*"]},
                {"apiGroups": [GROUP], "resources": ["tenants/status", "shareagreements/status"], "verbs": read},
                {"apiGroups": [GROUP], "resources": ["auditrecords"], "verbs": read},
                {"apiGroups": [""], "resources": ["namespaces", "events", "resourcequotas"], "verbs": read},
                {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read},
                # `yunshang audit verify` compares the chain with its anchor
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [anchor_name], "verbs": ["get"]},
            ],
        ),
        _binding("yunshang:platform-admins", "yunshang:platform-admin", _group(ADMIN_GROUP)),
        # reviewers read tenants and append their role's sign-off (the sign-off policy holds them to that)
        _role("yunshang:reviewer", [{**tenants, "verbs": [*read, "update", "patch"]},
                                    {"apiGroups": [""], "resources": ["events"], "verbs": read}]),
        {**_binding("yunshang:reviewers", "yunshang:reviewer", _group(REVIEWER_GROUP_PREFIX + roles[0])),
         "subjects": [_group(REVIEWER_GROUP_PREFIX + r) for r in roles]},
        _role(
            "yunshang:operator",
            [
                {**tenants, "verbs": [*read, "patch", "update"]},
                {**shares, "verbs": [*read, "patch", "update", "delete"]},
                {**offers, "verbs": read},
                # need-to-know is the authorization webhook's now (yunshang.views.authorize): the operator only
                # removes the per-department ClusterRoles and bindings of the earlier shape
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"],
                 "verbs": [*read, "delete"]},
                # one binding of the offer-terms policy per offer (the policy itself ships with the platform)
                {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingadmissionpolicybindings"],
                 "verbs": [*read, "create", "patch", "delete"]},
                {"apiGroups": [GROUP], "resources": ["tenants/status", "shareagreements/status"],
                 "verbs": ["get", "patch", "update"]},
                {"apiGroups": [""], "resources": ["services"], "verbs": read},
                # where the kubelets are, for Prometheus (yunshang.operator.discovery): read only
                {"apiGroups": [""], "resources": ["nodes"], "verbs": read},
                {"apiGroups": [GROUP], "resources": ["auditrecords"], "verbs": [*read, "create"]},
                {
                    "apiGroups": [""],
                    "resources": ["namespaces", "resourcequotas", "limitranges"],
                    "verbs": [*read, "create", "patch", "update", "delete"],
                },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["rolebindings"],
                    "verbs": [*read, "create", "patch", "update", "delete"],
                },
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "resourceNames": ["admin"],
                    "verbs": ["bind"],
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["networkpolicies"],
                    "verbs": [*read, "create", "patch", "update", "delete"],
                },
                {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
                # the audit chain's anchor (a ConfigMap the stack config names)
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
                {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": read},
            ],
        ),
        _binding(
            "yunshang:operator",
            "yunshang:operator",
            {"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE},
        ),
        # the operator keeps Alertmanager's configuration (tenants' contacts) in a Secret
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "yunshang:operator-alertmanager", "namespace": MONITORING_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "yunshang:operator-alertmanager", "namespace": MONITORING_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "yunshang:operator-alertmanager"},
         "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}]},
        # replicas elect their leader through one Lease (yunshang.operator.runtime.leader): that one only
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "yunshang:operator-leader", "namespace": SYSTEM_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [OPERATOR_LEASE],
                    "verbs": ["get", "update"]},
                   {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
                   # the webhooks' Service follows the leader (yunshang.operator.webhook_endpoint): its one slice
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "resourceNames": [OPERATOR_WEBHOOK_SERVICE], "verbs": ["get", "patch", "update"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "yunshang:operator-leader", "namespace": SYSTEM_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "yunshang:operator-leader"},
         "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}]},
        # the operator keeps the departments' views (and removes the per-department Roles of the earlier shape)
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "yunshang:operator-views", "namespace": VIEWS_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": [*read, "create", "patch"]},
                   {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                    "verbs": [*read, "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "yunshang:operator-views", "namespace": VIEWS_NAMESPACE,
                      "labels": {"app.kubernetes.io/part-of": "yunshang"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "yunshang:operator-views"},
         "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": SYSTEM_NAMESPACE}]},
        # Prometheus reads the API server's own metrics (pod security, authorization decisions)
        _role("yunshang:metrics-reader", [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
                                          # what pods use, from the kubelets (resource metrics, cAdvisor)
                                          {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}]),
        {
            **_binding("yunshang:metrics-reader", "yunshang:metrics-reader",
                       {"kind": "User", "name": PROMETHEUS_USER, "apiGroup": "rbac.authorization.k8s.io"}),
        },
    ]


def manifests() -> dict[str, list[dict[str, Any]]]:
    """File (under operator/) -> objects."""
    return governance_files()


def render(objs: list[dict[str, Any]]) -> str:
    head = "# Generated by `python -m yunshang.policies`: do not edit.\n"
    return head + "---\n".join(yaml.safe_dump(o, sort_keys=False, width=120) for o in objs)


def main(argv: list[str]) -> int:
    from .generated import write_or_check

    root = Path(__file__).resolve().parents[2] / "operator"
    files = {root / rel: render(objs) for rel, objs in manifests().items()}
    return write_or_check(files, argv, "python -m yunshang.policies")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
