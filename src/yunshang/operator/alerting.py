"""Keeps Alertmanager's configuration in step with the tenants' contacts.

Tenant events update an in-memory map tenant -> contacts; every YUNSHANG_ALERTING_SECONDS the
configuration is rendered (`yunshang.alerting.render`) from the platform's base
(YUNSHANG_ALERTING_BASE, a JSON file: ops team, operator endpoint, timing) and written where
Alertmanager reads it, only when it changed:
- YUNSHANG_ALERTMANAGER_CONFIG (a file; the local platform), then YUNSHANG_ALERTMANAGER_URL/-/reload;
- YUNSHANG_ALERTMANAGER_SECRET (namespace/name; a real cluster's Alertmanager mounts it, key
  alertmanager.yaml).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import threading
import urllib.request
from pathlib import Path
from typing import Any

import kopf
import yaml
from pydantic import ValidationError

from .. import alerting
from ..models.tenant import Contact
from . import kube
from .handlers import TENANTS, reconciler, spawn_rounds

log = logging.getLogger("yunshang.alerting")
BASE = os.environ.get("YUNSHANG_ALERTING_BASE", "")
CONFIG_FILE = os.environ.get("YUNSHANG_ALERTMANAGER_CONFIG", "")
RELOAD_URL = os.environ.get("YUNSHANG_ALERTMANAGER_URL", "")
SECRET = os.environ.get("YUNSHANG_ALERTMANAGER_SECRET", "")
SECONDS = float(os.environ.get("YUNSHANG_ALERTING_SECONDS", "5"))


class Routing:
    """The tenants' contacts as last seen, and what was last written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contacts: dict[str, list[Contact]] = {}
        self.written_secret = ""

    def set(self, tenant: str, contacts: list[Contact] | None) -> None:
        with self._lock:
            if contacts is None:
                self.contacts.pop(tenant, None)
            else:
                self.contacts[tenant] = contacts

    def snapshot(self) -> dict[str, list[Contact]]:
        with self._lock:
            return dict(self.contacts)


def _contacts(spec: Any) -> list[Contact]:
    out = []
    for c in (spec or {}).get("contacts") or []:
        try:
            out.append(Contact.model_validate(c))
        except ValidationError:
            continue  # the CRD schema validates; an odd entry must not stop everyone's alerts
    return out


def render_text(base_file: Path, contacts: dict[str, list[Contact]]) -> str | None:
    if not base_file.is_file():
        return None
    base = alerting.Base.model_validate(json.loads(base_file.read_text()))
    return yaml.safe_dump(alerting.render(base, contacts), sort_keys=False)


def sync_once(routing: Routing, api) -> bool:
    """Write the configuration where it changed; True if anything was written."""
    text = render_text(Path(BASE), routing.snapshot()) if BASE else None
    if text is None:
        return False
    wrote = False
    if CONFIG_FILE:
        target = Path(CONFIG_FILE)
        if not target.exists() or target.read_text() != text:
            tmp = target.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(target)
            wrote = True
            if RELOAD_URL:
                try:
                    urllib.request.urlopen(urllib.request.Request(f"{RELOAD_URL}/-/reload", method="POST"), timeout=5)
                except OSError as e:  # not started yet: it reads the file when it starts
                    log.info("alertmanager reload: %s", e)
    if SECRET and text != routing.written_secret:
        ns, _, name = SECRET.partition("/")
        kube.apply(api, {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "yunshang"}},
                           "data": {"alertmanager.yaml": base64.b64encode(text.encode()).decode()}})
        routing.written_secret = text
        wrote = True
    return wrote


def routing(memo: kopf.Memo) -> Routing:
    return memo.setdefault("routing", Routing())


@kopf.on.event(*TENANTS, id="tenant_contacts")
async def tenant_contacts(event: dict, name: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    routing(memo).set(name, None if event.get("type") == "DELETED" else _contacts(spec))


@kopf.on.startup()
async def start_alerting(memo: kopf.Memo, **_: Any) -> None:
    if BASE:
        table = routing(memo)
        spawn_rounds(memo, "alerting", lambda: sync_once(table, reconciler(memo).api), SECONDS)
