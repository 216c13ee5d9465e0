"""The catalogue (目录): providers publish offers, consumers apply from them, and the API server
holds every agreement to its offer's terms; withdrawal and rating (好差评). Every attempt is
made as the department would, through impersonation, beside the control that is admitted.

Each security test names the admission policy it proves (``@pytest.mark.control``), and every
refusal asserts that policy's name and binding in the API server's words
(``ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: …``) and the
policy's own message. The CLI's refusals (the last test) are the CLI's own checks, before it sends
anything."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from kubernetes import client

from factories import approval, dept_groups
from helpers import Impersonated, granted, policy_refused, ready_tenant, wait_for

from yunshang.models.agreement import OFFER_LABEL
from yunshang.models.tenant import GROUP, VERSION

API = f"/apis/{GROUP}/{VERSION}"
LABEL = OFFER_LABEL
# the admission policies these tests prove, by the names the API server reports
OFFER_GOVERNANCE = "yunshang-offer-governance"
OFFER_TERMS = "yunshang-offer-terms"  # bound once per offer by the operator: yunshang-offer-terms.<offer>
AGREEMENT_POLICY = "yunshang-sharing-consent"
RATING_POLICY = "yunshang-agreement-rating"


@pytest.fixture
def pair(operator, kube_api):
    co = client.CustomObjectsApi(kube_api)
    a, b = f"oc-{uuid.uuid4().hex[:5]}", f"op-{uuid.uuid4().hex[:5]}"
    ready_tenant(co, a)
    ready_tenant(co, b, namespaces=["exchange"])
    client.CoreV1Api(kube_api).create_namespaced_service(f"{b}-exchange", {
        "metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    return co, a, b, Impersonated(kube_api, f"clerk-{a}", dept_groups(a)), Impersonated(kube_api, f"owner-{b}", dept_groups(b))


def offer_body(name, b, **over):
    spec = {"provider": b, "service": {"namespace": f"{b}-exchange", "name": "api", "port": 80},
            "title": "人口基础信息查询", "description": "population lookups", "data": ["姓名", "户籍地址"],
            "classification": "internal", "maxDays": 30, **over}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareOffer", "metadata": {"name": name}, "spec": spec}


def request_body(a, b, offer, days=10, label=True, port=80, name=None):
    md = {"name": name or f"{a}.{b}.{uuid.uuid4().hex[:4]}"}
    if label:
        md["labels"] = {LABEL: offer}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement", "metadata": md,
            "spec": {"consumer": a, "provider": b, "purpose": "case lookups", "offer": offer,
                     "service": {"namespace": f"{b}-exchange", "name": "api", "port": port},
                     "expires": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}}


def terms_binding(offer: str) -> str:
    return f"{OFFER_TERMS}.{offer}"


def bound(kube_api, offer, consumer, a, b):
    """The operator's binding for the offer exists and the API server enforces it (a dry-run
    request beyond the terms is refused, by that binding)."""
    adm = client.AdmissionregistrationV1Api(kube_api)
    wait_for("offer binding", lambda: adm.read_validating_admission_policy_binding(terms_binding(offer)))

    def enforced():
        code, body = consumer.create(f"{API}/shareagreements?dryRun=All", request_body(a, b, offer, days=400))
        return code == 422 and f"with binding '{terms_binding(offer)}' denied request" in body.get("message", "")
    wait_for("binding in force", enforced, timeout=30)


def phase(co, name):
    return (co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", name).get("status") or {}).get("phase")


@pytest.mark.control("yunshang-offer-governance")
def test_only_the_provider_publishes_and_withdraws_its_offer(pair, kube_api):
    """Control: the yunshang-offer-governance admission policy: only the provider's department
    publishes, provider and service are fixed, a consumer cannot withdraw, a withdrawal is final."""
    co, a, b, consumer, provider = pair
    offer = f"{b}.population"
    policy_refused(consumer.create(f"{API}/shareoffers", offer_body(offer, b)), OFFER_GOVERNANCE,
                   f"only members of yunshang:dept:{b} may offer its services")
    code, body = provider.create(f"{API}/shareoffers", offer_body(offer, b))  # control: the provider
    assert code == 201, body
    # the provider cannot change what the offer is; its description it can
    policy_refused(provider.merge_patch(f"{API}/shareoffers/{offer}", {"spec": {"service": {"port": 443}}}),
                   OFFER_GOVERNANCE, "an offer's provider and service are fixed")
    code, body = provider.merge_patch(f"{API}/shareoffers/{offer}", {"spec": {"description": "lookups, v1"}})
    assert code == 200, body  # control: the same patch shape by the provider, on what it may change
    # a consumer cannot withdraw it (RBAC lets every department write offers: the policy decides)
    withdraw = {"spec": {"withdrawn": {"by": f"owner-{b}", "reason": "moving to v2", "existing": "RunToEnd"}}}
    policy_refused(consumer.merge_patch(f"{API}/shareoffers/{offer}", withdraw), OFFER_GOVERNANCE,
                   f"only members of yunshang:dept:{b} may offer its services")
    code, body = provider.merge_patch(f"{API}/shareoffers/{offer}", withdraw)  # control: the provider withdraws
    assert code == 200, body
    policy_refused(provider.merge_patch(f"{API}/shareoffers/{offer}", {"spec": {"withdrawn": None}}),
                   OFFER_GOVERNANCE, "a withdrawn offer is final")


@pytest.mark.control("yunshang-offer-terms")
def test_the_api_server_holds_requests_to_the_offers_terms(pair, kube_api):
    """Control: the yunshang-offer-terms admission policy, through the binding the operator keeps for
    the offer (yunshang-offer-terms.<offer>, the offer as its parameter): not beyond the longest term,
    exactly its service, and no new request once it is withdrawn."""
    co, a, b, consumer, provider = pair
    offer = f"{b}.population"
    code, body = provider.create(f"{API}/shareoffers", offer_body(offer, b))
    assert code == 201, body
    bound(kube_api, offer, consumer, a, b)
    # beyond the longest term, or another port: refused
    policy_refused(consumer.create(f"{API}/shareagreements", request_body(a, b, offer, days=45)), OFFER_TERMS,
                   f"offer {offer} grants at most 30 days", code=422, binding=terms_binding(offer))
    policy_refused(consumer.create(f"{API}/shareagreements", request_body(a, b, offer, port=22)), OFFER_TERMS,
                   f"an agreement from offer {offer} is for exactly its service: {b}-exchange/api:80",
                   code=422, binding=terms_binding(offer))
    # control: within the terms: admitted, and pending the provider's decision (approval per consumer)
    code, body = consumer.create(f"{API}/shareagreements", request_body(a, b, offer, days=29, name=f"{a}.{b}.ok"))
    assert code == 201, body
    wait_for("Pending", lambda: phase(co, f"{a}.{b}.ok") == "Pending")
    # withdrawn (running to their end): no new request; the existing one is untouched
    code, body = provider.merge_patch(f"{API}/shareoffers/{offer}", {"spec": {"withdrawn": {
        "by": f"owner-{b}", "reason": "moving to v2", "existing": "RunToEnd"}}})
    assert code == 200, body
    # the API server sees the withdrawal through its parameter cache (within a second or so)
    wait_for("withdrawal in force", lambda: consumer.create(f"{API}/shareagreements?dryRun=All",
                                                            request_body(a, b, offer))[0] == 403, timeout=30)
    policy_refused(consumer.create(f"{API}/shareagreements", request_body(a, b, offer)), OFFER_TERMS,
                   f"offer {offer} was withdrawn: it takes no new requests", binding=terms_binding(offer))
    assert phase(co, f"{a}.{b}.ok") == "Pending"


@pytest.mark.control("yunshang-sharing-consent")
def test_an_agreement_from_an_offer_carries_its_label(pair, kube_api):
    """Control: the yunshang-sharing-consent admission policy: an agreement that names an offer
    carries the offer's label, so that it cannot slip past the offer's binding."""
    co, a, b, consumer, provider = pair
    offer = f"{b}.population"
    assert provider.create(f"{API}/shareoffers", offer_body(offer, b))[0] == 201
    bound(kube_api, offer, consumer, a, b)
    policy_refused(consumer.create(f"{API}/shareagreements", request_body(a, b, offer, label=False)),
                   AGREEMENT_POLICY, f"an agreement made from an offer carries the label {LABEL}=<offer>", code=422)
    # control: the same request with the label
    code, body = consumer.create(f"{API}/shareagreements?dryRun=All", request_body(a, b, offer))
    assert code == 201, body


@pytest.mark.control("yunshang-agreement-rating")
def test_an_offer_without_approval_opens_at_once_and_withdrawal_can_revoke(pair, kube_api):
    """Control (the refusals): the yunshang-agreement-rating admission policy: the consumer's owners
    rate, as themselves, once, after the agreement ended. The rest is the operator's: an offer
    without approval opens the path at once; a withdrawal with Revoke ends its agreements."""
    co, a, b, consumer, provider = pair
    offer = f"{b}.open-data"
    assert provider.create(f"{API}/shareoffers", offer_body(offer, b, approvalRequired=False,
                                                            classification="public"))[0] == 201
    bound(kube_api, offer, consumer, a, b)
    name = f"{a}.{b}.open"
    assert consumer.create(f"{API}/shareagreements", request_body(a, b, offer, name=name))[0] == 201
    wait_for("Active without a decision", lambda: phase(co, name) == "Active", timeout=20)
    granted(consumer, f"{API}/shareagreements/{name}")
    granted(provider, f"{API}/shareagreements/{name}")  # both may patch it by name: RBAC is not what refuses
    # rating only once it ended, by the consumer, as itself, once
    rate = {"spec": {"rating": {"score": 4, "comment": "fast", "by": f"clerk-{a}"}}}
    rule = "only the consumer's owners rate an agreement, as themselves, once, after it expired or was revoked"
    policy_refused(consumer.merge_patch(f"{API}/shareagreements/{name}", rate), RATING_POLICY, rule)
    assert provider.merge_patch(f"{API}/shareoffers/{offer}", {"spec": {"withdrawn": {
        "by": f"owner-{b}", "reason": "closing", "existing": "Revoke"}}})[0] == 200
    wait_for("revoked by the withdrawal", lambda: phase(co, name) == "Revoked", timeout=20)
    policy_refused(provider.merge_patch(f"{API}/shareagreements/{name}",
                                        {"spec": {"rating": {"score": 5, "by": f"owner-{b}"}}}), RATING_POLICY, rule)
    policy_refused(consumer.merge_patch(f"{API}/shareagreements/{name}",
                                        {"spec": {"rating": {"score": 4, "by": "someone-else"}}}), RATING_POLICY, rule)
    code, body = consumer.merge_patch(f"{API}/shareagreements/{name}", rate)  # control: the consumer, as itself
    assert code == 200, body
    policy_refused(consumer.merge_patch(f"{API}/shareagreements/{name}",
                                        {"spec": {"rating": {"score": 1, "by": f"clerk-{a}"}}}), RATING_POLICY, rule)


def test_performance_report_and_rating_metrics(pair, kube_api, operator, platform, capsys, monkeypatch):
    """绩效考评 from what the cluster holds: the provider's decision time and rating, the consumer's
    request, each reviewer role's sign-offs; the rating also as the operator's gauges."""
    import json

    from yunshang.cli import app
    from yunshang.cli.common import run_app
    from yunshang.models.tenant import ADMIN_GROUP

    co, a, b, consumer, provider = pair
    offer = f"{b}.rated"
    assert provider.create(f"{API}/shareoffers", offer_body(offer, b))[0] == 201
    bound(kube_api, offer, consumer, a, b)
    name = f"{a}.{b}.rated"
    assert consumer.create(f"{API}/shareagreements", request_body(a, b, offer, name=name))[0] == 201
    granted(provider, f"{API}/shareagreements/{name}")
    granted(consumer, f"{API}/shareagreements/{name}")
    assert provider.merge_patch(f"{API}/shareagreements/{name}", {"spec": {"decision": approval(by=f"owner-{b}")}})[0] == 200
    wait_for("Active", lambda: phase(co, name) == "Active")
    assert consumer.merge_patch(f"{API}/shareagreements/{name}", {"spec": {"revoked": {"by": f"clerk-{a}"}}})[0] == 200
    wait_for("Revoked", lambda: phase(co, name) == "Revoked")
    assert consumer.merge_patch(f"{API}/shareagreements/{name}", {"spec": {"rating": {
        "score": 2, "comment": "slow", "by": f"clerk-{a}"}}})[0] == 200
    wait_for("rating gauge", lambda: operator.metrics().get(f"yunshang_provider_rating_sum{{provider={b}}}") == 2)
    kc = str(platform.identity_kubeconfig("finance.zhao", [ADMIN_GROUP]))
    monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", kc, "report", "performance", "-o", "json"])
    capsys.readouterr()
    assert run_app(app) == 0
    rows = {r["party"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[b]["ratings"] == 1 and rows[b]["rating_avg"] == 2.0 and rows[b]["offers"] >= 1
    assert rows[b]["decisions_owed"] >= 1 and rows[b]["decision_median_s"] is not None
    # its agreement (its tenant was approved the legacy way, which has no timing to evaluate)
    assert rows[a]["requests_made"] >= 1 and rows[a]["agreements_consumed"] >= 1
    assert {"role:platform", "role:security", "role:finance"} <= set(rows)


def test_the_catalogue_through_the_cli(pair, platform, kube_api, capsys, monkeypatch):
    import json

    from yunshang.cli import app
    from yunshang.cli.common import run_app

    co, a, b, consumer, _ = pair

    def as_(user, groups):
        kc = str(platform.identity_kubeconfig(user, groups))

        def run(*args, ok=True):
            monkeypatch.setattr("sys.argv", ["yunshang", "--kubeconfig", kc, *args])
            capsys.readouterr()
            code = run_app(app)
            out, err = capsys.readouterr()
            assert "Traceback" not in out + err and (code == 0 or not ok), err
            return code, out, err
        return run

    prov, cons = as_(f"owner-{b}", dept_groups(b)), as_(f"clerk-{a}", dept_groups(a))
    offer = f"{b}.cases"
    _, out, _ = prov("share", "offer", offer, "--provider", b, "--namespace", f"{b}-exchange", "--service", "api",
                     "--port", "80", "--title", "案件状态查询", "--data", "案件编号", "--data", "状态",
                     "--classification", "internal", "--max-days", "20")
    assert f"offer {offer} published" in out
    bound(kube_api, offer, consumer, a, b)
    rows = json.loads(cons("share", "catalog", "--text", "案件", "-o", "json")[1])
    assert [r["offer"] for r in rows] == [offer] and rows[0]["maxDays"] == 20 and rows[0]["data"] == ["案件编号", "状态"]
    assert json.loads(cons("share", "catalog", "--classification", "secret", "-o", "json")[1]) == []
    code, _, err = cons("share", "request", "--offer", offer, "--purpose", "case lookups", "--days", "60", ok=False)
    assert code == 1 and "grants at most 20 days" in err
    _, out, _ = cons("share", "request", "--offer", offer, "--purpose", "case lookups")  # the consumer: from identity
    name = f"{a}.{b}.api"
    assert f"agreement {name}" in out or name in out
    got = co.get_cluster_custom_object(GROUP, VERSION, "shareagreements", name)
    assert got["metadata"]["labels"][LABEL] == offer and got["spec"]["offer"] == offer
    granted(consumer, f"{API}/shareagreements/{name}")
    code, _, err = cons("share", "rate", name, "--score", "5", ok=False)
    assert code == 1 and "rated once it expired or was revoked" in err
