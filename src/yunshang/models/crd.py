"""Generate CustomResourceDefinitions from the pydantic models.

Pydantic's JSON schema is not a Kubernetes structural schema; this turns one into the other:
every ``$ref`` inlined, ``Optional`` as an optional field (a null is dropped), quantities as int-or-string, titles and
defaults dropped (the models apply defaults), enums and formats kept, descriptions kept.

    python -m yunshang.models.crd            # rewrite operator/crds/
    python -m yunshang.models.crd --check    # exit 1 if the checked-in CRDs drifted
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .tenant import GROUP, RESERVED_RULE, VERSION, TenantSpec, TenantStatus

DROP = {"title", "default", "examples"}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    out: dict[str, Any] = {}
    any_of = schema.get("anyOf")
    if any_of is not None and not schema.get("x-kubernetes-int-or-string"):
        non_null = [s for s in any_of if s.get("type") != "null"]
        if len(non_null) == 1 and len(non_null) < len(any_of):
            # Optional: absent rather than null (the API server drops nulls of non-nullable fields)
            inner = structural(non_null[0], defs)
            if "description" in schema:
                inner["description"] = schema["description"]
            return inner
        raise ValueError(f"cannot express anyOf {any_of} structurally")
    for key, value in schema.items():
        if key in DROP or key == "$defs" or key == "required" and not value:
            continue
        if key == "properties":
            out[key] = {k: structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields already
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


TENANT_RULES = [
    {
        "rule": "self.level == 'province' ? !has(self.parent) : has(self.parent)",
        "message": "a province tenant has no parent; a city, county, township or village tenant needs one",
    },
    {
        "rule": "self.level != 'village' || size(self.namespaces) == 1",
        "message": "a village tenant has exactly one namespace",
    },
    {
        "rule": "!has(self.approval) || self.approval.decision != 'Rejected' || (has(self.approval.reason) && size(self.approval.reason) > 0)",
        "message": "a rejection needs a reason",
    },
    {
        "rule": ("!has(self.signoffs) || self.signoffs.all(d, d.decision != 'Rejected' || "
                 "(has(d.reason) && size(d.reason) > 0))"),
        "message": "a rejection needs a reason",
    },
]


def _crd(kind: str, plural: str, description: str, spec: dict[str, Any], status: dict[str, Any] | None,
         columns: list[dict[str, Any]], short: list[str] | None = None) -> dict[str, Any]:
    """A cluster-scoped, single-version CRD of ours."""
    props: dict[str, Any] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"type": "object"}, "spec": spec}
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if status is not None:
        props["status"] = status
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    version["schema"] = {"openAPIV3Schema": {"type": "object", "description": description, "required": ["spec"],
                                             "properties": props}}
    names = {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()}
    if short:
        names["shortNames"] = short
    names["categories"] = ["yunshang"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Cluster", "names": names, "versions": [version]},
    }


def tenant_crd() -> dict[str, Any]:
    spec = schema_of(TenantSpec)
    spec["x-kubernetes-validations"] = TENANT_RULES
    crd = _crd("Tenant", "tenants", "A department's governed slice of the shared platform.", spec,
                schema_of(TenantStatus), [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Level", "type": "string", "jsonPath": ".spec.level"},
                    {"name": "Parent", "type": "string", "jsonPath": ".spec.parent"},
                    {"name": "Department", "type": "string", "jsonPath": ".spec.department.name"},
                    {"name": "Namespaces", "type": "integer", "jsonPath": ".status.namespaceCount"},
                    {"name": "CPU", "type": "string", "jsonPath": ".spec.quota.cpu", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ], short=["tn"])
    # the name decides the namespaces: names of the platform's own are refused, to everyone
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] = [RESERVED_RULE]
    return crd


# an agreement's and an offer's Service lives in one of the provider's namespaces (and, with a suffix
# without '-', not in another tenant's: the admission policy yunshang-provider-namespace says that part,
# since a CRD rule that looks inside the name exceeds the CRD's cost budget)
PROVIDER_NAMESPACE_RULE = {"rule": "self.service.namespace.startsWith(self.provider + '-')",
                           "message": "service.namespace must be one of the provider's namespaces"}


def agreement_crd() -> dict[str, Any]:
    from .agreement import AgreementSpec, AgreementStatus

    spec = {**schema_of(AgreementSpec), "x-kubernetes-validations": [
        {"rule": "self.consumer != self.provider", "message": "consumer and provider must be different tenants"},
        PROVIDER_NAMESPACE_RULE,
    ]}
    return _crd("ShareAgreement", "shareagreements",
                "A consumer department's access to one Service port of a provider department.", spec,
                schema_of(AgreementStatus), [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Consumer", "type": "string", "jsonPath": ".spec.consumer"},
                    {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
                    {"name": "Service", "type": "string", "jsonPath": ".spec.service.name"},
                    {"name": "Port", "type": "integer", "jsonPath": ".spec.service.port"},
                    {"name": "Expires", "type": "date", "jsonPath": ".spec.expires"},
                ], short=["share"])


def offer_crd() -> dict[str, Any]:
    from .agreement import OfferSpec

    spec = {**schema_of(OfferSpec), "x-kubernetes-validations": [
        PROVIDER_NAMESPACE_RULE,
    ]}
    return _crd("ShareOffer", "shareoffers",
                "A service a provider department offers to share: the catalogue consumers apply from.", spec,
                None, [
                    {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
                    {"name": "Title", "type": "string", "jsonPath": ".spec.title"},
                    {"name": "Classification", "type": "string", "jsonPath": ".spec.classification"},
                    {"name": "Max-Days", "type": "integer", "jsonPath": ".spec.maxDays"},
                    {"name": "Withdrawn", "type": "date", "jsonPath": ".spec.withdrawn.at"},
                ], short=["offer"])


def audit_crd() -> dict[str, Any]:
    from .audit import AuditRecordSpec

    return _crd("AuditRecord", "auditrecords",
                "One entry of the tamper-evident audit trail (append-only, hash-chained).",
                schema_of(AuditRecordSpec), None, [
                    {"name": "Seq", "type": "integer", "jsonPath": ".spec.seq"},
                    {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
                    {"name": "Kind", "type": "string", "jsonPath": ".spec.object.kind"},
                    {"name": "Object", "type": "string", "jsonPath": ".spec.object.name"},
                    {"name": "Actor", "type": "string", "jsonPath": ".spec.actor"},
                    {"name": "Time", "type": "date", "jsonPath": ".spec.time"},
                ])


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for everything yunshang defines."""
    crds = [tenant_crd(), agreement_crd(), offer_crd(), audit_crd()]
    return {f"{c['metadata']['name']}.yaml": c for c in crds}


def render(crd: dict[str, Any]) -> str:
    return "# Generated by `python -m yunshang.models.crd` from yunshang.models: do not edit.\n" + yaml.safe_dump(
        crd, sort_keys=False, allow_unicode=True, width=100
    )


def crd_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "operator" / "crds"


def main(argv: list[str]) -> int:
    from ..generated import write_or_check

    files = {crd_dir() / name: render(crd) for name, crd in all_crds().items()}
    return write_or_check(files, argv, "python -m yunshang.models.crd")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
