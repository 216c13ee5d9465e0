"""The CLI answers at once: `--help` loads neither the Kubernetes client nor the models, and
reads take the light path (yunshang.rest) only for kubeconfigs it understands."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from yunshang import rest
from yunshang.client import ClientError, Tenants

HEAVY = ("kubernetes", "yunshang.models.tenant", "yunshang.tenancy", "pulumi", "cryptography")


def loaded_after(*argv: str) -> list[str]:
    code = ("import sys, json\n"
            f"sys.argv = ['yunshang', *{list(argv)!r}]\n"
            "from yunshang.cli import app\nfrom yunshang.cli.common import run_app\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()): run_app(app)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["tenant", "--help"], ["share", "--help"], ["dev", "--help"]])
def test_help_loads_nothing_heavy(argv):
    assert loaded_after(*argv) == []


def kubeconfig(tmp_path, user: dict, cluster: dict | None = None) -> str:
    import yaml

    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(kc)


def test_token_kubeconfig_takes_the_light_path(tmp_path):
    ep = rest.Endpoint(kubeconfig(tmp_path, {"token": "abc"}))
    assert ep.host == "https://127.0.0.1:1" and ep.headers["Authorization"] == "Bearer abc"
    t = Tenants(kubeconfig(tmp_path, {"token": "abc"}))
    assert t.rest is not None and t._api is None  # the kubernetes client is not even built


def _jwt(claims: dict) -> str:
    import base64

    part = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


EXEC_CREDENTIAL = json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                              "status": {"token": "from-exec"}})
ID_TOKEN = _jwt({"iss": "https://idp.gz.gov.local", "exp": 4102444800})  # 2100-01-01


def test_the_light_path_runs_an_exec_plugin_and_sends_its_token(tmp_path):
    path = kubeconfig(tmp_path, {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                                          "args": ["-c", f"print({EXEC_CREDENTIAL!r})"], "interactiveMode": "Never"}})
    assert rest.Endpoint(path).headers["Authorization"] == "Bearer from-exec"


def test_a_credential_plugin_that_says_no_is_one_line_not_an_anonymous_request(tmp_path):
    """The kubernetes client logs a failed exec plugin and goes on without credentials (the API server
    then answers 403 for system:anonymous); the CLI says the plugin's own words instead."""
    script = "import sys; sys.stderr.write('error: not signed in to https://sso; run `yunshang login`\\n'); sys.exit(1)"
    path = kubeconfig(tmp_path, {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                                          "args": ["-c", script]}})
    with pytest.raises(ClientError) as e:
        Tenants(path)
    assert str(e.value) == "not signed in to https://sso; run `yunshang login`"


@pytest.mark.parametrize("user,cluster,authorization,proxy", [
    ({"auth-provider": {"name": "oidc", "config": {"id-token": ID_TOKEN, "client-id": "yunshang",
                                                    "idp-issuer-url": "https://idp.gz.gov.local"}}},
     None, f"Bearer {ID_TOKEN}", None),
    ({"token": "abc"}, {"server": "https://127.0.0.1:1", "proxy-url": "http://proxy:3128"}, "Bearer abc",
     "http://proxy:3128"),
], ids=["oidc", "proxy-url"])
def test_what_the_light_path_does_not_understand_goes_to_the_kubernetes_client(tmp_path, user, cluster,
                                                                                authorization, proxy):
    path = kubeconfig(tmp_path, user, cluster)
    with pytest.raises(rest.Unsupported):
        rest.Endpoint(path)
    t = Tenants(path)  # no ClientError: the kubernetes client takes these kubeconfigs
    assert t.rest is None and t._api is not None
    # ... and it is configured from this kubeconfig: its server, its credentials, its proxy
    conf = t._api.configuration
    assert conf.host == "https://127.0.0.1:1"
    assert conf.api_key == {"BearerToken": authorization}
    assert conf.proxy == proxy


def test_what_neither_path_can_use_fails_in_one_line(tmp_path):
    path = kubeconfig(tmp_path, {"client-certificate": str(tmp_path / "gone.crt"),
                                 "client-key": str(tmp_path / "gone.key")})
    with pytest.raises(OSError):  # the light path cannot read the certificate ...
        rest.Endpoint(path)
    with pytest.raises(ClientError) as e:  # ... nor can the kubernetes client: one line naming the file
        Tenants(path)
    assert "gone.crt" in str(e.value) and "\n" not in str(e.value)


def test_missing_kubeconfig_is_one_line(tmp_path):
    with pytest.raises(ClientError, match="cannot use .*nowhere.*yunshang dev up"):
        Tenants(str(tmp_path / "nowhere"))
