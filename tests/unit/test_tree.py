"""`yunshang tenant list --tree`: the hierarchy with each tenant's quota used, carved out for its
children and left (yunshang.tree, pure), and the command through a fake cluster."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from yunshang import tree
from yunshang.cli import app
from yunshang.cli.common import run_app

GIB = 2**30


def tenant(name, level, parent=None, cpu="4", memory="8Gi", phase="Ready", used=("0", "0"), ceiling=None):
    spec = {"level": level, "parent": parent, "department": {"name": "局", "code": "520000-X"},
            "quota": {"cpu": cpu, "memory": memory}}
    if ceiling:
        spec["elastic"] = {"enabled": True, "ceiling": ceiling}
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"phase": phase, "namespaces": [{"name": f"{name}-main",
                                                       "used": {"requests.cpu": used[0], "requests.memory": used[1]}}]}}


FIVE = [tenant("gz", "province", cpu="64", memory="256Gi", used=("10", "20Gi")),
        tenant("gy", "city", "gz", cpu="16", memory="64Gi", used=("2", "4Gi"), ceiling={"cpu": "24"}),
        tenant("zy", "city", "gz", cpu="8", memory="32Gi"),
        tenant("yy", "county", "gy", cpu="4", memory="8Gi", used=("1500m", "3Gi")),
        tenant("qh", "township", "yy", cpu="2", memory="4Gi"),
        tenant("qh-new", "township", "yy", cpu="1", memory="2Gi", phase="Pending"),  # not approved: takes nothing
        tenant("cun", "village", "qh", cpu="500m", memory="1Gi", used=("250m", "512Mi"))]


def by_name(forest):
    return {n.name: (depth, n) for depth, n in tree.walk(forest)}


def test_five_levels_nest_in_level_order():
    forest = tree.build(FIVE)
    nodes = by_name(forest)
    assert [n.name for n in forest] == ["gz"]
    assert [(name, depth) for name, (depth, _) in nodes.items()] == [
        ("gz", 0), ("gy", 1), ("yy", 2), ("qh", 3), ("cun", 4), ("qh-new", 3), ("zy", 1)]
    assert nodes["cun"][1].level == "village" and nodes["qh-new"][1].phase == "Pending"


def test_carved_is_the_approved_childrens_ceilings_and_left_the_rest():
    nodes = {k: n for k, (_, n) in by_name(tree.build(FIVE)).items()}
    # gz: gy's ceiling (cpu raised to 24 by elastic.ceiling, memory its quota) and zy's quota
    assert nodes["gz"].carved == {"cpu": Decimal(24 + 8), "memory": Decimal(96 * GIB)}
    assert nodes["gz"].left == {"cpu": Decimal(64 - 32), "memory": Decimal(160 * GIB)}
    # gy's own ceiling is 24 cpu: what it has left counts from there
    assert nodes["gy"].carved["cpu"] == 4 and nodes["gy"].left["cpu"] == 20
    # yy: qh only (qh-new is pending)
    assert nodes["yy"].carved == {"cpu": Decimal(2), "memory": Decimal(4 * GIB)}
    assert nodes["cun"].carved == {"cpu": 0, "memory": 0} and nodes["cun"].left["cpu"] == Decimal("0.5")
    assert nodes["yy"].used == {"cpu": Decimal("1.5"), "memory": Decimal(3 * GIB)}
    # the same arithmetic as the admission check (tenancy.quota_left over the models' ceilings)
    from yunshang.models.tenant import Quota
    from yunshang.tenancy import quota_left

    left = quota_left(Quota(cpu="64", memory="256Gi"), [Quota(cpu="24", memory="64Gi"), Quota(cpu="8", memory="32Gi")])
    assert {k: left[k] for k in tree.RESOURCES} == nodes["gz"].left


def test_over_carved_shows_negative_left():
    [root] = tree.build([tenant("p", "province", cpu="2", memory="2Gi"), tenant("c", "city", "p", cpu="3", memory="1Gi")])
    assert root.left == {"cpu": Decimal(-1), "memory": Decimal(GIB)}


def test_live_usage_wins_over_the_status():
    [root] = tree.build([tenant("p", "province", used=("1", "1Gi"))], usage={"p": {"cpu": Decimal(3)}})
    assert root.used == {"cpu": Decimal(3), "memory": Decimal(0)}


def test_orphans_and_cycles_come_at_the_top_marked():
    ts = [tenant("gz", "province"), tenant("lost", "county", "deleted-city"), tenant("kid", "township", "lost"),
          tenant("a", "city", "b"), tenant("b", "city", "a")]
    forest = tree.build(ts)
    assert [(n.name, n.orphan) for n in forest] == [("gz", None), ("lost", "deleted-city"), ("a", "b")]
    assert [c.name for c in forest[1].children] == ["kid"] and [c.name for c in forest[2].children] == ["b"]
    assert len(list(tree.walk(forest))) == len(ts)  # each once


def test_json_shape():
    [root] = tree.build(FIVE[:2])
    d = root.as_dict()
    assert set(d) == {"name", "level", "phase", "used", "carved", "left", "children"}
    assert d["used"] == {"cpu": "10", "memory": "20Gi"} and d["carved"] == {"cpu": "24", "memory": "64Gi"}
    assert d["left"] == {"cpu": "40", "memory": "192Gi"} and d["children"][0]["name"] == "gy"
    assert tree.build([tenant("x", "city", "nowhere")])[0].as_dict()["orphanOf"] == "nowhere"


def test_levels_order_unknown_last():
    assert sorted(["village", "zone", "city", "", "province", "township", "county"], key=tree.level_key) == \
        ["province", "city", "county", "township", "village", "", "zone"]


# ------------------------------------------------------------------ the command, through a fake cluster

class FakeTenants:
    def __init__(self, items, usage=None):
        self.items, self._usage = items, usage

    def list(self):
        return self.items

    def usage(self):
        from yunshang.client import ClientError

        if self._usage is None:
            raise ClientError("resourcequotas is forbidden")
        return {n: (u, {}) for n, u in self._usage.items()}


def cli(monkeypatch, capfd, fake, *args):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("yunshang.cli.tenant._client", lambda ctx: fake)
    monkeypatch.setattr("sys.argv", ["yunshang", *args])
    code = run_app(app)
    out, err = capfd.readouterr()
    assert code == 0, err
    return out


LONG = "gz-guiyang-bigdata-centre-a"  # 27 characters


@pytest.mark.parametrize("usage", [None, {"gz": {"cpu": Decimal(7), "memory": Decimal(GIB)}}], ids=["status", "live"])
def test_tree_table_fits_80_columns(monkeypatch, capfd, usage):
    ts = FIVE + [tenant(LONG, "city", "gz", phase="Provisioning"), tenant("lost", "county", "gone")]
    out = cli(monkeypatch, capfd, FakeTenants(ts, usage), "tenant", "list", "--tree")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    for header in ("TENANT", "LEVEL", "PHASE", "CPU", "MEMORY", "used/carved/left"):
        assert header in out
    row = next(line for line in lines if line.startswith("gz "))
    assert row.split()[1:] == ["province", "Ready", ("7" if usage else "10") + "/36/28",
                               ("1Gi" if usage else "20Gi") + "/104Gi/152Gi"]
    assert next(line for line in lines if line.startswith("        cun ")).split()[1] == "village"
    assert "lost county Ready 0/0/4 0/0/8Gi orphan: parent gone not found" in " ".join(out.split())
    assert LONG[:15] in out and LONG[-6:] in out  # a long name folds in its own column


def test_tree_json_is_nested(monkeypatch, capfd):
    out = cli(monkeypatch, capfd, FakeTenants(FIVE), "tenant", "list", "--tree", "-o", "json")
    [gz] = json.loads(out)
    assert gz["name"] == "gz" and [c["name"] for c in gz["children"]] == ["gy", "zy"]
    cun = gz["children"][0]["children"][0]["children"][0]["children"][0]
    assert (cun["name"], cun["level"], cun["used"], cun["left"]) == (
        "cun", "village", {"cpu": "250m", "memory": "512Mi"}, {"cpu": "500m", "memory": "1Gi"})


def test_plain_list_is_unchanged(monkeypatch, capfd):
    out = cli(monkeypatch, capfd, FakeTenants(FIVE), "tenant", "list", "-o", "json")
    assert [t["name"] for t in json.loads(out)] == [t["metadata"]["name"] for t in FIVE]
