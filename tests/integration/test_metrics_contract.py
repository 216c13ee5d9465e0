"""The metrics contract: every series that the alert and recording rules (monitoring/rules), the
Grafana dashboards (monitoring/dashboards, panel targets and variables), the console dashboard
(monitoring/consoles) and the operator's own Prometheus queries (elastic quota, `audit verify`'s
witness) read is one the operator really exports on /metrics, with the labels they match, group on
and relabel, and with the label values they ask for.

Nothing here is synthetic: a real operator does a day's work on the test control plane first
(tenants provisioned and Ready, one quota used by a pod, a reconcile the API server refuses, a
sign-off and an agreement decided, an agreement rated, a department probing until Alertmanager has
it quarantined; an elastic change, on a platform of its own whose operator asks a Prometheus of
backfilled history), and its /metrics is read after each step: a series that exists only for a
while (a pending decision, an active agreement) counts if it was there once.
Recorded series (`yunshang:...`) must be defined by a rule, and they, the API server's series and
Prometheus' own (`up`, `ALERTS`) must exist in the real Prometheus with the labels used.

PromQL is read by a small lexer (Prometheus' parser has no Python binding); a plain regex over
metric names cross-checks that it misses none."""
from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from conftest import OperatorProcess, prom_query
from factories import approval, dept_groups, reviewer_groups, signoff, tenant
from helpers import Impersonated, granted, wait_for

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "platform.yunshang.io", "v1alpha1"
API = f"/apis/{GROUP}/{VERSION}"

# Operator metrics a query may use although no amount of real work makes them exist: metric ->
# why. Empty: every one is either pre-initialised by the operator or produced below.
KNOWN_MISSING: dict[str, str] = {}
# Series that are not the operator's and cannot exist on this platform however much work is done:
# selector (as the test queries it) -> why. Each is checked to be absent still, so an exception
# that is no longer needed fails the test.
REAL_NODE_ONLY = ("the kubelets' resource metrics: this platform has fake nodes only; "
                  "tests/integration/test_real_usage.py proves them on a real node")
KNOWN_ABSENT: dict[str, str] = {
    "pod_cpu_usage_seconds_total": REAL_NODE_ONLY,
    "pod_memory_working_set_bytes": REAL_NODE_ONLY,
    'yunshang:tenant_cpu_used:cores{tenant=~".+"}': REAL_NODE_ONLY,
    'yunshang:tenant_memory_used:bytes{tenant=~".+"}': REAL_NODE_ONLY,
}


# ------------------------------------------------------------------ reading PromQL

@dataclasses.dataclass(frozen=True)
class Use:
    """One series selector in a query: the metric, its label matchers (label, op, value) and the
    labels the query needs on it besides (by/without/on/ignoring lists, label_replace sources)."""
    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()
    labels: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Query:
    where: str
    expr: str
    labels: frozenset[str] = frozenset()  # a Grafana variable's label_values(metric, label)


STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(" + STRING + r")\s*(?:,|(?=\s*\}))")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER = re.compile(r"(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?:ms|[smhdwy])*")
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile", "limitk", "limit_ratio"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "group_left", "group_right"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
NAMES = re.compile(r"\byunshang(?:_[a-z0-9_]+|:[a-z0-9_:]+)")


@dataclasses.dataclass
class Tok:
    kind: str  # ident, str, num, matchers, range, ( ) , op
    text: str = ""
    matchers: tuple[tuple[str, str, str], ...] = ()


def _unquote(s: str) -> str:
    return s[1:-1] if s[0] == "`" else re.sub(r"\\(.)", r"\1", s[1:-1])


