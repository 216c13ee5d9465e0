"""The Alertmanager configuration, checked and routed by the real amtool (Debian's, beside alertmanager)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from yunshang import alerting
from yunshang.dev import toolchain
from yunshang.models.tenant import Contact


@pytest.fixture
def config(tmp_path) -> Path:
    (tmp_path / "token").write_text("t")
    base = alerting.Base(ops=[Contact(name="ops", url="http://127.0.0.1:9/ops")],
                         reviewers={"security": [Contact(name="sec-desk", url="http://127.0.0.1:9/security")]},
                         operator=alerting.OperatorWebhook(url="https://127.0.0.1:9/alerts",
                                                           token_file=str(tmp_path / "token")))
    cfg = alerting.render(base, {"gy-police": [Contact(name="oncall", url="http://127.0.0.1:9/police")],
                                 "gy-health": [Contact(name="oncall", url="http://127.0.0.1:9/health")],
                                 "xf-health": []})
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def amtool() -> str:
    return str(toolchain.find("amtool"))


def routes(config: Path, *labels: str) -> str:
    r = subprocess.run([amtool(), "config", "routes", "test", f"--config.file={config}", *labels],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_config_is_valid(config):
    r = subprocess.run([amtool(), "check-config", str(config)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("labels, receivers", [
    (["alertname=YunshangTenantQuotaPressure", "tenant=gy-police"], "tenant-gy-police,ops"),
    (["alertname=YunshangTenantStuck", "tenant=gy-health"], "tenant-gy-health,ops"),
    (["alertname=YunshangTenantStuck", "tenant=xf-health"], "ops"),  # no contacts of its own
    (["alertname=YunshangOperatorDown"], "ops"),
    # 限时办结: the late role's reviewers, the waiting department, ops; a provider's late decision: its contacts
    (["alertname=YunshangSignOffOverdue", "reviewer=security", "tenant=gy-health"],
     "reviewer-security,tenant-gy-health,ops"),
    (["alertname=YunshangAgreementDecisionOverdue", "tenant=gy-police"], "tenant-gy-police,ops"),
    (["alertname=YunshangTenantProbing", "tenant=gy-police", "action=quarantine"],
     "yunshang-operator,tenant-gy-police,ops"),
])
def test_who_gets_what(config, labels, receivers):
    assert routes(config, *labels) == receivers


def test_inhibition_is_per_tenant():
    quarantine = next(r for r in alerting.INHIBIT if r["source_matchers"] == ['alertname="YunshangTenantQuarantined"'])
    assert quarantine["equal"] == ["tenant"]
