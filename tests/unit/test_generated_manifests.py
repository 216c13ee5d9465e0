"""The checked-in CRDs and policies are exactly what the models and code generate."""
from __future__ import annotations

from yunshang import policies
from yunshang.models import crd


def test_crds_match_models():
    assert crd.main(["--check"]) == 0, "run `python -m yunshang.models.crd`"


def test_policies_match_code():
    assert policies.main(["--check"]) == 0, "run `python -m yunshang.policies`"


def test_crd_schema_is_structural():
    def walk(node, path="spec"):
        assert "$ref" not in node and "title" not in node and "default" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        else:
            assert "type" in node, path
        for k, v in (node.get("properties") or {}).items():
            walk(v, f"{path}.{k}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    schema = crd.tenant_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    walk(schema["properties"]["spec"])
    walk(schema["properties"]["status"], "status")


def test_quota_fields_are_int_or_string():
    spec = crd.tenant_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    cpu = spec["properties"]["quota"]["properties"]["cpu"]
    assert cpu["x-kubernetes-int-or-string"] is True
    assert "description" in cpu
