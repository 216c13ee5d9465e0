"""统一身份认证 through the real parts: Keycloak (the realm `yunshang dev up` loads), the real API
server trusting it through its AuthenticationConfiguration, the real `yunshang login | token |
whoami`.  Every refusal is tried as an attacker would, beside a signed-in request that works."""
from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from factories import approval, tenant
from helpers import knock_out_if_asked, wait_for
from signin import SignInRefused, approve_device, sign_in

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
YUNSHANG = str(Path(sys.executable).with_name("yunshang"))
SIGNIN = str(ROOT / "tests" / "signin.py")
TENANTS = "/apis/platform.yunshang.io/v1alpha1/tenants"
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# the catalog's departments the realm knows, made Ready here (levels as in tenants/)
SMALL = {"cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": 5, "services": 2, "configmaps": 5, "secrets": 5,
         "persistentvolumeclaims": 1}
DEPARTMENTS = {"gz-bigdata": {"level": "province"},
               "gy-health": {"level": "city", "parent": "gz-bigdata", "quota": SMALL},
               "gy-police": {"level": "city", "parent": "gz-bigdata", "quota": SMALL}}


class Idp:
    """The module's platform with its provider: people, tokens, the provider's admin API."""

    def __init__(self, cp, api):
        self.cp, self.api = cp, api
        self.ident = json.loads(cp.identity_file.read_text())
        self.issuer, self.ca = self.ident["issuer"], self.ident["caFile"]
        self.people = json.loads(cp.people_file.read_text())
        self.admin_password = (cp.state / "keycloak" / "bootstrap-admin").read_text()

    # -- the provider's side (a provider admin's own API)
    def admin(self, method: str, path: str, body=None) -> requests.Response:
        from yunshang.dev import keycloak

        token = keycloak.admin_token(self.cp.ports["keycloak"], Path(self.ca), self.admin_password)
        base = self.issuer.replace("/realms/", "/admin/realms/")
        return requests.request(method, base + path, json=body, verify=self.ca, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})

    def user_id(self, username: str) -> str:
        r = self.admin("GET", f"/users?exact=true&username={username}")
        return r.json()[0]["id"]

    def add_user(self, username: str, password: str, groups: list[str]) -> None:
        """As a provider admin importing people from another directory (a partial import: Keycloak's
        admin form refuses a ':' in a username, an import does not)."""
        user = {"username": username, "enabled": True, "firstName": "x", "lastName": "y",
                "email": f"{re.sub('[^a-z0-9]', '', username)}@evil.local", "emailVerified": True, "groups": groups,
                "credentials": [{"type": "password", "value": password, "temporary": False}]}
        r = self.admin("POST", "/partialImport", {"ifResourceExists": "SKIP", "users": [user]})
        assert r.status_code == 200 and r.json().get("added") == 1, r.text

    def code_flow(self, username: str, client_id: str, redirect: str, password: str | None = None) -> dict:
        """Tokens of another client of the provider (PKCE, its own redirect URI: the browser's next stop
        is read, not visited)."""
        from oauthlib.oauth2 import WebApplicationClient

        c = WebApplicationClient(client_id)
        verifier = c.create_code_verifier(64)
        url = c.prepare_request_uri(self.issuer + "/protocol/openid-connect/auth", redirect_uri=redirect,
                                    scope=["openid"], state="s", code_challenge=c.create_code_challenge(verifier, "S256"),
                                    code_challenge_method="S256")
        where = sign_in(url, username, password or self.people[username]["password"], self.ca)
        code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(where).query + "&" +
                                           urllib.parse.urlparse(where).fragment))["code"]
        r = requests.post(self.issuer + "/protocol/openid-connect/token", verify=self.ca, timeout=30, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "client_id": client_id,
            "code_verifier": verifier})
        assert r.status_code == 200, r.text
        return r.json()

    def add_client(self, client_id: str, audience: str = "") -> None:
        mappers = [{"name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
                    "config": {"claim.name": "groups", "full.path": "true", "id.token.claim": "true"}}]
        if audience:
            mappers.append({"name": "aud", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
                            "config": {"included.custom.audience": audience, "id.token.claim": "true",
                                       "access.token.claim": "true"}})
        r = self.admin("POST", "/clients", {"clientId": client_id, "publicClient": True, "standardFlowEnabled": True,
                                            "redirectUris": ["http://127.0.0.1/*"], "protocolMappers": mappers,
                                            "attributes": {"pkce.code.challenge.method": "S256"}})
        assert r.status_code in (201, 409), r.text

    # -- a person's side
    def tokens(self, username: str, password: str | None = None, client_id: str = "yunshang") -> dict:
        """Signs ``username`` in the way `yunshang login` does (PKCE, loopback), the person typing into
        the provider's form."""
        from yunshang.identity import oidc

        provider = oidc.Provider(self.issuer, client_id, self.ca)
        pw = password or self.people[username]["password"]
        return oidc.login_browser(provider, lambda url: requests.get(sign_in(url, username, pw, self.ca),
                                                                     timeout=10).ok, timeout=30)

    def call(self, token: str, method: str, path: str, body=None) -> tuple[int, dict]:
        r = requests.request(method, self.cp.server + path, json=body, verify=str(self.cp.pki / "ca.crt"),
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {"message": r.text}

    def whoami(self, token: str) -> tuple[int, dict]:
        code, body = self.call(token, "POST", REVIEW, {"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "SelfSubjectReview"})
        return code, (body["status"]["userInfo"] if code == 201 else body)

    def realm_settings(self, **changes) -> dict:
        before = self.admin("GET", "").json()
        assert self.admin("PUT", "", {**before, **changes}).status_code == 204
        return {k: before.get(k) for k in changes}

    # -- the CLI, as a person runs it
    def cli(self, home: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        e = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "KUBECONFIG": str(home / "kubeconfig"),
             "YUNSHANG_STATE_DIR": str(self.cp.state), **(env or {})}
        return subprocess.run([YUNSHANG, *args], capture_output=True, text=True, env=e, timeout=timeout)

    def person_home(self, tmp_path: Path) -> Path:
        """A person's own machine: a config dir and a kubeconfig naming the platform (the admin's, copied:
        its context names the cluster; login adds the person's user beside it)."""
        (tmp_path / "kubeconfig").write_text(self.cp.kubeconfig.read_text())
        return tmp_path

    def login(self, home: Path, username: str, *args: str, password: str | None = None):
        return self.cli(home, "login", *args, env={
            "BROWSER": f"{sys.executable} {SIGNIN} %s", "YUNSHANG_TEST_USER": username,
            "YUNSHANG_TEST_PASSWORD": password or self.people[username]["password"], "YUNSHANG_TEST_CA": self.ca})


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """A platform of this module's own with the local identity provider (what `yunshang dev up` runs):
    Keycloak with the project's realm, the API server trusting it, yunshang's policies and operator."""
    from kubernetes import client, config

    from yunshang.dev import controlplane, keycloak

    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("identity"), audit_webhook=False,
                                   identity=keycloak.LocalIdentity.of_project(ROOT))
    # a knock-out of the authenticator's rules runs only tests of sign-in itself: no departments needed
    authenticator_only = os.environ.get("YUNSHANG_KNOCK_OUT", "").startswith("identity-")
    api = None
    try:
        cp.up()
        api = config.new_client_from_config(str(cp.kubeconfig))
        if not authenticator_only:
            cp.start_platform()
        co = client.CustomObjectsApi(api)
        for name, changes in ({} if authenticator_only else DEPARTMENTS).items():
            body = tenant(name, **changes)
            body["spec"]["approval"] = approval()
            co.create_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", body)
        for name in ({} if authenticator_only else DEPARTMENTS):
            wait_for(f"{name} Ready", lambda name=name: (co.get_cluster_custom_object(
                "platform.yunshang.io", "v1alpha1", "tenants", name).get("status") or {}).get("phase") == "Ready")
        knock_out_if_asked(api)
        yield Idp(cp, api)
    finally:
        try:
            if api is not None:
                api.close()
        finally:
            cp.down()


def _forge(token: str, **payload_changes) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(payload_changes)
    enc = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{enc}.{sig}"


# ---------------------------------------------------------------------------- signing in

def test_login_in_a_browser_signs_the_person_in_for_kubectl_and_every_command(idp, tmp_path):
    home = idp.person_home(tmp_path)
    r = idp.login(home, "gy-health.clerk")
    assert r.returncode == 0, r.stderr
    assert "signed in as gy-health.clerk" in r.stdout
    who = json.loads(idp.cli(home, "whoami", "-o", "json").stdout)
    assert who["username"] == "gy-health.clerk"
    assert who["tenants"] == ["gy-health"] and "yunshang:departments" in who["groups"]
    assert who["tokenExpires"]
    listed = json.loads(idp.cli(home, "tenant", "list", "-o", "json").stdout)
    assert [t["name"] for t in listed] == ["gy-health"], listed
    # the tokens are the person's alone; the kubeconfig's user runs `yunshang token`
    cached = list((home / "config" / "yunshang" / "tokens").glob("*.json"))
    assert len(cached) == 1 and stat.S_IMODE(cached[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cached[0].parent.stat().st_mode) == 0o700
    import yaml

    kc = yaml.safe_load((home / "kubeconfig").read_text())
    user = next(u for u in kc["users"] if u["name"].startswith("sso@"))["user"]["exec"]
    assert user["apiVersion"] == "client.authentication.k8s.io/v1" and user["args"][0] == "token"
    assert kc["current-context"].endswith("-sso")
    # the platform engineer's admin kubeconfig is as it was
    assert idp.cp.kubeconfig.read_text() != (home / "kubeconfig").read_text()
    assert "exec" not in idp.cp.kubeconfig.read_text()


def test_the_device_grant_signs_in_from_another_device(idp, tmp_path):
    home = idp.person_home(tmp_path)
    e = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "KUBECONFIG": str(home / "kubeconfig"),
         "YUNSHANG_STATE_DIR": str(idp.cp.state)}
    proc = subprocess.Popen([YUNSHANG, "login", "--device", "-o", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)
    line = proc.stderr.readline()
    link = re.search(r"\(or open (\S+)\)", line)
    assert link, line
    approve_device(link.group(1), "li.na", idp.people["li.na"]["password"], idp.ca)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["username"] == "li.na"
    who = json.loads(idp.cli(home, "whoami", "-o", "json").stdout)
    assert who["roles"] == ["reviewer:security"] and who["tenants"] == []


def test_no_browser_is_one_line_naming_what_to_do(idp, tmp_path):
    home = idp.person_home(tmp_path)
    r = idp.cli(home, "login", env={"BROWSER": "/nonexistent/browser %s"})
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "yunshang login --device" in errors[0], r.stderr


def test_logout_ends_the_session_and_the_cli_says_to_sign_in(idp, tmp_path):
    home = idp.person_home(tmp_path)
    assert idp.login(home, "gy-police.clerk").returncode == 0
    assert idp.cli(home, "whoami").returncode == 0  # the control: signed in, it works
    r = idp.cli(home, "logout")
    assert "signed out" in r.stdout, r.stdout + r.stderr
    r = idp.cli(home, "whoami")
    assert r.returncode == 1 and "yunshang login" in r.stderr.splitlines()[-1], r.stderr
    assert not list((home / "config" / "yunshang" / "tokens").glob("*.json"))


# ---------------------------------------------------------------------------- need to know, by token

def test_a_department_signed_in_reads_its_own_tenant_and_no_others(idp):
    """The groups a token yields feed the need-to-know authorizer as an impersonated department's do
    (its control, authz-need-to-know, is proved by test_need_to_know.py in the knock-out run)."""
    token = idp.tokens("gy-health.clerk")["id_token"]
    assert idp.call(token, "GET", f"{TENANTS}/gy-health")[0] == 200
    assert idp.call(token, "GET", f"{TENANTS}/gy-police")[0] == 403
    assert idp.call(token, "GET", f"{TENANTS}/gz-bigdata")[0] == 403


def test_a_person_in_no_department_can_only_ask_who_they_are(idp):
    token = idp.tokens("zhao.lei")["id_token"]
    code, who = idp.whoami(token)
    assert code == 201 and who["username"] == "zhao.lei" and who["groups"] == ["system:authenticated"], who
    for path in (TENANTS, f"{TENANTS}/gy-health", "/api/v1/namespaces", "/api/v1/namespaces/gy-health-main/pods"):
        assert idp.call(token, "GET", path)[0] == 403, path


def test_a_reviewer_signs_off_for_their_role_and_no_other(idp, tmp_path):
    from kubernetes import client

    body = tenant("idp-review", level="city", parent="gz-bigdata", quota=SMALL)
    client.CustomObjectsApi(idp.api).create_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", body)
    home = idp.person_home(tmp_path)
    assert idp.login(home, "li.na").returncode == 0
    wrong = idp.cli(home, "tenant", "approve", "idp-review", "--role", "finance")
    assert wrong.returncode == 1, wrong.stdout
    ok = idp.cli(home, "tenant", "approve", "idp-review", "--role", "security")
    assert ok.returncode == 0, ok.stderr
    t = client.CustomObjectsApi(idp.api).get_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants",
                                                                    "idp-review")
    signed = [(s["role"], s["by"]) for s in t["spec"].get("signoffs", [])]
    assert signed == [("security", "li.na")], signed


# ---------------------------------------------------------------------------- tokens an attacker brings

def test_a_token_of_another_issuer_is_refused(idp):
    control = idp.tokens("gy-health.clerk")["id_token"]
    assert idp.whoami(control)[0] == 201
    from yunshang.dev import keycloak

    # the same provider's master realm: a real, validly signed token, of another issuer
    other = keycloak.admin_token(idp.cp.ports["keycloak"], Path(idp.ca), idp.admin_password)
    assert idp.whoami(other)[0] == 401


def test_a_token_for_another_audience_is_refused(idp):
    idp.add_client("other-app")
    token = idp.tokens("gy-health.clerk", client_id="other-app")["id_token"]
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["aud"] == "other-app"
    assert idp.whoami(token)[0] == 401
    assert idp.whoami(idp.tokens("gy-health.clerk")["id_token"])[0] == 201


@pytest.mark.control("identity-authorized-party")
def test_a_token_issued_to_another_application_with_our_audience_is_refused(idp):
    """Another application of the province's provider (a department's portal) was given the platform's
    audience: a token it obtained for a person must not act on the platform as that person."""
    idp.add_client("dept-portal", audience="yunshang")
    token = idp.tokens("gy-health.clerk", client_id="dept-portal")["id_token"]
    c = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
    assert "yunshang" in c["aud"] and c["azp"] == "dept-portal", c
    assert idp.whoami(token)[0] == 401
    assert idp.whoami(idp.tokens("gy-health.clerk")["id_token"])[0] == 201


def test_a_changed_payload_a_changed_signature_and_alg_none_are_refused(idp):
    token = idp.tokens("gy-health.clerk")["id_token"]
    assert idp.whoami(token)[0] == 201
    assert idp.whoami(_forge(token, groups=["/departments/gy-police", "/platform-admins"]))[0] == 401
    assert idp.whoami(_forge(token, preferred_username="gy-police.clerk"))[0] == 401
    head, body, sig = token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    assert idp.whoami(f"{head}.{body}.{flipped}")[0] == 401
    none = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    assert idp.whoami(f"{none}.{_forge(token, groups=['/platform-admins']).split('.')[1]}.")[0] == 401


def test_an_expired_token_is_refused(idp):
    before = idp.realm_settings(accessTokenLifespan=8)
    try:
        token = idp.tokens("gy-health.clerk")["id_token"]
    finally:
        idp.realm_settings(**before)
    assert idp.whoami(token)[0] == 201
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"]
    time.sleep(max(0.0, exp - time.time()) + 11)  # past its end and the API server's 10 s cache of a verdict
    assert idp.whoami(token)[0] == 401


@pytest.mark.control("identity-reserved-usernames")
def test_a_provider_user_named_like_the_system_or_the_platform_is_refused(idp):
    """A careless provider admin creates users named as the controller-manager and as the platform's
    admin certificate: their tokens must not act as those."""
    control = idp.tokens("gy-health.clerk")["id_token"]
    assert idp.whoami(control)[0] == 201
    for name in ("system:kube-controller-manager", "yunshang-admin"):
        idp.add_user(name, "Pw-reserved-1", ["/departments/gy-health"])
        token = idp.tokens(name, password="Pw-reserved-1")["id_token"]
        assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["preferred_username"] == name
        assert idp.whoami(token)[0] == 401, name


def test_a_provider_group_outside_the_mapping_gives_nothing(idp):
    """A provider group named system:masters (or one named like the platform's own groups) is not
    mapped: its members get none of it."""
    r = idp.admin("POST", "/groups", {"name": "system:masters"})
    assert r.status_code in (201, 409), r.text
    r = idp.admin("POST", "/groups", {"name": "yunshang:platform-admins"})
    assert r.status_code in (201, 409), r.text
    idp.add_user("mallory", "Pw-mallory-1", ["/system:masters", "/yunshang:platform-admins", "/departments/gy-police"])
    token = idp.tokens("mallory", password="Pw-mallory-1")["id_token"]
    code, who = idp.whoami(token)
    assert code == 201 and sorted(who["groups"]) == ["system:authenticated", "yunshang:departments",
                                                     "yunshang:dept:gy-police"], who
    assert idp.call(token, "GET", "/api/v1/namespaces/kube-system/secrets")[0] == 403
    assert idp.call(token, "GET", f"{TENANTS}/gy-police")[0] == 200  # the control: its own department's


def test_what_a_person_edits_about_themselves_never_becomes_a_group_or_a_name(idp):
    """Keycloak lets a person edit their first and last name and email (the account console): they
    reach the token as name, given_name, family_name and email, none of which the platform maps."""
    tokens = idp.code_flow("gy-police.clerk", "account-console", idp.issuer + "/account/")
    account = idp.issuer + "/account/"
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "Content-Type": "application/json",
               "Accept": "application/json"}
    me = requests.get(account, headers=headers, verify=idp.ca, timeout=10)
    assert me.status_code == 200, me.text
    names = {**me.json(), "firstName": "system:masters", "lastName": "yunshang:platform-admins"}
    r = requests.post(account, json=names, headers=headers, verify=idp.ca, timeout=10)
    assert r.status_code == 204, r.text  # a person may rename themselves ...
    extra = {**names, "attributes": {"groups": ["/platform-admins"], "preferred_username": ["system:admin"]}}
    r = requests.post(account, json=extra, headers=headers, verify=idp.ca, timeout=10)
    assert r.status_code in (204, 400), r.text  # ... and no more (400; or ignored: the token below says)
    token = idp.tokens("gy-police.clerk")["id_token"]
    c = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
    assert c["given_name"] == "system:masters", c  # the edit reached the token, where nothing reads it
    assert c["preferred_username"] == "gy-police.clerk" and c["groups"] == ["/departments/gy-police"], c
    code, who = idp.whoami(token)
    assert code == 201 and who["username"] == "gy-police.clerk", who
    assert sorted(who["groups"]) == ["system:authenticated", "yunshang:departments", "yunshang:dept:gy-police"]
    assert idp.call(token, "GET", f"{TENANTS}/gy-health")[0] == 403


def test_a_disabled_person_cannot_refresh_and_the_cli_says_so(idp, tmp_path):
    idp.add_user("leaver", "Pw-leaver-1", ["/departments/gy-health"])
    before = idp.realm_settings(accessTokenLifespan=8)  # every command refreshes (within 30 s of the end)
    home = idp.person_home(tmp_path)
    try:
        assert idp.login(home, "leaver", password="Pw-leaver-1").returncode == 0
        assert idp.cli(home, "whoami").returncode == 0  # the control: signed in, refreshed, it works
        uid = idp.user_id("leaver")
        user = idp.admin("GET", f"/users/{uid}").json()
        assert idp.admin("PUT", f"/users/{uid}", {**user, "enabled": False}).status_code == 204
        r = idp.cli(home, "whoami")
    finally:
        idp.realm_settings(**before)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "sign-in has ended" in last and "yunshang login" in last, r.stderr


# ---------------------------------------------------------------------------- clear errors

def test_provider_down_or_wrong_issuer_is_one_line_naming_what_to_do(idp, tmp_path):
    from yunshang.dev.controlplane import free_port

    home = idp.person_home(tmp_path)
    port = idp.cp.ports["keycloak"]
    cases = {
        f"https://127.0.0.1:{free_port()}/realms/yunshang": "does not answer",
        f"https://127.0.0.1:{port}/realms/nowhere": "check the issuer URL",
        f"https://localhost:{port}/realms/yunshang": "wrong issuer",
    }
    for issuer, words in cases.items():
        r = idp.cli(home, "login", "--issuer", issuer, "--ca-file", idp.ca, "--no-browser", "--timeout", "5")
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 1 and len(lines) == 1 and words in lines[0], (issuer, r.stderr)
    r = idp.cli(home, "token", "--issuer", idp.issuer, "--ca-file", idp.ca)
    assert r.returncode == 1 and r.stderr.strip() == f"error: not signed in to {idp.issuer}; run `yunshang login`"
