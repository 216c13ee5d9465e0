"""HTTP endpoints the operator serves (loopback by default, bearer-token protected):

- ``POST /alerts``: Alertmanager's webhook.  A firing alert labelled ``action=quarantine`` with a
  ``tenant`` label quarantines that tenant (no new pods, no traffic but the platform's own,
  data kept, reason recorded); only an admin lifts it (`yunshang tenant resume`).
- ``POST /audit``: the API server's audit webhook.  Refused requests (reads and writes) are counted
  against the departments of the identity that made them, never against the owner of what they
  aimed at (``yunshang_tenant_denied_requests_total{tenant,reason}``): repeated pod-security, RBAC or
  admission-policy denials by one department are a sign of probing, and a rule fires on them.

Calls without the token get 401; malformed bodies get 400 with what is wrong.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from typing import Callable, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .runtime import metrics

log = logging.getLogger("yunshang.webhooks")


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None  # noqa: N815  (Alertmanager's field name)


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


class AuditObjectRef(BaseModel):
    model_config = ConfigDict(extra="allow")
    namespace: str | None = None
    resource: str | None = None


class AuditStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: int | None = None
    message: str | None = None


class AuditUser(BaseModel):
    model_config = ConfigDict(extra="allow")
    username: str = ""
    groups: list[str] = Field(default_factory=list)


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    stage: str | None = None
    verb: str | None = None
    user: AuditUser = Field(default_factory=AuditUser)
    impersonatedUser: AuditUser | None = None  # noqa: N815
    objectRef: AuditObjectRef | None = None  # noqa: N815
    responseStatus: AuditStatus | None = None  # noqa: N815
    annotations: dict[str, str] = Field(default_factory=dict)


class AuditEventList(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["EventList"]
    items: list[AuditEvent] = Field(default_factory=list)


def denial_reason(ev: AuditEvent) -> str | None:
    """podsecurity, rbac (a write), rbac-read (a get, list or watch), policy (a ValidatingAdmissionPolicy's
    refusal) or None (not a denial worth counting).  A department getting or listing what RBAC refuses
    is probing too; the rules allow more of them (a department asking for its own tenant before the
    operator granted it is refused a few times)."""
    if not ev.responseStatus or ev.responseStatus.code not in (403, 422):
        return None
    msg = ev.responseStatus.message or ""
    if "violates PodSecurity" in msg or any(k.startswith("pod-security.kubernetes.io/enforce") for k in ev.annotations):
        return "podsecurity"
    if ev.responseStatus.code == 403 and (ev.annotations.get("authorization.k8s.io/decision") == "forbid"
                                          or " is forbidden: User " in msg):
        return "rbac-read" if ev.verb in ("get", "list", "watch") else "rbac"
    if "ValidatingAdmissionPolicy" in msg and "denied request" in msg:
        return "policy"
    return None


def tenants_of(ev: AuditEvent, owned_by: Callable[[str, list[str]], list[str]], dept_prefix: str) -> list[str]:
    """The departments of the identity that made the request (its ``yunshang:dept:<tenant>`` groups,
    else the tenants it owns by name): never the owner of the namespace it aimed at, so that a
    department probing another one is counted, not its victim."""
    who = ev.impersonatedUser or ev.user
    depts = sorted({g[len(dept_prefix):] for g in who.groups if g.startswith(dept_prefix)})
    return depts or owned_by(who.username, who.groups)


def _authorised(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    return bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token)


def make_app(token: str, quarantine: Callable[[str, str, str], bool],
             owned_by: Callable[[str, list[str]], list[str]], dept_prefix: str,
             record: Callable[[list[dict]], int] = lambda events: 0,
             authorize: Callable[[dict], str | None] = lambda spec: None) -> web.Application:
    """``authorize(spec)``: why a SubjectAccessReview's spec is allowed, or None (yunshang.views.authorize)."""
    async def alerts(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            payload = AlertmanagerPayload.model_validate(await request.json())
        except (ValueError, ValidationError) as e:
            return web.json_response({"error": f"not an Alertmanager webhook payload: {str(e).splitlines()[0]}"}, status=400)
        done = []
        loop = asyncio.get_running_loop()
        for a in payload.alerts:
            tenant = a.labels.get("tenant")
            if a.status != "firing" or a.labels.get("action") != "quarantine" or not tenant:
                continue
            name = a.labels.get("alertname", "alert")
            reason = a.annotations.get("summary") or name
            changed = await loop.run_in_executor(None, quarantine, tenant, reason, name)
            if changed:
                metrics.QUARANTINES.labels(tenant, name).inc()
            done.append(tenant)
        return web.json_response({"quarantined": done})

    async def audit(request: web.Request) -> web.Response:
        if not _authorised(request, token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            raw = await request.json()
            events = AuditEventList.model_validate(raw)
        except (ValueError, ValidationError) as e:
            return web.json_response({"error": f"not an audit EventList: {str(e).splitlines()[0]}"}, status=400)
        ours = [ev for ev in raw.get("items", []) if (ev.get("objectRef") or {}).get("apiGroup") == "platform.yunshang.io"]
        recorded = await asyncio.get_running_loop().run_in_executor(None, record, ours) if ours else 0
        counted = 0
        for ev in events.items:
            if ev.stage not in (None, "ResponseComplete"):
                continue
            reason = denial_reason(ev)
            for tenant in tenants_of(ev, owned_by, dept_prefix) if reason else ():
                metrics.TENANTS.count_denied(tenant, reason)
                counted += 1
        return web.json_response({"counted": counted, "recorded": recorded})

    async def authorization(request: web.Request) -> web.Response:
        """The API server's authorization webhook (need-to-know): answered on the loop, from the caches."""
        if not _authorised(request, token):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            review = await request.json()
            spec = review["spec"]
            reason = authorize(spec)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return web.json_response({"error": f"not a SubjectAccessReview: {e}"}, status=400)
        metrics.AUTHORIZATIONS.labels("allowed" if reason else "no-opinion").inc()
        status = {"allowed": True, "reason": reason} if reason else {"allowed": False}
        return web.json_response({"apiVersion": review.get("apiVersion", "authorization.k8s.io/v1"),
                                  "kind": "SubjectAccessReview", "status": status})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/alerts", alerts)
    app.router.add_post("/audit", audit)
    app.router.add_post("/authorize", authorization)
    app.router.add_get("/healthz", health)
    return app


async def serve(app: web.Application, host: str, port: int, cert: str = "", key: str = "") -> web.AppRunner:
    """Serve on host:port, over TLS when a certificate is given (the API server sends its
    audit webhook's token only over TLS)."""
    import ssl

    ctx = None
    if cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ctx).start()
    log.info("webhooks on %s://%s:%s (/alerts, /audit, /authorize)", "https" if ctx else "http", host, port)
    return runner


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
