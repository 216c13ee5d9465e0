"""Signing in from the CLI, the way kubelogin does: OIDC discovery, the authorization code flow with
PKCE (S256) on a loopback redirect, or the device authorization grant where no browser is at hand;
tokens cached in the user's config directory (0600) and refreshed silently.

The authorization request and the code exchange are prepared by oauthlib (PKCE's verifier and S256
challenge, the request bodies); what it has no client for (the loopback listener, the device
grant's polling, refresh and revocation, three form posts) is here, sent with requests.  Every failure is a ``SignInError``
with one line saying what to do.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import os
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable

SCOPES = ["openid", "profile", "email"]
SKEW = 60  # seconds of clock difference a token's times are allowed before the CLI says the clock is off
EARLY = 30  # refresh a token this many seconds before it ends


class SignInError(Exception):
    """One line: what went wrong and what to do."""


def _requests():
    import requests

    return requests


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "yunshang"


@dataclasses.dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str = "yunshang"
    ca_file: str = ""

    @property
    def verify(self) -> str | bool:
        # given per request: a session's verify loses to $REQUESTS_CA_BUNDLE
        return self.ca_file or True

    def _get(self, url: str):
        requests = _requests()
        try:
            return requests.get(url, verify=self.verify, timeout=10)
        except requests.exceptions.SSLError:
            raise SignInError(f"the identity provider {self.issuer} has a certificate this machine does not "
                              "trust; pass its CA with --ca-file (yunshang:identity.caFile)") from None
        except requests.exceptions.ConnectionError:
            raise SignInError(f"the identity provider at {self.issuer} does not answer; is it running? "
                              "(locally: `yunshang dev status`; else ask the platform team)") from None
        except requests.exceptions.Timeout:
            raise SignInError(f"the identity provider at {self.issuer} did not answer within 10 s; try again") from None

    def discovery(self) -> dict[str, Any]:
        r = self._get(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if r.status_code != 200:
            raise SignInError(f"no OIDC provider at {self.issuer} (discovery answered {r.status_code}); check the "
                              "issuer URL (--issuer, yunshang:identity.issuer)")
        doc = r.json()
        if doc.get("issuer") != self.issuer:
            raise SignInError(f"wrong issuer: the provider at that address calls itself {doc.get('issuer')!r}, not "
                              f"{self.issuer!r}; fix yunshang:identity.issuer (or --issuer)")
        return doc

    def post(self, url: str, data: dict[str, str]):
        requests = _requests()
        try:
            return requests.post(url, data=data, verify=self.verify, timeout=10)
        except requests.exceptions.RequestException:
            raise SignInError(f"the identity provider at {self.issuer} does not answer; is it running? "
                              "(locally: `yunshang dev status`)") from None


# --------------------------------------------------------------------------- tokens

def claims(jwt: str) -> dict[str, Any]:
    """A JWT's payload, unverified: for showing and for timing refreshes only (the API server verifies)."""
    try:
        part = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        raise SignInError("the cached token is not a JWT; run `yunshang login` again") from None


def check_clock(id_token: str, now: float | None = None) -> None:
    """A token just issued must look current here: else this machine's clock is off (the API server
    would refuse it, or soon)."""
    now = time.time() if now is None else now
    c = claims(id_token)
    iat, exp = c.get("iat", now), c.get("exp", now)
    if iat - now > SKEW or now - exp > 0:
        off = iat - now
        raise SignInError(f"this machine's clock is {abs(off):.0f} s {'behind' if off > 0 else 'ahead of'} the "
                          "identity provider's: set it (NTP, `timedatectl set-ntp true`) and sign in again")