def tokens(expr: str) -> list[Tok]:
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":  # a comment, to the end of the line
            i = expr.find("\n", i) if "\n" in expr[i:] else len(expr)
        elif c in "\"'`":
            m = re.compile(STRING).match(expr, i)
            assert m, f"unterminated string in {expr!r}"
            out.append(Tok("str", _unquote(m.group())))
            i = m.end()
        elif c.isdigit() or (c == "." and expr[i + 1:i + 2].isdigit()):
            m = NUMBER.match(expr, i)
            out.append(Tok("num", m.group()))
            i = m.end()
        elif c.isalpha() or c in "_:":
            m = IDENT.match(expr, i)
            out.append(Tok("ident", m.group()))
            i = m.end()
        elif c == "{":
            j, found = i + 1, []
            while True:
                while expr[j].isspace():
                    j += 1
                if expr[j] == "}":
                    break
                m = MATCHER.match(expr, j)
                assert m, f"cannot read the label matchers at {expr[i:]!r}"
                found.append((m.group(1), m.group(2), _unquote(m.group(3))))
                j = m.end()
            out.append(Tok("matchers", matchers=tuple(found)))
            i = j + 1
        elif c == "[":
            i = expr.index("]", i) + 1
            out.append(Tok("range"))
        elif c in "(),":
            out.append(Tok(c))
            i += 1
        else:
            out.append(Tok("op", c))
            i += 1
    return out


def read(q: Query) -> list[Use]:
    """The selectors of one query and the labels it needs on each."""
    toks = tokens(q.expr)
    closing, stack = {}, []
    for k, t in enumerate(toks):
        if t.kind == "(":
            stack.append(k)
        elif t.kind == ")":
            closing[stack.pop()] = k
    assert not stack, f"unbalanced parentheses in {q.expr!r}"
    opening = {v: k for k, v in closing.items()}

    def enclosing(k: int) -> tuple[int, int]:
        inside = [(o, c) for o, c in closing.items() if o < k < c]
        return max(inside) if inside else (-1, len(toks))

    found: list[tuple[int, Tok]] = []
    needs: list[tuple[int, int, set[str]]] = []  # (after, before): the selectors in between need these labels
    skip: set[int] = set()
    for k, t in enumerate(toks):
        if k in skip or t.kind != "ident":
            continue
        nxt = toks[k + 1] if k + 1 < len(toks) else Tok("end")
        if t.text in GROUPING and nxt.kind == "(":
            close = closing[k + 1]
            skip.update(range(k + 1, close + 1))
            labels = {x.text for x in toks[k + 2:close] if x.kind == "ident"}
            if t.text in ("by", "without"):
                if close + 1 < len(toks) and toks[close + 1].kind == "(":  # sum by (a) (expr)
                    needs.append((close + 1, closing[close + 1], labels))
                else:  # sum (expr) by (a)
                    assert toks[k - 1].kind == ")", f"cannot read {t.text} in {q.expr!r}"
                    needs.append((opening[k - 1], k - 1, labels))
            elif t.text in ("on", "ignoring"):  # both operands: the group around the operator
                needs.append((*enclosing(k), labels))
        elif t.text in AGGREGATIONS or t.text in KEYWORDS:
            continue
        elif nxt.kind == "(":  # a function
            if t.text == "label_replace":  # label_replace(v, dst, replacement, src, regex): src must exist on v
                close, depth, commas = closing[k + 1], 0, []
                for j in range(k + 2, close):
                    depth += toks[j].kind == "("
                    depth -= toks[j].kind == ")"
                    if toks[j].kind == "," and depth == 0:
                        commas.append(j)
                src = toks[commas[2] + 1]
                if src.kind == "str" and src.text:
                    needs.append((k + 1, commas[0], {src.text}))
        else:
            found.append((k, Tok("sel", t.text, nxt.matchers if nxt.kind == "matchers" else ())))
    return [Use(t.text, t.matchers, frozenset(q.labels).union(*[ls for lo, hi, ls in needs if lo < k < hi]))
            for k, t in found]


def names_by_regex(expr: str) -> set[str]:
    """The second opinion: yunshang metric and recorded names anywhere outside string literals."""
    return set(NAMES.findall(re.sub(STRING, '""', expr)))


