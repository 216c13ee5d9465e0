"""The CLI's fast read path: one GET to the API server with the standard library.

Importing the `kubernetes` package costs about 0.4 s (it loads every API and model class), more
than the whole budget of `yunshang tenant list` (0.3 s, bench/cli_latency.py).  Reads that only
need JSON go through here when the kubeconfig uses what this module understands: a server with a
CA (data or file) or insecure-skip-tls-verify, and client certificates (data or file), a bearer
token (or token file) or an exec credential plugin that gives a token (`yunshang token`, kubelogin:
client.authentication.k8s.io/v1; a plugin that fails is said in one line, where the kubernetes
client would log it and go on anonymously).  Anything else (auth providers, proxies, basic auth)
raises `Unsupported` and the caller uses the kubernetes client instead, so nothing is lost.
"""
from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.parse
from http.client import HTTPSConnection, HTTPConnection
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_USER_KEYS = {"client-certificate", "client-certificate-data", "client-key", "client-key-data",
                       "token", "tokenFile", "exec"}
EXEC_APIS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class Unsupported(Exception):
    """This kubeconfig needs the full client."""


class RestError(Exception):
    def __init__(self, status: int, reason: str, body: str):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body


class Unreachable(Exception):
    pass


class CredentialFailed(Exception):
    """The kubeconfig's credential plugin said no (its last line of stderr)."""


def exec_credential(spec: dict) -> str:
    """The token an exec credential plugin gives (it is run as kubectl runs it, not interactively)."""
    import os
    import subprocess

    if spec.get("apiVersion") not in EXEC_APIS:
        raise Unsupported(f"exec plugin apiVersion {spec.get('apiVersion')!r}")
    env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []},
           "KUBERNETES_EXEC_INFO": json.dumps({"apiVersion": spec["apiVersion"], "kind": "ExecCredential",
                                               "spec": {"interactive": False}})}
    try:
        r = subprocess.run([spec["command"], *(spec.get("args") or [])], capture_output=True, text=True, env=env,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CredentialFailed(f"the kubeconfig's credential plugin {spec['command']!r} did not run: {e}") from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
        raise CredentialFailed((lines[-1].removeprefix("error: ") if lines else
                                f"the kubeconfig's credential plugin {spec['command']!r} exited {r.returncode}"))
    status = json.loads(r.stdout).get("status") or {}
    if not status.get("token"):
        raise Unsupported("an exec plugin that gives no token (client certificates)")
    return status["token"]


def _named(items: list[dict] | None, name: str, what: str) -> dict:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise Unsupported(f"no {what} {name!r}")


class Endpoint:
    """Server, TLS context and headers of one kubeconfig context."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        path = Path(kubeconfig or "~/.kube/config").expanduser()
        try:
            doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        except (OSError, yaml.YAMLError) as e:
            raise Unsupported(str(e)) from None
        ctx_name = context or doc.get("current-context")
        ctx = _named(doc.get("contexts"), ctx_name, "context")
        cluster = _named(doc.get("clusters"), ctx.get("cluster"), "cluster")
        user = _named(doc.get("users"), ctx.get("user"), "user") if ctx.get("user") else {}
        if set(user) - SUPPORTED_USER_KEYS or cluster.get("proxy-url") or "server" not in cluster:
            raise Unsupported("this kubeconfig needs the kubernetes client")
        self.host = cluster["server"].rstrip("/")
        url = urllib.parse.urlsplit(self.host)
        self.scheme, self.netloc, self.prefix = url.scheme, url.netloc, url.path
        self.headers = {"Accept": "application/json", "User-Agent": "yunshang-cli"}
        base = path.parent
        if user.get("token") or user.get("tokenFile"):
            token = user.get("token") or (base / user["tokenFile"]).read_text().strip()
            self.headers["Authorization"] = f"Bearer {token}"
        elif user.get("exec"):
            self.headers["Authorization"] = f"Bearer {exec_credential(user['exec'])}"
        self.tls: ssl.SSLContext | None = None
        if self.scheme == "https":
            self.tls = self._tls(cluster, user, base)

    @staticmethod
    def _tls(cluster: dict, user: dict, base: Path) -> ssl.SSLContext:
        if cluster.get("insecure-skip-tls-verify"):
            tls = ssl._create_unverified_context()  # what the kubeconfig asks for
        elif cluster.get("certificate-authority-data"):
            tls = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            tls = ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
        else:
            tls = ssl.create_default_context()
        if cluster.get("tls-server-name"):
            raise Unsupported("tls-server-name")
        cert, key = user.get("client-certificate-data"), user.get("client-key-data")
        if cert or key:
            # ssl loads a client certificate from files only: a private temporary directory, gone at once
            with tempfile.TemporaryDirectory(prefix="yunshang-") as d:
                cf, kf = Path(d) / "cert", Path(d) / "key"
                cf.write_bytes(base64.b64decode(cert or ""))
                kf.touch(mode=0o600)
                kf.write_bytes(base64.b64decode(key or ""))
                tls.load_cert_chain(cf, kf)
        elif user.get("client-certificate"):
            tls.load_cert_chain(base / user["client-certificate"], base / user["client-key"])
        return tls

    def send_raw(self, method: str, path: str, *, body: Any = None, query: list[tuple[str, str]] | None = None,
                 content_type: str | None = None, timeout: float = 30) -> Any:
        """One request (yunshang.kube's transport) -> the decoded JSON; RestError, Unreachable."""
        conn = (HTTPSConnection(self.netloc, timeout=timeout, context=self.tls) if self.tls
                else HTTPConnection(self.netloc, timeout=timeout))
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        url = self.prefix + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        try:
            conn.request(method, url, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        except (OSError, ssl.SSLError) as e:
            raise Unreachable(str(e) or type(e).__name__) from None
        finally:
            conn.close()
        if resp.status >= 400:
            raise RestError(resp.status, resp.reason, text)
        return json.loads(text) if text else {}