class TokenCache:
    """The tokens of one provider and client, in ``<config dir>/tokens/`` (0700 dir, 0600 file)."""

    def __init__(self, provider: Provider, root: Path | None = None):
        key = hashlib.sha256(f"{provider.issuer}|{provider.client_id}".encode()).hexdigest()[:16]
        self.path = (root or config_dir() / "tokens") / f"{key}.json"

    def load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def save(self, tokens: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({k: tokens[k] for k in ("id_token", "refresh_token", "access_token") if k in tokens}, f)
        os.replace(tmp, self.path)

    def remove(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False


def _oauth_error(r) -> tuple[str, str]:
    try:
        body = r.json()
    except ValueError:
        body = {}
    return body.get("error", f"HTTP {r.status_code}"), body.get("error_description", "")


def _token_response(provider: Provider, r) -> dict[str, Any]:
    if r.status_code != 200:
        error, why = _oauth_error(r)
        raise SignInError(f"the identity provider refused the sign-in: {error}{': ' + why if why else ''}")
    tokens = r.json()
    if "id_token" not in tokens:
        raise SignInError(f"the identity provider gave no ID token: is client {provider.client_id!r} an OIDC "
                          "client with scope openid?")
    check_clock(tokens["id_token"])
    return tokens


# --------------------------------------------------------------------------- the browser flow

class _Callback(BaseHTTPRequestHandler):
    result: dict[str, str] = {}

    def do_GET(self):  # noqa: N802
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        if "code" not in query and "error" not in query:
            self.send_response(404)
            self.end_headers()
            return
        self.server.result = query  # type: ignore[attr-defined]
        ok = "code" in query
        text = "已登录 signed in: you can close this tab and go back to the terminal" if ok else \
            f"sign-in refused: {html.escape(query.get('error_description') or query.get('error', ''))}"
        body = f"<!doctype html><meta charset=utf-8><title>yunshang</title><p>{text}</p>".encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def login_browser(provider: Provider, open_url: Callable[[str], bool], timeout: float = 300) -> dict[str, Any]:
    """Authorization code with PKCE: a one-shot listener on 127.0.0.1 receives the provider's redirect.
    ``open_url`` shows the URL to the person (a browser; False: none could be opened)."""
    from oauthlib.oauth2 import WebApplicationClient

    doc = provider.discovery()
    server = HTTPServer(("127.0.0.1", 0), _Callback)
    server.result = {}  # type: ignore[attr-defined]
    server.timeout = 1
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    client = WebApplicationClient(provider.client_id)
    verifier = client.create_code_verifier(64)
    state = secrets.token_urlsafe(24)
    url = client.prepare_request_uri(doc["authorization_endpoint"], redirect_uri=redirect, scope=SCOPES, state=state,
                                     code_challenge=client.create_code_challenge(verifier, "S256"),
                                     code_challenge_method="S256")
    done = threading.Event()

    def serve() -> None:  # beside the browser: a $BROWSER command may not return before the redirect
        while not server.result and not done.is_set():  # type: ignore[attr-defined]
            server.handle_request()
        done.set()
    listener = threading.Thread(target=serve, daemon=True)
    listener.start()
    try:
        if not open_url(url) and not server.result:  # type: ignore[attr-defined]
            raise SignInError("no web browser could be opened on this machine: sign in from another device with "
                              "`yunshang login --device`, or open the URL yourself with `yunshang login --no-browser`")
        done.wait(timeout)
    finally:
        done.set()
        listener.join(timeout=3)
        server.server_close()
    result: dict[str, str] = server.result  # type: ignore[attr-defined]
    if not result:
        raise SignInError(f"no sign-in within {timeout:.0f} s; run `yunshang login` again (or `--device`)")
    if "error" in result:
        raise SignInError(f"the identity provider refused the sign-in: {result.get('error_description') or result['error']}")
    if not secrets.compare_digest(result.get("state", ""), state):
        raise SignInError("the sign-in came back with another state (not this login's): run `yunshang login` again")
    body = dict(urllib.parse.parse_qsl(client.prepare_request_body(
        code=result["code"], redirect_uri=redirect, code_verifier=verifier, include_client_id=True)))
    return _token_response(provider, provider.post(doc["token_endpoint"], body))


# --------------------------------------------------------------------------- the device grant

def login_device(provider: Provider, show: Callable[[str, str, str], None], timeout: float = 600) -> dict[str, Any]:
    """Device authorization grant (RFC 8628): ``show(verification_uri, user_code, complete_uri)`` tells
    the person where to go; this polls until they have signed in there."""
    doc = provider.discovery()
    endpoint = doc.get("device_authorization_endpoint")
    if not endpoint:
        raise SignInError(f"the provider at {provider.issuer} offers no device grant; use `yunshang login` with a browser")
    from oauthlib.oauth2 import WebApplicationClient

    pkce = WebApplicationClient(provider.client_id)  # a provider that asks PKCE of the client asks it here too
    verifier = pkce.create_code_verifier(64)
    r = provider.post(endpoint, {"client_id": provider.client_id, "scope": " ".join(SCOPES),
                                 "code_challenge": pkce.create_code_challenge(verifier, "S256"),
                                 "code_challenge_method": "S256"})
    if r.status_code != 200:
        error, why = _oauth_error(r)
        raise SignInError(f"the provider refused the device grant for client {provider.client_id!r}: {error} {why}".strip())
    d = r.json()
    show(d["verification_uri"], d["user_code"], d.get("verification_uri_complete", ""))
    interval = float(d.get("interval", 5))
    deadline = time.monotonic() + min(timeout, float(d.get("expires_in", timeout)))
    while time.monotonic() < deadline:
        time.sleep(interval)
        r = provider.post(doc["token_endpoint"], {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                                  "device_code": d["device_code"], "client_id": provider.client_id,
                                                  "code_verifier": verifier})
        if r.status_code == 200:
            return _token_response(provider, r)
        error, why = _oauth_error(r)
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        if error == "access_denied":
            raise SignInError("the sign-in was declined on the other device; run `yunshang login --device` again")
        if error == "expired_token":
            break
        raise SignInError(f"the identity provider refused the sign-in: {error}{': ' + why if why else ''}")
    raise SignInError("the code expired before anyone signed in with it; run `yunshang login --device` again")


# --------------------------------------------------------------------------- after sign-in

def refresh(provider: Provider, tokens: dict[str, Any]) -> dict[str, Any]:
    """New tokens for a refresh token; a provider that says no (session ended, user disabled,
    refresh token expired) means signing in again."""
    doc = provider.discovery()
    if not tokens.get("refresh_token"):
        raise SignInError("your sign-in has ended; run `yunshang login`")
    r = provider.post(doc["token_endpoint"], {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                              "client_id": provider.client_id})
    if r.status_code != 200:
        error, why = _oauth_error(r)
        raise SignInError(f"your sign-in has ended (the provider said: {why or error}); run `yunshang login`")
    return _token_response(provider, r)


def current(provider: Provider, cache: TokenCache, now: float | None = None) -> dict[str, Any]:
    """The cached tokens, refreshed first when the ID token ends within ``EARLY`` seconds."""
    tokens = cache.load()
    if not tokens:
        raise SignInError(f"not signed in to {provider.issuer}; run `yunshang login`")
    now = time.time() if now is None else now
    if claims(tokens["id_token"]).get("exp", 0) - EARLY <= now:
        tokens = refresh(provider, tokens)
        cache.save(tokens)
    return tokens


def logout(provider: Provider, cache: TokenCache) -> str:
    """Forget the cached tokens and end the session at the provider (its revocation endpoint)."""
    tokens = cache.load()
    cache.remove()
    if not tokens or not tokens.get("refresh_token"):
        return "not signed in"
    try:
        doc = provider.discovery()
        endpoint = doc.get("revocation_endpoint")
        if endpoint:
            provider.post(endpoint, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token",
                                     "client_id": provider.client_id})
            return "signed out (the provider ended the session)"
    except SignInError as e:
        return f"signed out here; the provider was not told ({e})"
    return "signed out here (the provider offers no revocation)"
