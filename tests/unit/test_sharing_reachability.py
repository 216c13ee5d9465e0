"""Who can reach what, over a matrix of tenants and agreements: nothing opens that no agreement names."""
from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings, strategies as st

from yunshang.operator.tenants import steps
from yunshang import sharing
from yunshang.models.agreement import AgreementSpec
from yunshang.models.tenant import TenantSpec

from factories import request

NOW = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)
TENANTS = ["ta", "tb", "tc"]
SERVICES = {"api": ({"app": "api"}, 8080), "db": ({"app": "db"}, 5432)}


def world(agreements: list[tuple[str, str, str, bool]]):
    """Tenant policies + the policies of every active agreement; pods: one api and one db pod per
    namespace; each tenant has namespaces <t>-x and <t>-y."""
    policies, ns_labels, pods = [], {}, []
    for t in TENANTS:
        spec = TenantSpec.model_validate({**request(namespaces=["x", "y"]), "approval": {"decision": "Approved", "by": "a"}})
        for o in steps.desired_objects(t, f"uid-{t}", spec):
            if o["kind"] == "Namespace":
                ns_labels[o["metadata"]["name"]] = {**o["metadata"]["labels"], "kubernetes.io/metadata.name": o["metadata"]["name"]}
            elif o["kind"] == "NetworkPolicy":
                policies.append(o)
        for ns in (f"{t}-x", f"{t}-y"):
            for sel, _ in SERVICES.values():
                pods.append(sharing.Pod(ns, tuple(sel.items())))
    active = set()
    for i, (consumer, provider, svc, approved) in enumerate(agreements):
        spec = AgreementSpec.model_validate({
            "consumer": consumer, "provider": provider, "purpose": "p",
            "service": {"namespace": f"{provider}-x", "name": svc, "port": 80},
            "expires": NOW + dt.timedelta(days=1),
            **({"decision": {"decision": "Approved", "by": "o"}} if approved else {}),
        })
        phase, _ = sharing.phase_of(spec, NOW)
        if phase.value != "Active":
            continue
        sel, port = SERVICES[svc]
        policies += sharing.desired_policies(f"ag{i}", f"uid{i}", spec, sel, port, [f"{consumer}-x", f"{consumer}-y"])
        active.add((consumer, f"{provider}-x", svc))
    return policies, ns_labels, pods, active


agreement = st.tuples(st.sampled_from(TENANTS), st.sampled_from(TENANTS), st.sampled_from(list(SERVICES)), st.booleans()) \
    .filter(lambda a: a[0] != a[1])


@given(st.lists(agreement, max_size=5))
@settings(max_examples=40, deadline=None)
def test_only_agreed_paths_open_across_tenants(agreements):
    policies, ns_labels, pods, active = world(agreements)
    tenant_of = lambda ns: ns.rsplit("-", 1)[0]  # noqa: E731
    for src, dst in itertools.product(pods, pods):
        for svc, (sel, port) in SERVICES.items():
            if not dst.has(sel):
                continue
            ok = sharing.allowed(policies, src, dst, port, "TCP", ns_labels)
            same = tenant_of(src.namespace) == tenant_of(dst.namespace)
            expected = same or (tenant_of(src.namespace), dst.namespace, svc) in active
            assert ok == expected, (src, dst, svc, active)
            # never another port, even when agreed
            if not same:
                assert not sharing.allowed(policies, src, dst, 22, "TCP", ns_labels)


def test_pending_rejected_revoked_and_expired_open_nothing():
    base = {"consumer": "ta", "provider": "tb", "purpose": "p", "service": {"namespace": "tb-x", "name": "api", "port": 80},
            "expires": NOW + dt.timedelta(days=1)}
    approved = {"decision": "Approved", "by": "o"}
    cases = {
        "Pending": {},
        "Rejected": {"decision": {"decision": "Rejected", "by": "o", "reason": "no"}},
        "Revoked": {"decision": approved, "revoked": {"by": "o", "reason": "done"}},
        "Expired": {"decision": approved, "expires": NOW - dt.timedelta(seconds=1)},
        "Active": {"decision": approved},
    }
    for want, extra in cases.items():
        phase, msg = sharing.phase_of(AgreementSpec.model_validate({**base, **extra}), NOW)
        assert phase.value == want, msg


def test_classification_gate():
    from yunshang.models.tenant import Classification as C

    assert sharing.classification_problem(C.secret, C.internal)
    assert sharing.classification_problem(C.internal, C.sensitive) is None
    assert sharing.classification_problem(C.public, C.public) is None