# ------------------------------------------------------------------ where the queries are

def template_queries(text: str) -> list[str]:
    """PromQL inside Go templates (alert annotations, console pages): the strings of `{{ ... }}`
    that name a yunshang series or ALERTS; printf's %q stands for a quoted value."""
    out = []
    for block in re.findall(r"\{\{(.*?)\}\}", text, re.S):
        for s in re.findall(STRING, block):
            s = _unquote(s)
            if re.search(r"yunshang[_:]|\bALERTS\b", s):
                out.append(s.replace("%q", '"%q"'))
    return out


def rule_queries() -> list[Query]:
    out = []
    for f in sorted((ROOT / "monitoring" / "rules").glob("*.y*ml")):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for r in g["rules"]:
                name = r.get("alert") or r.get("record")
                out.append(Query(f"{f.name}: {name}", r["expr"]))
                for key, text in (r.get("annotations") or {}).items():
                    out += [Query(f"{f.name}: {name} annotation {key}", q) for q in template_queries(text)]
    return out


def record_names() -> set[str]:
    return {r["record"] for f in (ROOT / "monitoring" / "rules").glob("*.y*ml")
            for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "record" in r}


def dashboard_queries() -> list[Query]:
    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels") or [])

    out = []
    for f in sorted((ROOT / "monitoring" / "dashboards").glob("*.json")):
        board = json.loads(f.read_text())
        for p in panels(board.get("panels") or []):
            out += [Query(f"{f.name}: panel {p.get('title')!r}", t["expr"]) for t in p.get("targets") or []
                    if t.get("expr")]
        for v in (board.get("templating") or {}).get("list") or []:
            if v.get("type") != "query":
                continue
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
            if m:
                out.append(Query(f"{f.name}: variable {v['name']}", m.group(1), frozenset({m.group(2)})))
            else:
                out.append(Query(f"{f.name}: variable {v['name']}", q))
    return out


def console_queries() -> list[Query]:
    files = [*sorted((ROOT / "monitoring" / "consoles").glob("*.html")),
             *sorted((ROOT / "monitoring" / "console_libraries").glob("*.lib"))]
    return [Query(f"{f.name}", q) for f in files for q in template_queries(f.read_text())]


def src_queries(elastic_tenant: str) -> list[Query]:
    """The operator's own queries, as its code builds them: the elastic quota's (captured from
    elastic.observe for a real elastic tenant) and `audit verify`'s witness."""
    from yunshang import elastic
    from yunshang.models import audit

    seen: list[str] = []

    def fake_query(prometheus: str, promql: str, timeout: float = 10) -> list[dict]:
        seen.append(promql)
        return [{"value": [0, "1"]}]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(elastic, "query", fake_query)
        for res in elastic.ELASTIC_RESOURCES:
            elastic.observe("http://prometheus.invalid", elastic_tenant, res)
    assert len(seen) == 3 * len(elastic.ELASTIC_RESOURCES), seen
    return [*(Query("elastic.py: observe", q) for q in seen),
            Query("models/audit.py: WITNESS_QUERY", audit.WITNESS_QUERY)]


def all_queries(elastic_tenant: str = "some-tenant") -> list[Query]:
    return [*rule_queries(), *dashboard_queries(), *console_queries(), *src_queries(elastic_tenant)]


# ------------------------------------------------------------------ static checks (no cluster)

