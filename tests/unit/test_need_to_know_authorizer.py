"""The need-to-know decision (yunshang.views.authorize) as the API server asks it: a department
reads and writes by name its own tenant, the agreements it is a party to and its own view, and
nothing else; the decision does not depend on how many departments there are."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from yunshang import views
from yunshang.models.tenant import DEPARTMENTS_GROUP, GROUP, dept_group

name = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
AGREEMENTS = {"a.b.api": ("a", "b")}


def ask(groups, verb="get", resource="tenants", name="", group=GROUP, namespace="", subresource=""):
    attrs = {"verb": verb, "resource": resource, "group": group, "name": name, "namespace": namespace}
    if subresource:
        attrs["subresource"] = subresource
    return views.authorize({"user": "clerk", "groups": groups, "resourceAttributes": attrs},
                           lambda n: AGREEMENTS.get(n, ()))


def dept(t):
    return [DEPARTMENTS_GROUP, dept_group(t), "system:authenticated"]


@given(name, name, st.sampled_from(sorted(views.TENANT_VERBS)))
def test_its_own_tenant_and_no_other(me, other, verb):
    assert ask(dept(me), verb, name=me)
    assert bool(ask(dept(me), verb, name=other)) == (me == other)


@pytest.mark.parametrize("verb", ["list", "delete", "create", "deletecollection", "escalate", "*"])
def test_other_verbs_are_never_the_webhooks(verb):
    assert ask(dept("a"), verb, name="a") is None


def test_no_list_no_subresource_no_namespaced_twin():
    assert ask(dept("a"), "watch") is None  # a watch of all tenants: no name
    assert ask(dept("a"), "get", name="a", subresource="status") is None
    assert ask(dept("a"), "get", name="a", namespace="a-main") is None  # not the cluster-scoped kind
    assert ask(dept("a"), "get", name="a", group="evil.example.com") is None


def test_agreements_to_their_parties_only():
    for party in ("a", "b"):
        assert "party" in ask(dept(party), "patch", "shareagreements", "a.b.api")
    assert ask(dept("c"), "get", "shareagreements", "a.b.api") is None
    assert ask(dept("a"), "get", "shareagreements", "a.c.api") is None  # none the operator knows of
    # a tenant named like an agreement grants nothing on it
    assert ask(dept("a.b.api"), "get", "shareagreements", "a.b.api") is None


@given(name, name)
def test_its_own_view_and_no_other(me, other):
    path = dict(resource="configmaps", group="", namespace=views.VIEWS_NAMESPACE)
    assert ask(dept(me), "get", name=views.view_name(me), **path)
    assert bool(ask(dept(me), "watch", name=views.view_name(other), **path)) == (me == other)
    assert ask(dept(me), "patch", name=views.view_name(me), **path) is None  # read only
    # the same name in a namespace of its own is RBAC's business (its owners'), not this webhook's
    assert ask(dept(me), "get", name=views.view_name(me), resource="configmaps", group="", namespace="elsewhere") is None
    assert ask(dept(me), "get", name=me, **path) is None  # not a view's name


def test_no_department_group_no_allowance():
    assert ask([DEPARTMENTS_GROUP], "get", name="a") is None
    assert ask(["yunshang:dept-a", "yunshang:depta"], "get", name="a") is None
    assert ask([], "get", name="") is None


def test_the_api_servers_configuration_fails_closed_and_asks_only_about_departments():
    cfg = views.authorization_config("/state/authorize.kubeconfig")
    kinds = [a["type"] for a in cfg["authorizers"]]
    assert kinds == ["Node", "RBAC", "Webhook"]  # RBAC answers first: admins, reviewers, the operator
    hook = cfg["authorizers"][2]["webhook"]
    assert hook["failurePolicy"] == "Deny" and hook["cacheUnauthorizedRequests"] is False
    conditions = " && ".join(c["expression"] for c in hook["matchConditions"])
    assert "yunshang:dept:" in conditions and "'tenants', 'shareagreements', 'configmaps'" in conditions
