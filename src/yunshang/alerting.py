"""Who gets which alert: the Alertmanager configuration as a pure function.

Every tenant-scoped alert (label ``tenant``) goes to that tenant's contacts (spec.contacts) and
to the platform's ops team; an overdue sign-off (label ``reviewer``) also to that role's reviewers; platform alerts go to ops; alerts that ask for an automatic response
(``action="quarantine"``) also go to the operator.  Grouping and inhibition follow what an
on-call engineer expects: one notification per alert and tenant, a quarantined tenant's other
alerts and a lapsed review's reminders held back, alerts the operator's absence explains held
back while it is down, and a critical alert silencing its own warning.

The same function renders the local platform's file (`yunshang dev up`, kept current by the
operator) and the Secret the operator keeps on a real cluster (`pulumi up` ships the base).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from pydantic import Field

from .models.tenant import Contact, Model

OPS = "ops"
OPERATOR = "yunshang-operator"


def tenant_receiver(tenant: str) -> str:
    return f"tenant-{tenant}"


def reviewer_receiver(role: str) -> str:
    return f"reviewer-{role}"


class Timing(Model):
    group_wait: str = "30s"
    """How long to wait to group a new alert with others."""
    group_interval: str = "5m"
    """How long before a group's new alerts are sent."""
    repeat_interval: str = "4h"
    """How long before a still-firing alert is sent again."""


class OperatorWebhook(Model):
    """The operator's /alerts endpoint (automatic responses)."""

    url: str
    token_file: str
    ca_file: str = ""


class Base(Model):
    """What the platform decides (stack config yunshang:alerting): the ops team, the operator's
    endpoint, timing.  Tenants add their own contacts."""

    ops: list[Contact] = Field(default_factory=list, max_length=16)
    """The platform bureau's ops team: receives every alert."""
    reviewers: dict[str, list[Contact]] = Field(default_factory=dict, max_length=16)
    """Per reviewer role (parallel sign-off): who is told when that role's decisions are overdue
    (alerts labelled reviewer=<role>)."""
    operator: OperatorWebhook | None = None
    timing: Timing = Field(default_factory=Timing)


def _webhooks(contacts: Sequence[Contact]) -> list[dict]:
    return [{"url": c.url, "send_resolved": True} for c in contacts]


INHIBIT = [
    # a quarantined tenant: its other alerts add nothing until the quarantine is lifted
    {"source_matchers": ['alertname="YunshangTenantQuarantined"'],
     "target_matchers": ['alertname!="YunshangTenantQuarantined"', 'tenant=~".+"'], "equal": ["tenant"]},
    # a lapsed review: the "due" reminder and the resulting stuck/pressure noise are explained
    {"source_matchers": ['alertname="YunshangTenantReviewLapsed"'],
     "target_matchers": ['alertname=~"YunshangTenantReviewDue|YunshangTenantStuck"'], "equal": ["tenant"]},
    # the operator down explains tenants that do not progress and reconciles that fail
    {"source_matchers": ['alertname="YunshangOperatorDown"'],
     "target_matchers": ['alertname=~"YunshangTenantStuck|YunshangReconcileErrors"']},
    # a critical alert silences the same alert's lesser severities for the same tenant
    {"source_matchers": ['severity="critical"'], "target_matchers": ['severity=~"warning|info"'],
     "equal": ["alertname", "tenant"]},
]


def render(base: Base, tenants: Mapping[str, Sequence[Contact]]) -> dict:
    """The Alertmanager configuration for these tenants' contacts."""
    receivers: list[dict] = [{"name": OPS, **({"webhook_configs": _webhooks(base.ops)} if base.ops else {})}]
    routes: list[dict] = []
    if base.operator:
        http = {"authorization": {"type": "Bearer", "credentials_file": base.operator.token_file}}
        if base.operator.ca_file:
            http["tls_config"] = {"ca_file": base.operator.ca_file}
        receivers.append({"name": OPERATOR, "webhook_configs": [
            {"url": base.operator.url, "send_resolved": False, "http_config": http}]})
        routes.append({"receiver": OPERATOR, "matchers": ['action="quarantine"'], "continue": True})
    for role in sorted(base.reviewers):
        if base.reviewers[role]:
            receivers.append({"name": reviewer_receiver(role), "webhook_configs": _webhooks(base.reviewers[role])})
            routes.append({"receiver": reviewer_receiver(role), "matchers": [f'reviewer="{role}"'], "continue": True})
    for tenant in sorted(tenants):
        if tenants[tenant]:
            receivers.append({"name": tenant_receiver(tenant), "webhook_configs": _webhooks(tenants[tenant])})
            routes.append({"receiver": tenant_receiver(tenant), "matchers": [f'tenant="{tenant}"'], "continue": True})
    routes.append({"receiver": OPS})  # every alert, tenant-scoped or the platform's, reaches ops
    return {
        "route": {"receiver": OPS, "group_by": ["alertname", "tenant"],
                  "group_wait": base.timing.group_wait, "group_interval": base.timing.group_interval,
                  "repeat_interval": base.timing.repeat_interval, "routes": routes},
        "receivers": receivers,
        "inhibit_rules": INHIBIT,
    }