def test_the_lexer_reads_every_query_and_misses_no_metric():
    qs = all_queries()
    assert len([q for q in qs if q.where.startswith("yunshang.rules")]) >= 20
    assert {q.where.split(":")[0] for q in qs} >= {p.name for p in (ROOT / "monitoring" / "dashboards").glob("*.json")}
    assert any(q.where == "yunshang.html" for q in qs) and any(q.where == "yunshang.lib" for q in qs)
    for q in qs:
        uses = read(q)
        assert uses, f"{q.where}: no series in {q.expr!r}"
        assert {u.metric for u in uses if NAMES.fullmatch(u.metric)} == names_by_regex(q.expr), q
    # the lexer itself, on the shapes the files use
    by = read(Query("t", 'sum by (tenant, reason) (increase(yunshang_x_total{reason=~"a|b"}[5m])) >= 5'))
    assert by == [Use("yunshang_x_total", (("reason", "=~", "a|b"),), frozenset({"tenant", "reason"}))]
    on = read(Query("t", 'yunshang_a{resource="cpu"} and on (tenant) yunshang_b == 1'))
    assert [u.labels for u in on] == [frozenset({"tenant"})] * 2
    lr = read(Query("t", 'label_replace(yunshang_d{kind="tenant"} < time(), "reviewer", "$1", "party", "(.+)")'))
    assert lr == [Use("yunshang_d", (("kind", "=", "tenant"),), frozenset({"party"}))]


def test_every_recorded_series_used_is_defined_by_a_rule():
    defined = record_names()
    used = {(u.metric, q.where) for q in all_queries() for u in read(q) if ":" in u.metric}
    assert used, "no recorded series used: the lexer reads nothing"
    missing = sorted(f"{where}: {m}" for m, where in used if m not in defined)
    assert not missing, "recorded series no rule records:\n" + "\n".join(missing)


# ------------------------------------------------------------------ a day's real work

def scrape(port: int) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets of its series, as /metrics says right now."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, list[dict[str, str]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(dict(s.labels))
    return out


def series_with(port: int, metric: str, **labels: str) -> list[dict[str, str]]:
    return [s for s in scrape(port).get(metric, []) if all(s.get(k) == v for k, v in labels.items())]


