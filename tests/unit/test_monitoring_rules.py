"""Rules are checked and unit-tested by the real promtool; every alert is tested both ways."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from yunshang.dev import toolchain

MON = Path(__file__).resolve().parents[2] / "monitoring"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(toolchain.find("promtool")), *args], cwd=MON, capture_output=True, text=True)


def test_promtool_check_rules():
    r = promtool("check", "rules", *map(str, sorted((MON / "rules").glob("*.yml"))))
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules():
    r = promtool("test", "rules", *map(str, sorted((MON / "tests").glob("*.test.yml"))))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_every_alert_is_tested_firing_and_silent():
    alerts = {
        rule["alert"]
        for f in (MON / "rules").glob("*.yml")
        for g in yaml.safe_load(f.read_text())["groups"]
        for rule in g["rules"]
        if "alert" in rule
    }
    fires, silent = set(), set()
    for f in (MON / "tests").glob("*.test.yml"):
        for t in yaml.safe_load(f.read_text())["tests"]:
            for a in t.get("alert_rule_test", []):
                (fires if a["exp_alerts"] else silent).add(a["alertname"])
    assert alerts - fires == set(), "alerts never tested firing"
    # an expiry alert with only one series set is tested silent by the a2 sample not firing
    assert alerts - silent - {"YunshangAgreementExpiring"} == set(), "alerts never tested silent"


def test_quarantine_alerts_carry_a_tenant():
    for f in (MON / "rules").glob("*.yml"):
        for g in yaml.safe_load(f.read_text())["groups"]:
            for rule in g["rules"]:
                if rule.get("labels", {}).get("action") == "quarantine":
                    assert "by (tenant)" in rule["expr"], rule["alert"]
