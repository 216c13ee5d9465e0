"""Inputs people get wrong, without a cluster: one table of argv -> exit code and the words the one
line must hold.  Exit 2 when the command line itself is wrong (as click's usage errors), 1 when a
file it names is; nothing is sent to an API server in any of them (a guard fails the row if it is),
so nothing can have been created.  Each row fails if its check is taken out: the command would go
on to the (unreachable) cluster, or say something else.  The cases that need a cluster (a parent's
level, a provider, namespace, Service or port that does not exist) are in
tests/integration/test_cli_inputs_cluster.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from yunshang.cli import app
from yunshang.cli.common import run_app

# a province tenant's flags, valid: each row breaks one thing
T = ["--department-code", "520000-T", "--department-name", "测试局", "--owner", "li.wei", "--purpose", "testing",
     "--project", "T-1"]
# an agreement's target, valid in shape
A = ["--consumer", "ca", "--provider", "pa", "--namespace", "pa-main", "--service", "api", "--port", "80",
     "--purpose", "case lookups"]
OFFER = ["--provider", "pa", "--namespace", "pa-main", "--service", "api", "--port", "80", "--title", "人口查询",
         "--classification", "internal"]

# id, argv, exit code, words the message must contain
USAGE = [
    # the issue: messages that named neither option nor value (typer's pydantic coercion, click's usage errors)
    ("pods-not-a-number", ["tenant", "request", "ab", *T, "--level", "province", "--pods", "ten"], 2,
     ["--pods 'ten'", "whole number"]),
    ("port-not-a-number", ["share", "request", *A[:-4], "--port", "http", "--purpose", "x"], 2,
     ["--port 'http'", "whole number"]),
    ("score-over-5", ["share", "rate", "ca.pa.api", "--score", "9"], 2, ["--score 9", "at most 5"]),
    ("score-under-1", ["share", "rate", "ca.pa.api", "--score", "0"], 2, ["--score 0", "at least 1"]),
    ("audit-limit-negative", ["audit", "--limit", "-5"], 2, ["--limit -5", "at least 0"]),
    ("unknown-option", ["tenant", "request", "ab", "--bogus"], 2, ["no such option --bogus", "tenant request --help"]),
    ("unknown-option-near", ["tenant", "request", "ab", "--pod", "3"], 2, ["no such option --pod", "--pods"]),
    ("missing-argument", ["tenant", "show"], 2, ["missing argument NAME", "tenant show --help"]),
    ("missing-option", ["tenant", "reject", "ab"], 2, ["missing option --reason"]),
    ("no-such-command", ["tenant", "nosuch"], 2, ["no such command 'nosuch'", "request, list"]),
    ("option-without-value", ["tenant", "request", "ab", "--level"], 2, ["--level needs a value"]),
    ("root-option-after-command", ["tenant", "list", "--kubeconfig", "x"], 2,
     ["--kubeconfig is an option of yunshang itself", "before the command"]),
    ("output-unknown", ["tenant", "list", "-o", "xml"], 2, ["--output 'xml'", "table, json"]),
    ("report-output-unknown", ["report", "costs", "-o", "pdf"], 2, ["--output 'pdf'", "table, csv, json"]),
    ("report-since-not-a-date", ["report", "performance", "--since", "last week"], 2,
     ["--since 'last week'", "ISO date"]),
    # tenant request: the level, the parent, the name, the namespaces, the quota
    ("level-unknown", ["tenant", "request", "ab", *T, "--level", "town"], 2,
     ["--level 'town'", "province, city, county"]),
    ("parent-of-a-province", ["tenant", "request", "ab", *T, "--level", "province", "--parent", "gz-bigdata"], 2,
     ["--parent 'gz-bigdata'", "province tenant has no parent"]),
    ("city-without-parent", ["tenant", "request", "ab", *T, "--level", "city"], 2,
     ["--level city needs --parent", "province"]),
    ("county-without-parent", ["tenant", "request", "ab", *T, "--level", "county"], 2,
     ["--level county needs --parent", "city"]),
    ("name-leading-dash", ["tenant", "request", *T, "--level", "province", "--", "-bad"], 2,
     ["tenant name '-bad'", "starts with '-'"]),
    ("name-trailing-dash", ["tenant", "request", "bad-", *T, "--level", "province"], 2,
     ["tenant name 'bad-'", "ends with '-'"]),
    ("name-as-short-options", ["tenant", "request", "-bad", *T], 2,
     ["no such option -b", "starts with '-'"]),
    ("name-upper-case", ["tenant", "request", "Bad_Name", *T, "--level", "province"], 2,
     ["tenant name 'Bad_Name'", "upper-case letters (B, N)"]),
    ("name-odd-characters", ["tenant", "request", "gz.health", *T, "--level", "province"], 2,
     ["tenant name 'gz.health'", "'.'"]),
    ("name-too-long", ["tenant", "request", "a" * 31, *T, "--level", "province"], 2, ["is 31 characters long"]),
    ("name-reserved", ["tenant", "request", "kube-x", *T, "--level", "province"], 2, ["'kube-x' is reserved"]),
    ("namespace-twice", ["tenant", "request", "ab", *T, "--level", "province", "--namespace", "main",
                         "--namespace", "main"], 2, ["--namespace 'main' is given twice"]),
    ("namespace-suffix-with-dash", ["tenant", "request", "ab", *T, "--level", "province", "--namespace", "a-b"], 2,
     ["--namespace 'a-b'", "letters and digits", "tenant ab-a's"]),
    ("namespace-too-long", ["tenant", "request", "x" * 29, *T, "--level", "province", "--namespace", "n" * 40], 2,
     ["longer than 63"]),
    ("cpu-zero", ["tenant", "request", "ab", *T, "--level", "province", "--cpu", "0"], 2,
     ["--cpu 0", "more than 0", "tenant suspend"]),
    ("memory-zero", ["tenant", "request", "ab", *T, "--level", "province", "--memory", "0Gi"], 2,
     ["--memory '0Gi'", "more than 0"]),
    ("pods-zero", ["tenant", "request", "ab", *T, "--level", "province", "--pods", "0"], 2, ["--pods 0", "more than 0"]),
    ("cpu-negative", ["tenant", "request", "ab", *T, "--level", "province", "--cpu", "-1"], 2,
     ["--cpu -1", "negative"]),
    ("cpu-not-a-quantity", ["tenant", "request", "ab", *T, "--level", "province", "--cpu", "lots"], 2,
     ["--cpu 'lots'", "not a quantity"]),
    ("pods-less-than-namespaces", ["tenant", "request", "ab", *T, "--level", "province", "--pods", "1",
                                   "--namespace", "a", "--namespace", "b"], 2, ["--pods 1", "2 namespaces", "at least 2"]),
    ("cpu-less-than-a-milli-per-namespace", ["tenant", "request", "ab", *T, "--level", "province", "--cpu", "1m",
                                             "--namespace", "a", "--namespace", "b"], 2, ["--cpu '1m'", "at least 2m"]),
    ("purpose-empty", ["tenant", "request", "ab", *T, "--level", "province", "--purpose", " "], 2,
     ["--purpose", "must not be empty"]),
    ("classification-unknown", ["tenant", "request", "ab", *T, "--level", "province", "--classification", "topsecret"],
     2, ["--classification 'topsecret'", "public, internal, sensitive, secret"]),
    ("department-code-shape", ["tenant", "request", "ab", *T, "--level", "province", "--department-code", "-x"], 2,
     ["--department-code '-x'", "starting with a letter or digit"]),
    ("owner-with-space", ["tenant", "request", "ab", *T, "--level", "province", "--owner", "li wei"], 2,
     ["--owner 'li wei'", "without spaces"]),
    ("required-options", ["tenant", "request", "ab", "--level", "province"], 2,
     ["--department-code and --department-name are required", "--owner is required", "--purpose is required"]),
    ("no-name-no-file", ["tenant", "request", *T, "--level", "province"], 2, ["give the tenant's NAME or --file"]),
    # tenant quota
    ("quota-cpu-zero", ["tenant", "quota", "ab", "--cpu", "0"], 2, ["--cpu 0", "more than 0"]),
    ("quota-pods-zero", ["tenant", "quota", "ab", "--pods", "0"], 2, ["--pods 0", "more than 0"]),
    ("quota-services-negative", ["tenant", "quota", "ab", "--services", "-1"], 2, ["--services -1", "at least 0"]),
    ("quota-nothing", ["tenant", "quota", "ab"], 2, ["nothing to change"]),
    # share request
    ("expires-with-days", ["share", "request", *A, "--expires", "2027-03-01", "--days", "30"], 2,
     ["--expires and --days exclude each other"]),
    ("expires-in-the-past", ["share", "request", *A, "--expires", "2020-01-01"], 2,
     ["--expires 2020-01-01:", "not in the future"]),
    ("expires-beyond-366-days", ["share", "request", *A, "--expires", "2030-01-01"], 2,
     ["--expires 2030-01-01:", "at most 366 days"]),
    ("expires-not-a-date", ["share", "request", *A, "--expires", "soon"], 2, ["--expires 'soon'", "ISO date"]),
    ("days-zero", ["share", "request", *A, "--days", "0"], 2, ["--days 0", "at least 1"]),
    ("days-over-366", ["share", "request", *A, "--days", "400"], 2, ["--days 400", "at most 366"]),
    ("port-zero", ["share", "request", *A[:-4], "--port", "0", "--purpose", "x"], 2, ["--port 0", "at least 1"]),
    ("port-too-high", ["share", "request", *A[:-4], "--port", "70000", "--purpose", "x"], 2,
     ["--port 70000", "at most 65535"]),
    ("purpose-empty-share", ["share", "request", *A[:-2], "--purpose", ""], 2, ["--purpose ''", "must not be empty"]),
    ("consumer-is-provider", ["share", "request", *A[2:], "--consumer", "pa"], 2,
     ["--provider 'pa'", "consumer and provider must be different"]),
    ("offer-with-target", ["share", "request", "--offer", "pa.population", "--provider", "pa", "--purpose", "x"], 2,
     ["--offer gives the provider and its Service", "--provider"]),
    ("target-incomplete", ["share", "request", "--provider", "pa", "--purpose", "x"], 2,
     ["give --offer, or --namespace, --service, --port"]),
    ("offer-name-shape", ["share", "request", "--offer", "Pa_Population", "--purpose", "x"], 2,
     ["--offer 'Pa_Population'", "lower-case letters"]),
    ("agreement-name-shape", ["share", "request", *A, "--name", "Mine"], 2, ["--name 'Mine'", "lower-case letters"]),
    # share offer and catalog
    ("offer-name-too-long", ["share", "offer", "o" * 64, *OFFER], 2, ["NAME '" + "o" * 64 + "'", "at most 63"]),
    ("offer-max-days-negative", ["share", "offer", "pa.population", *OFFER, "--max-days", "-1"], 2,
     ["--max-days -1", "at least 1"]),
    ("offer-title-empty", ["share", "offer", "pa.population", *OFFER, "--title", ""], 2,
     ["--title ''", "must not be empty"]),
    ("offer-classification-unknown", ["share", "offer", "pa.population", *OFFER, "--classification", "topsecret"], 2,
     ["--classification 'topsecret'", "public, internal, sensitive, secret"]),
    ("catalog-classification-unknown", ["share", "catalog", "--classification", "topsecret"], 2,
     ["--classification 'topsecret'", "public, internal, sensitive, secret"]),
]

# the tenant file (written by the `files` fixture): id, file, extra argv, exit code, words ({tmp}: its folder)
FILES = [
    ("file-gbk", "gbk.yaml", [], 1, ["{tmp}/gbk.yaml is not UTF-8 (byte 0x{gbk_byte:02x} at {gbk_at})",
                                     "save it as UTF-8"]),
    ("file-list", "list.yaml", [], 1, ["holds a list of 2", "one per file"]),
    ("file-kind-namespace", "namespace.yaml", [], 1, ["kind 'Namespace'", "kind: Tenant"]),
    ("file-no-kind", "nokind.yaml", [], 1, ["no kind", "kind: Tenant"]),
    ("file-two-documents", "two.yaml", [], 1, ["holds 2 YAML documents"]),
    ("file-empty", "empty.yaml", [], 1, ["is empty"]),
    ("file-not-yaml", "broken.yaml", [], 1, ["is not valid YAML (line"]),
    ("file-api-version", "apiversion.yaml", [], 1, ["apiVersion 'v1'", "platform.yunshang.io/v1alpha1"]),
    ("file-no-name", "noname.yaml", [], 1, ["no metadata.name"]),
    ("file-missing", "nowhere.yaml", [], 1, ["--file {tmp}/nowhere.yaml: no such file"]),
    ("file-a-directory", "adir", [], 1, ["--file {tmp}/adir: a directory"]),
    ("file-name-leading-dash", "dashname.yaml", [], 1, ["metadata.name '-bad'", "starts with '-'"]),
    ("file-cpu-zero", "cpuzero.yaml", [], 1, ["{tmp}/cpuzero.yaml: spec.quota.cpu 0", "more than 0"]),
    ("file-level-unknown", "town.yaml", [], 1, ["spec.level 'town'", "province, city, county"]),
    ("file-city-without-parent", "orphan.yaml", [], 1, ["spec: a city tenant needs a parent"]),
    ("file-unknown-field", "typo.yaml", [], 1, ["spec.quotas is not a known field"]),
    ("file-floor-zero", "floorzero.yaml", [], 1, ["spec.elastic.floor.cpu 0", "more than 0"]),
    ("flag-over-file", "good.yaml", ["--cpu", "0"], 2, ["--cpu 0", "more than 0"]),
]

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n"
# the kubeconfig: id, file (written by `files`), extra root options, exit code, words
KUBECONFIGS = [
    ("kubeconfig-pem", "ca.pem", [], 1, ["--kubeconfig {tmp}/ca.pem: not a kubeconfig (no clusters/contexts)", "PEM"]),
    ("kubeconfig-missing", "nowhere", [], 1, ["--kubeconfig {tmp}/nowhere: no such file", "yunshang dev up"]),
    ("kubeconfig-a-directory", "adir", [], 1, ["--kubeconfig {tmp}/adir: a directory"]),
    ("kubeconfig-not-utf8", "gbk.yaml", [], 1, ["not a kubeconfig (not UTF-8 text"]),
    ("kubeconfig-other-yaml", "namespace.yaml", [], 1, ["not a kubeconfig (no clusters/contexts)"]),
    ("kubeconfig-no-such-context", "kc", ["--context", "nosuch"], 1, ["--context 'nosuch': not in {tmp}/kc; its contexts: c"]),
    ("kubeconfig-no-current-context", "kc-nocurrent", [], 1, ["no current-context", "pass --context"]),
]

CLASS_NAMES = re.compile(r"\b(\w+(Error|Exception)|BadParameter|NoSuchOption|UsageError|MissingParameter|Traceback)\b")


def tenant_yaml(name="gz-files", **spec_over) -> str:
    import yaml

    spec = {"department": {"code": "520000-T", "name": "测试局"}, "level": "province",
            "owners": [{"kind": "User", "name": "li.wei"}], "purpose": "testing", "project": "T-1",
            "quota": {"cpu": "4", "memory": "8Gi"}}
    spec.update(spec_over)
    return yaml.safe_dump({"apiVersion": "platform.yunshang.io/v1alpha1", "kind": "Tenant",
                           "metadata": {"name": name}, "spec": spec}, allow_unicode=True)


KUBECONFIG = ("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
              "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n")


@pytest.fixture
def files(tmp_path) -> Path:
    good = tenant_yaml()
    gbk = good.replace("测试局", "贵州省卫生健康委员会").encode("gbk")
    (tmp_path / "gbk.yaml").write_bytes(gbk)
    (tmp_path / "list.yaml").write_text(f"- {good.replace(chr(10), chr(10) + '  ')}\n- {{kind: Tenant}}\n")
    (tmp_path / "namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    (tmp_path / "nokind.yaml").write_text("metadata: {name: x}\nspec: {}\n")
    (tmp_path / "two.yaml").write_text(good + "---\n" + tenant_yaml("gz-other"))
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    (tmp_path / "broken.yaml").write_text("kind: Tenant\nspec: {level: [province\n")
    (tmp_path / "apiversion.yaml").write_text(good.replace("platform.yunshang.io/v1alpha1", "v1"))
    (tmp_path / "noname.yaml").write_text(good.replace("name: gz-files", "labels: {}"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "dashname.yaml").write_text(tenant_yaml("-bad"))
    (tmp_path / "cpuzero.yaml").write_text(tenant_yaml(quota={"cpu": 0, "memory": "8Gi"}))
    (tmp_path / "town.yaml").write_text(tenant_yaml(level="town"))
    (tmp_path / "orphan.yaml").write_text(tenant_yaml(level="city"))
    (tmp_path / "typo.yaml").write_text(tenant_yaml(quotas={"cpu": "4"}))
    (tmp_path / "floorzero.yaml").write_text(tenant_yaml(elastic={"enabled": True, "floor": {"cpu": 0}}))
    (tmp_path / "good.yaml").write_text(good)
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "kc").write_text(KUBECONFIG + "current-context: c\n")
    (tmp_path / "kc-nocurrent").write_text(KUBECONFIG)
    return tmp_path


@pytest.fixture
def no_cluster(monkeypatch):
    """Fail the row if anything is sent to an API server (so nothing can have been created)."""
    sent: list[str] = []

    def refuse_to_send(*args, **kwargs):
        sent.append(repr(args[:3]))
        raise AssertionError("reached the API server")

    monkeypatch.setattr("yunshang.rest.Endpoint.send_raw", refuse_to_send)
    monkeypatch.setattr("yunshang.client.Tenants.call", refuse_to_send)
    monkeypatch.setattr("yunshang.client.Tenants.lookup", refuse_to_send)
    return sent


def run(monkeypatch, capfd, argv):
    monkeypatch.setattr("sys.argv", ["yunshang", *argv])
    capfd.readouterr()
    code = run_app(app)
    out, err = capfd.readouterr()
    return code, out, err


def check(code, err, want_code, words, sent):
    assert not sent, f"reached the API server: {sent}"
    assert code == want_code, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err  # one line per problem
    assert not CLASS_NAMES.search(err), err  # words for people, no Python class names


@pytest.mark.parametrize("argv,code,words", [r[1:] for r in USAGE], ids=[r[0] for r in USAGE])
def test_command_line_mistakes_exit_2_naming_option_and_value(monkeypatch, capfd, files, no_cluster, argv, code, words):
    got, _, err = run(monkeypatch, capfd, ["--kubeconfig", str(files / "kc"), *argv])
    check(got, err, code, words, no_cluster)
    if len(words) == 1 or "required" not in words[0]:
        assert len(err.strip().splitlines()) == 1, err


def _gbk_offset(files: Path) -> tuple[int, int]:
    raw = (files / "gbk.yaml").read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return raw[e.start], e.start
    raise AssertionError("the GBK file decodes as UTF-8")


@pytest.mark.parametrize("name,extra,code,words", [r[1:] for r in FILES], ids=[r[0] for r in FILES])
def test_tenant_files_that_are_not_one_tenant_manifest(monkeypatch, capfd, files, no_cluster, name, extra, code, words):
    byte, at = _gbk_offset(files)
    got, _, err = run(monkeypatch, capfd, ["--kubeconfig", str(files / "kc"), "tenant", "request", "-f",
                                           str(files / name), *extra])
    check(got, err, code, [w.format(tmp=files, gbk_byte=byte, gbk_at=at) for w in words], no_cluster)
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name,extra,code,words", [r[1:] for r in KUBECONFIGS], ids=[r[0] for r in KUBECONFIGS])
def test_kubeconfigs_that_are_not_kubeconfigs(monkeypatch, capfd, files, no_cluster, name, extra, code, words):
    got, _, err = run(monkeypatch, capfd, ["--kubeconfig", str(files / name), *extra, "tenant", "list"])
    check(got, err, code, [w.format(tmp=files) for w in words], no_cluster)
    assert len(err.strip().splitlines()) == 1, err


def test_kubeconfig_from_the_environment_is_named_so(monkeypatch, capfd, files, no_cluster):
    monkeypatch.setenv("KUBECONFIG", str(files / "ca.pem"))
    got, _, err = run(monkeypatch, capfd, ["tenant", "list"])
    check(got, err, 1, [f"$KUBECONFIG {files}/ca.pem: not a kubeconfig"], no_cluster)


def test_a_group_without_a_command_shows_its_help(monkeypatch, capfd):
    code, out, err = run(monkeypatch, capfd, ["share"])
    assert code in (1, 2) and "Usage: yunshang share" in out + err and not CLASS_NAMES.search(out + err)


def test_the_message_helper_names_option_field_and_value():
    """One helper for every command: pydantic's errors, typer's and the client's refusals alike."""
    from pydantic import ValidationError

    from yunshang.cli.common import describe
    from yunshang.models.tenant import TenantRequest

    with pytest.raises(ValidationError) as e:
        TenantRequest.model_validate({"department": {"code": "X1", "name": "x"}, "level": "town", "owners": [],
                                      "purpose": "p", "project": "P", "quota": {"pods": "ten"}})
    lines = dict(describe(e.value, {"level": "--level"}, prefix="spec."))
    assert lines == {"--level 'town': must be one of province, city, county, township, village": True,
                     "spec.owners: needs at least 1": False,
                     "spec.quota.pods 'ten': must be a whole number": False}
    refusal = {"type": "value_error", "loc": ("service", "port"), "input": 8080, "msg": "has no TCP port 8080"}
    assert describe([refusal], {"service.port": "--port"}) == [("--port 8080: has no TCP port 8080", True)]
