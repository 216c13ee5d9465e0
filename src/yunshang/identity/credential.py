"""`yunshang token`, the kubeconfig's credential plugin, on its own fast path: kubectl and the CLI
run it before every request, so it imports neither typer nor rich (yunshang.launch sends it here):
the cached ID token as an ExecCredential (client.authentication.k8s.io/v1), refreshed when it ends
within 30 s; a failure is one line on stderr and exit 1."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from . import oidc

API = "client.authentication.k8s.io/v1"


def until(exp: float) -> str:
    """A token's end (its ``exp``) as the RFC 3339 time ExecCredential and `whoami` show."""
    return dt.datetime.fromtimestamp(exp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exec_credential(provider: oidc.Provider) -> dict:
    tokens = oidc.current(provider, oidc.TokenCache(provider))
    return {"apiVersion": API, "kind": "ExecCredential",
            "status": {"token": tokens["id_token"], "expirationTimestamp": until(oidc.claims(tokens["id_token"])["exp"])}}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="yunshang token", description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True, help="the provider's issuer URL")
    p.add_argument("--client-id", default="yunshang", help="the OIDC client signed in with")
    p.add_argument("--ca-file", default="", help="the CA of the provider's certificate")
    a = p.parse_args(argv)
    try:
        credential = exec_credential(oidc.Provider(a.issuer.rstrip("/"), a.client_id, a.ca_file))
    except oidc.SignInError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    sys.stdout.write(json.dumps(credential) + "\n")
    return 0
