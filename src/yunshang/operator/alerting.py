"""Keeps Alertmanager's configuration in step with the tenants' contacts.

Every ``alerting_seconds`` the tenants' contacts are read from the runtime's cache (each tenant's
parsed once per spec generation) and, when they or the platform's base (``alerting_base``, a JSON
file: ops team, operator endpoint, timing) changed, the configuration is rendered
(`yunshang.alerting.render`) and written where Alertmanager reads it, only when it changed:
- ``alertmanager_config`` (a file; the local platform), then ``alertmanager_url``/-/reload;
- ``alertmanager_secret`` (namespace/name; a real cluster's Alertmanager mounts it, key
  alertmanager.yaml).
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import ValidationError

from .. import alerting
from ..models.tenant import Contact
from .. import kube
from .runtime.cache import TenantRecord
from .runtime.manager import Runtime
from .runtime.settings import Settings

log = logging.getLogger("yunshang.alerting")


class Routing:
    """The tenants' contacts as last parsed, what was last rendered, and what was last written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[str, int, list[Contact]]] = {}  # tenant -> (uid, generation, contacts)
        self.rendered: tuple[str, dict[str, list[Contact]], str | None] | None = None  # (base, contacts, text)
        self.written_secret = ""
        self.loaded = ""  # what Alertmanager was last seen running (the Secret's text)

    def contacts(self, records: Iterable[TenantRecord]) -> dict[str, list[Contact]]:
        """The contacts of these tenants (the ones gone are forgotten), each parsed once per generation."""
        with self._lock:
            seen = {}
            for rec in records:
                hit = self._parsed.get(rec.name)
                if hit is None or hit[:2] != (rec.uid, rec.generation):
                    hit = (rec.uid, rec.generation, _contacts(rec.spec))
                seen[rec.name] = hit
            self._parsed = seen
            return {name: hit[2] for name, hit in seen.items()}


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


def sync_once(routing: Routing, api, settings: Settings, tenants: Iterable[TenantRecord]) -> bool:
    """Write the configuration where it changed; True if anything was written."""
    if not settings.alerting_base:
        return False
    base_file = Path(settings.alerting_base)
    base = base_file.read_text() if base_file.is_file() else ""
    contacts = routing.contacts(tenants)
    if routing.rendered is not None and routing.rendered[:2] == (base, contacts):
        text = routing.rendered[2]  # nothing changed: no render (at thousands of tenants it is not free)
    else:
        text = render_text(base_file, contacts)
        routing.rendered = (base, contacts, text)
    if text is None:
        return False
    wrote = False
    if settings.alertmanager_config:
        target = Path(settings.alertmanager_config)
        if not target.exists() or target.read_text() != text:
            tmp = target.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(target)
            wrote = True
            if settings.alertmanager_url:
                try:
                    urllib.request.urlopen(urllib.request.Request(f"{settings.alertmanager_url}/-/reload", method="POST"), timeout=5)
                except OSError as e:  # not started yet: it reads the file when it starts
                    log.info("alertmanager reload: %s", e)
    if settings.alertmanager_secret and text != routing.written_secret:
        ns, _, name = settings.alertmanager_secret.partition("/")
        kube.apply(api, {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "yunshang"}},
                           "data": {"alertmanager.yaml": base64.b64encode(text.encode()).decode()}})
        routing.written_secret = text
        wrote = True
    if settings.alertmanager_secret and settings.alertmanager_url and routing.written_secret != routing.loaded:
        if reload_until_loaded(settings.alertmanager_url, routing.written_secret):  # then no more asking
            routing.loaded = routing.written_secret
    return wrote


def reload_until_loaded(url: str, text: str) -> bool:
    """Alertmanager reads its Secret from a mounted file that the kubelet refreshes a while after the
    Secret changed: ask it what it runs (/api/v2/status) and reload it until that is ``text``.
    True when it runs ``text``."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/status", timeout=5) as r:
            running = (json.load(r).get("config") or {}).get("original", "")
        if running.strip() == text.strip():
            return True
        urllib.request.urlopen(urllib.request.Request(f"{url}/-/reload", method="POST"), timeout=5)
    except (OSError, ValueError) as e:  # not started yet, or restarting: it reads the file when it starts
        log.info("alertmanager at %s: %s", url, e)
    return False


def setup(rt: Runtime) -> Routing | None:
    """Alert routing on the runtime (only when the platform gave it a base)."""
    st = rt.settings
    if not st.alerting_base:
        return None
    table = Routing()
    # list() of the cache's records is one step under the GIL: the loop may go on changing the cache
    rt.every("alerting", lambda: sync_once(table, rt.api, st, list(rt.cache.tenants.values())), st.alerting_seconds,
             settle=True)
    return table
