"""`yunshang report costs|performance` read in an 80-column terminal: the default table's headers
whole and no line wider than 80; -o wide every column, its headers whole too; csv and json every
field (through a fake cluster)."""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from yunshang import performance, showback
from yunshang.cli import app
from yunshang.cli import report as rep
from yunshang.cli.common import run_app

LONG = "gz-guiyang-city-bigdata-centre"  # 30 characters, the longest a tenant name may be


def tenant(name, level, parent=None, cpu="4", memory="8Gi"):
    return {"metadata": {"name": name, "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"level": level, "parent": parent, "department": {"name": "贵州省大数据发展管理局贵阳分中心", "code": "520000-X"},
                     "quota": {"cpu": cpu, "memory": memory, "storage": "100Gi"}, "requestRound": 1,
                     "signoffs": [{"role": "platform", "decision": "Approved", "by": "x", "round": 1, "quota": {},
                                   "at": "2026-11-03T07:00:00Z"}]},
            "status": {"phase": "Ready", "namespaces": [{"name": f"{name}-main",
                                                         "used": {"requests.cpu": "1500m", "requests.memory": "3Gi"}}]}}


TENANTS = [tenant("gz-province", "province", cpu="512", memory="2048Gi"), tenant(LONG, "city", "gz-province", cpu="64"),
           tenant("gy-yunyan", "county", LONG), tenant("yy-qianling", "township", "gy-yunyan", cpu="1", memory="2Gi"),
           tenant("ql-cun", "village", "yy-qianling", cpu="500m", memory="1Gi")]
AGREEMENTS = [{"metadata": {"name": "a1", "creationTimestamp": "2026-11-02T00:00:00Z"},
               "spec": {"provider": "gz-province", "consumer": LONG, "offer": "o1",
                        "decision": {"decision": "Approved", "by": "p", "at": "2026-11-04T00:00:00Z"},
                        "rating": {"score": 4, "by": "c", "at": "2026-11-20T00:00:00Z"}},
               "status": {"phase": "Expired"}}]
OFFERS = [{"metadata": {"name": "o1"}, "spec": {"provider": "gz-province", "approvalRequired": True}}]


class FakeTenants:
    def list(self):
        return TENANTS

    def usage(self):
        return {t["metadata"]["name"]: ({"cpu": 1, "memory": 2**30}, {"cpu": 4, "memory": 8 * 2**30}) for t in TENANTS}


class FakeAgreements:
    def __init__(self, client):
        pass

    def list(self):
        return AGREEMENTS

    def offers(self):
        return OFFERS


class FakeAudit:
    def __init__(self, client):
        pass

    def records(self):
        return []


@pytest.fixture
def cli(monkeypatch, capfd):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(rep, "_client", lambda ctx: FakeTenants())
    monkeypatch.setattr("yunshang.client.Agreements", FakeAgreements)
    monkeypatch.setattr("yunshang.client.AuditTrail", FakeAudit)

    def run(*args):
        monkeypatch.setattr("sys.argv", ["yunshang", "report", *args])
        code = run_app(app)
        out, err = capfd.readouterr()
        assert code == 0 and "Traceback" not in out + err, err
        return out
    return run


def headers(report: str, by: rep.By, output: rep.Format) -> list[str]:
    cols = rep.cost_columns(by, "CNY") if report == "costs" else rep.performance_columns(by)
    return [h for c in rep.chosen(cols, output) for h in c.header.split("\n")]


@pytest.mark.parametrize("by", list(rep.By))
@pytest.mark.parametrize("report", ["costs", "performance"])
@pytest.mark.parametrize("output", [rep.Format.table, rep.Format.wide])
def test_headers_whole_and_the_default_fits_80_columns(cli, report, by, output):
    out = cli(report, "--by", by.value, "-o", output.value)
    lines = out.splitlines()
    head = lines[0]
    for h in headers(report, by, output):
        assert h in head, f"header {h!r} cut: {head!r}"
    if output == rep.Format.table:
        assert max(len(line) for line in lines) <= 80, out
    else:  # wide: as wide as it takes, nothing cut
        assert max(len(line) for line in lines) > 80
    if by == rep.By.tenant:
        assert LONG[:10] in out and "gz-province" in out
    if report == "performance" and by == rep.By.tenant:
        assert "role:platform" in out  # a reviewer role's name whole
    if report == "performance" and by != rep.By.tenant:
        assert "role:" not in out  # roles are no tenants


def test_the_default_columns_are_the_readers_first():
    assert [c.header for c in rep.chosen(rep.performance_columns(rep.By.tenant), rep.Format.table)] == [
        "PARTY", "REQUESTS", "OWED", "PENDING", "OVERDUE", "DECIDED MEDIAN/P90", "RATING"]
    assert [c.header for c in rep.chosen(rep.cost_columns(rep.By.tenant, "CNY"), rep.Format.table)] == [
        "TENANT", "LEVEL", "COST/MONTH (CNY)", "OWN SERVERS", "SAVING"]
    assert len(rep.chosen(rep.performance_columns(rep.By.tenant), rep.Format.wide)) == 14  # every column, as before
    assert len(rep.chosen(rep.cost_columns(rep.By.tenant, "CNY"), rep.Format.wide)) == 9


def test_rolled_up_names_say_how_many_tenants(cli):
    out = cli("costs", "--by", "level")
    assert [line.split()[0:2] for line in out.splitlines()[2:7]] == [
        ["province", "(1)"], ["city", "(1)"], ["county", "(1)"], ["township", "(1)"], ["village", "(1)"]]
    assert "total" in out
    out = cli("costs", "--by", "parent")
    assert "gz-province (5)" in out and "total" not in out  # subtrees overlap: no total
    out = cli("performance", "--by", "parent")
    assert "gz-province (5)" in out and "yy-qianling (2)" in out


def test_csv_and_json_keep_every_field(cli):
    rows = json.loads(cli("performance", "-o", "json"))
    assert set(rows[0]) == {f.name for f in dataclasses.fields(performance.Row)}  # (emit_json sorts the keys)
    assert {r["party"] for r in rows} >= {LONG, "role:platform"}
    table = list(csv.DictReader(io.StringIO(cli("costs", "-o", "csv"))))
    assert list(table[0]) == [f.name for f in dataclasses.fields(showback.Row)] and len(table) == len(TENANTS)
    groups = json.loads(cli("performance", "--by", "level", "-o", "json"))
    assert [g["party"] for g in groups] == ["province", "city", "county", "township", "village"]
    assert set(groups[0]) - set(rows[0]) == {"level", "tenants"}
    assert sum(g["requests_made"] for g in groups) == sum(r["requests_made"] for r in rows)