def _value(port: int, metric: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


@dataclasses.dataclass
class Day:
    series: dict[str, list[dict[str, str]]]  # every series seen on any /metrics read
    elastic_tenant: str
    tenants: dict[str, str]
    incomplete: list[str] = dataclasses.field(default_factory=list)
    """Steps whose outcome did not come: it depends on the names under test (a renamed metric
    stops the rule that quarantines, or its series never shows), so the day goes on and the
    contract says what is missing."""

    def add(self, scraped: dict[str, list[dict[str, str]]]) -> None:
        for name, label_sets in scraped.items():
            known = self.series.setdefault(name, [])
            known.extend(ls for ls in label_sets if ls not in known)

    def until(self, what: str, fn, timeout: float = 30) -> None:
        try:
            wait_for(what, fn, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            self.incomplete.append(str(exc))


def phase(co, plural: str, name: str) -> str | None:
    return (co.get_cluster_custom_object(GROUP, VERSION, plural, name).get("status") or {}).get("phase")


def backfilled_prometheus(tmp: Path, tenant_name: str) -> tuple[subprocess.Popen, str]:
    """A Prometheus holding 40 minutes of a busy tenant's cpu (95 % of its quota), for the elastic quota."""
    from yunshang.dev import toolchain
    from yunshang.dev.controlplane import free_port

    now = int(time.time()) - 60
    lines = ["# TYPE yunshang_tenant_resource_usage gauge"]
    lines += [f'yunshang_tenant_resource_usage{{tenant="{tenant_name}",resource="cpu"}} 7.6 {now - m * 60}'
              for m in range(40, 0, -1)]
    lines += ["# TYPE yunshang_tenant_resource_limit gauge"]
    lines += [f'yunshang_tenant_resource_limit{{tenant="{tenant_name}",resource="cpu"}} 8 {now - m * 60}'
              for m in range(40, 0, -1)]
    (tmp / "history.om").write_text("\n".join([*lines, "# EOF"]) + "\n")
    r = subprocess.run([str(toolchain.find("promtool")), "tsdb", "create-blocks-from", "openmetrics",
                        str(tmp / "history.om"), str(tmp / "tsdb")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    port = free_port()
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    proc = subprocess.Popen([str(toolchain.find("prometheus")), f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=(tmp / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for("backfilled prometheus ready", lambda: urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200,
             timeout=30, interval=0.5)
    return proc, url


def elastic_change(d: Day, tmp: Path) -> None:
    """A control plane of its own, its operator's elastic quota asking the backfilled Prometheus;
    what that operator exported is added to the day's series."""
    from kubernetes import config

    from yunshang import platform as plat
    from yunshang.dev import controlplane

    e = d.elastic_tenant
    cp = controlplane.ControlPlane(state=tmp / "platform", audit_webhook=False)
    cp.up()
    api = config.new_client_from_config(str(cp.kubeconfig))
    prom = op = None
    try:
        plat.install(api)
        prom, url = backfilled_prometheus(tmp, e)
        op = OperatorProcess(cp, tmp, extra_env={
            "YUNSHANG_PROMETHEUS_URL": url, "YUNSHANG_ELASTIC_SECONDS": "2", "YUNSHANG_ELASTIC_WINDOW": "30m",
            "YUNSHANG_ELASTIC_COOLDOWN": "3600"}).start()
        co = client.CustomObjectsApi(api)
        body = tenant(e, quota={"cpu": "8", "memory": "16Gi"},
                      elastic={"enabled": True, "floor": {"cpu": "4"}, "ceiling": {"cpu": "12"}})
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
        wait_for(f"{e} Ready", lambda: phase(co, "tenants", e) == "Ready", timeout=90, interval=0.5)
        d.until("e grows 8 -> 10", lambda: str(co.get_cluster_custom_object(GROUP, VERSION, "tenants", e)
                                               ["spec"]["quota"]["cpu"]) == "10", timeout=60)
        d.until("the elastic change exported", lambda: series_with(
            op.metrics_port, "yunshang_elastic_quota_changes_total", tenant=e))
        d.add(scrape(op.metrics_port))
    finally:
        if op is not None:
            op.stop()
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=20)
        api.close()
        cp.down()


@pytest.fixture(scope="module")
def day(monitoring, operator, kube_api, tmp_path_factory):
    from yunshang.tenancy import LABEL_TENANT

    co = client.CustomObjectsApi(kube_api)
    core = client.CoreV1Api(kube_api)
    adm = client.AdmissionregistrationV1Api(kube_api)
    tag = uuid.uuid4().hex[:5]
    # consumer (quota in use, a review date, later quarantined), provider, pending sign-off, elastic (on a
    # platform of its own), failing
    a, b, c, e, x = (f"mc{r}-{tag}" for r in "abcex")
    d = Day({}, e, {"consumer": a, "provider": b, "pending": c, "elastic": e, "failing": x})
    port = operator.metrics_port

    def snap():
        d.add(scrape(port))

    refuse = f"metrics-contract-{tag}"
    try:
        # 1. tenants provisioned and Ready, one with a review date; a pod uses a's quota
        review = (dt.date.today() + dt.timedelta(days=200)).isoformat()
        for name, changes in ((a, {"reviewDate": review}), (b, {"namespaces": ["exchange"]})):
            body = tenant(name, **changes)
            body["spec"]["approval"] = approval()
            co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
        for name in (a, b):
            wait_for(f"{name} Ready", lambda name=name: phase(co, "tenants", name) == "Ready", timeout=90, interval=0.5)
        core.create_namespaced_service(f"{b}-exchange", {"metadata": {"name": "api"}, "spec": {
            "selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        pod = {"metadata": {"name": "worker"}, "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1",
                            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"},
                                          "limits": {"cpu": "500m", "memory": "256Mi"}},
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                                "runAsUser": 1000}}]}}
        core.create_namespaced_pod(f"{a}-main", pod)
        wait_for("the pod counted in a's quota", lambda: (core.read_namespaced_resource_quota(
            "tenant-quota", f"{a}-main").status.used or {}).get("requests.cpu") == "500m", timeout=30)
        d.until("a's cpu usage exported as the pod's", lambda: _value(
            port, "yunshang_tenant_resource_usage", tenant=a, resource="cpu") == 0.5)
        snap()

        # 2. an elastic change, on a platform of its own (its operator must be the only one acting on its
        # tenants, and asks a Prometheus that saw the elastic tenant busy for 40 minutes): 8 -> 10 cpu
        elastic_change(d, tmp_path_factory.mktemp("elastic"))

        # 3. a request waiting for sign-off; one role decides
        dept_c = Impersonated(kube_api, f"user-of-{c}", dept_groups(c))
        code, body = dept_c.create(f"{API}/tenants", tenant(c))
        assert code == 201, body
        wait_for("c waits for sign-off", lambda: (co.get_cluster_custom_object(GROUP, VERSION, "tenants", c)
                                                  .get("status") or {}).get("signoff"), timeout=60, interval=0.5)
        d.until("c's deadlines exported", lambda: series_with(
            port, "yunshang_decision_deadline_timestamp_seconds", kind="tenant", name=c))
        snap()
        spec = co.get_cluster_custom_object(GROUP, VERSION, "tenants", c)["spec"]
        code, body = Impersonated(kube_api, "security.reviewer", reviewer_groups("security")).merge_patch(
            f"{API}/tenants/{c}", {"spec": {"signoffs": [signoff(spec, "security")]}})
        assert code == 200, body
        d.until("the sign-off's time exported", lambda: series_with(
            port, "yunshang_decision_duration_seconds_count", kind="tenant", party="security"))
        snap()

        # 4. a sharing agreement: requested (pending), approved (active), revoked, rated
        share = f"{a}.{b}.api"
        consumer = Impersonated(kube_api, f"clerk-{a}", dept_groups(a))
        provider = Impersonated(kube_api, f"owner-{b}", dept_groups(b))
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        code, body = consumer.create(f"{API}/shareagreements", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ShareAgreement", "metadata": {"name": share},
            "spec": {"consumer": a, "provider": b, "purpose": "metrics contract", "expires": expires,
                     "service": {"namespace": f"{b}-exchange", "name": "api", "port": 80}}})
        assert code == 201, body
        wait_for("Pending", lambda: phase(co, "shareagreements", share) == "Pending", timeout=60, interval=0.5)
        d.until("the provider's deadline exported", lambda: series_with(
            port, "yunshang_decision_deadline_timestamp_seconds", kind="agreement", name=share))
        snap()
        granted(provider, f"{API}/shareagreements/{share}")
        code, body = provider.merge_patch(f"{API}/shareagreements/{share}",
                                          {"spec": {"decision": approval(by=f"owner-{b}")}})
        assert code == 200, body
        wait_for("Active", lambda: phase(co, "shareagreements", share) == "Active", timeout=60, interval=0.5)
        d.until("the agreement's expiry exported", lambda: series_with(
            port, "yunshang_agreement_expiry_timestamp_seconds", agreement=share))
        snap()
        granted(consumer, f"{API}/shareagreements/{share}")
        code, body = consumer.merge_patch(f"{API}/shareagreements/{share}", {"spec": {"revoked": {"by": f"clerk-{a}"}}})
        assert code == 200, body
        wait_for("Revoked", lambda: phase(co, "shareagreements", share) == "Revoked", timeout=60, interval=0.5)
        code, body = consumer.merge_patch(f"{API}/shareagreements/{share}", {"spec": {"rating": {
            "score": 4, "comment": "fast", "by": f"clerk-{a}"}}})
        assert code == 200, body
        d.until("the rating exported", lambda: series_with(port, "yunshang_provider_rating_count", provider=b))
        snap()

        # 5. a reconcile that fails: an admission policy refuses the failing tenant's ResourceQuota
        refused = {"metadata": {"name": "probe", "labels": {LABEL_TENANT: x}}, "spec": {"hard": {"pods": "1"}}}
        adm.create_validating_admission_policy({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": refuse},
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["resourcequotas"]}]},
                "validations": [{"expression": "false", "message": "refused by the metrics contract test"}]}})
        adm.create_validating_admission_policy_binding({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": refuse},
            "spec": {"policyName": refuse, "validationActions": ["Deny"],
                     "matchResources": {"objectSelector": {"matchLabels": {LABEL_TENANT: x}}}}})

        def in_force():
            try:
                core.create_namespaced_resource_quota("default", refused, dry_run="All")
            except client.ApiException as exc:
                return "refused by the metrics contract test" in (exc.body or "")
            return False

        wait_for("the refusing policy in force", in_force, timeout=30, interval=0.5)
        body = tenant(x)
        body["spec"]["approval"] = approval()
        co.create_cluster_custom_object(GROUP, VERSION, "tenants", body)
        d.until("x's reconcile error exported", lambda: series_with(
            port, "yunshang_operator_reconcile_errors_total", tenant=x))
        snap()
        adm.delete_validating_admission_policy_binding(refuse)
        adm.delete_validating_admission_policy(refuse)

        # 6. a department probing (a refused read, refused pods) until Alertmanager has it quarantined
        code, body = consumer.request("GET", f"{API}/tenants/{b}")  # not its own: need-to-know
        assert code == 403, body
        dept_a = Impersonated(kube_api, "li.wei", dept_groups(a))  # an owner: may create pods, within Pod Security
        for i in range(8):
            code, body = dept_a.create(f"/api/v1/namespaces/{a}-main/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"probe{i}"},
                "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "registry.gz.gov.local/app:1"}]}})
            assert code == 403 and "PodSecurity" in body.get("message", ""), body
        # through the denial counter, the rule YunshangTenantProbing, Alertmanager and the operator's webhook
        d.until("a quarantined", lambda: co.get_cluster_custom_object(GROUP, VERSION, "tenants", a)["spec"].get(
            "quarantine"), timeout=60)
        d.until("the quarantine exported", lambda: series_with(port, "yunshang_quarantines_total", tenant=a))
        d.until("a's quarantined gauge at 1", lambda: _value(port, "yunshang_tenant_quarantined", tenant=a) == 1)
        snap()
        yield d
    finally:
        for delete in (adm.delete_validating_admission_policy_binding, adm.delete_validating_admission_policy):
            try:
                delete(refuse)
            except client.ApiException:
                pass
        try:
            co.delete_cluster_custom_object(GROUP, VERSION, "shareagreements", f"{a}.{b}.api")
        except client.ApiException:
            pass
        for name in (a, b, c, x):
            try:  # with its namespaces: a test platform's data
                co.patch_cluster_custom_object(GROUP, VERSION, "tenants", name, {"spec": {"deletionPolicy": "Delete"}})
                co.delete_cluster_custom_object(GROUP, VERSION, "tenants", name)
            except client.ApiException:
                pass


# ------------------------------------------------------------------ the contract

def _literal_values(op: str, value: str) -> list[str]:
    """The label values a matcher asks for by name (none for templates, placeholders or real regexes)."""
    if "$" in value or "%" in value:
        return []
    if op == "=":
        return [value]
    if op == "=~" and re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", value):
        return value.split("|")
    return []


def label_domains() -> dict[tuple[str, str], set[str]]:
    """Values a label can take although no tenant of this test has them right now: the operator
    writes the tenant's phase as models.tenant.Phase (metrics.observe)."""
    from yunshang.models.tenant import Phase

    return {("yunshang_tenant_phase", "phase"): {p.value for p in Phase}}


def problems(use: Use, where: str, series: dict[str, list[dict[str, str]]],
             domains: dict[tuple[str, str], set[str]]) -> list[str]:
    got = series.get(use.metric)
    if not got:
        close = difflib.get_close_matches(use.metric, list(series), n=2, cutoff=0.8)
        return [f"{where}: {use.metric} is not exported" + (f" (exported: {', '.join(close)})" if close else "")]
    out = []
    have = set().union(*got)
    for label in sorted({m[0] for m in use.matchers if m[0] != "__name__"} | use.labels):
        if not all(label in s for s in got):
            out.append(f"{where}: {use.metric} has no label {label!r} (its labels: {sorted(have)})")
    for label, op, value in use.matchers:
        seen = {s[label] for s in got if label in s} | domains.get((use.metric, label), set())
        missing = [v for v in _literal_values(op, value) if v not in seen]
        if label in have and missing:
            out.append(f"{where}: {use.metric}{{{label}{op}{value!r}}}: no series with {label} in {missing} "
                       f"(seen: {sorted(seen)})")
    return out


def test_every_operator_series_the_queries_read_is_exported_with_their_labels(day):
    uses = [(q.where, u) for q in all_queries(day.elastic_tenant) for u in read(q) if u.metric.startswith("yunshang_")]
    assert len({u.metric for _, u in uses}) >= 20, "too few operator metrics read: is the lexer broken?"
    domains = label_domains()
    found = []
    for where, u in uses:
        if u.metric in KNOWN_MISSING:
            assert u.metric not in day.series, f"{u.metric} is exported now: drop it from KNOWN_MISSING"
            continue
        found += problems(u, where, day.series, domains)
    assert not found, ("queries read series the operator does not export:\n" + "\n".join(dict.fromkeys(found))
                       + "".join(f"\n(the day's step that did not complete: {s})" for s in day.incomplete))


def test_the_days_work_was_done(day):
    """Every step's outcome came (with the names as they are, each depends on the contract)."""
    assert not day.incomplete, "\n".join(day.incomplete)


def test_the_elastic_tenants_own_series_are_the_ones_the_elastic_quota_asks_for(day):
    """Its query names the tenant and the resource: those series, not just the metric, exist."""
    e = day.elastic_tenant
    for q in src_queries(e)[:-1]:
        for u in read(q):
            want = {label: value for label, op, value in u.matchers if op == "="}
            assert want.keys() == {"tenant", "resource"}, q
            assert [s for s in day.series[u.metric] if all(s.get(k) == v for k, v in want.items())], (q, want)


def test_recorded_apiserver_and_prometheus_series_exist_in_prometheus_with_their_labels(day, monitoring):
    """What the operator does not export (recorded series, the API server's and Prometheus' own)
    is in the real Prometheus that scrapes the platform and evaluates the rules."""
    uses: dict[Use, str] = {}
    for q in all_queries(day.elastic_tenant):
        for u in read(q):
            if not u.metric.startswith("yunshang_"):
                uses.setdefault(u, q.where)
    assert {u.metric for u in uses} >= {"up", "ALERTS"} | {m for m in record_names() if m.startswith("yunshang:")}
    found, absent = [], set()
    deadline = time.monotonic() + 60  # for all of them: rates need two scrapes, rules an evaluation
    for u, where in uses.items():
        sel = ",".join(f'{label}{op}{json.dumps(value)}' if not ("$" in value or "%" in value) else f'{label}=~".+"'
                       for label, op, value in u.matchers)
        promql = f"{u.metric}{{{sel}}}" if sel else u.metric
        if promql in KNOWN_ABSENT:
            absent.add(promql)
            continue
        try:
            got = wait_for(f"{promql} in Prometheus", lambda promql=promql: prom_query(monitoring, promql),
                           timeout=max(1.0, deadline - time.monotonic()), interval=1)
        except AssertionError:
            found.append(f"{where}: {promql} has no series in Prometheus")
            continue
        found += problems(u, where, {u.metric: [r["metric"] for r in got]}, {})
    assert not found, "\n".join(found)
    assert absent == set(KNOWN_ABSENT), f"KNOWN_ABSENT names what no query reads: {set(KNOWN_ABSENT) - absent}"
    # the exceptions hold: each is still absent
    for promql in sorted(absent):
        assert not prom_query(monitoring, promql), f"{promql} exists now: drop it from KNOWN_ABSENT"
