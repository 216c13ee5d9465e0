"""统一身份认证 without a cluster: the stack's mapping, the API server's configuration built from it,
the local realm, the CLI's token cache and clock check."""
from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import pytest

from yunshang.dev import pki
from yunshang.identity import authn, oidc, realm
from yunshang.identity.settings import RESERVED_USERNAME_PREFIXES, RESERVED_USERNAMES, IdentityConfig
from yunshang.infra import config

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**changes) -> IdentityConfig:
    return IdentityConfig.model_validate({"issuer": "https://sso.example/realms/gov", **changes})


@pytest.mark.parametrize("target", ["system:masters", "system:nodes", "{name}", "admins", "yunshang:dept:{name}:{name}",
                                    "oidc:yunshang:x", "yunshang:dept: x"])
def test_a_mapping_to_a_reserved_or_foreign_group_is_refused_by_the_stack(target):
    with pytest.raises(config.ConfigError) as e:
        config.parse({"identity": {"groups": [{"provider": "/x/{name}", "platform": [target]}]}})
    assert "identity.groups.0.platform" in str(e.value) and "reserved" in str(e.value)


def test_a_name_in_the_platform_group_needs_one_in_the_provider_group():
    with pytest.raises(config.ConfigError, match="needs"):
        config.parse({"identity": {"groups": [{"provider": "/admins", "platform": ["yunshang:dept:{name}"]}]}})
    with pytest.raises(config.ConfigError, match="at the end"):
        config.parse({"identity": {"groups": [{"provider": "/{name}/x", "platform": ["yunshang:x"]}]}})


def test_the_issuer_must_be_https():
    with pytest.raises(config.ConfigError, match="identity.issuer"):
        config.parse({"identity": {"issuer": "http://sso.example/realms/gov"}})


def test_the_stacks_carry_the_mapping_and_the_local_one_leaves_the_issuer_to_dev_up():
    local = config.from_stack_file("local", ROOT).identity
    prod = config.from_stack_file("prod", ROOT).identity
    assert not local.enabled and prod.enabled and prod.issuer.startswith("https://")
    assert [g.provider for g in local.groups] == ["/departments/{name}", "/reviewers/{name}", "/platform-admins", "/ops"]
    assert local.groups == prod.groups


def test_the_authentication_config_names_its_rules_and_maps_only_the_stacks_groups():
    doc = authn.authentication_config(_cfg(), "PEM")
    assert doc["kind"] == "AuthenticationConfiguration" and doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    jwt = doc["jwt"][0]
    assert jwt["issuer"] == {"url": "https://sso.example/realms/gov", "audiences": ["yunshang"],
                             "certificateAuthority": "PEM"}
    names = [r["message"].split(":")[0] for r in jwt["claimValidationRules"] + jwt["userValidationRules"]]
    assert names == ["identity-authorized-party", "identity-reserved-usernames", "identity-platform-groups"]
    groups = jwt["claimMappings"]["groups"]["expression"]
    for provider in ("'/departments/'", "'/reviewers/'", "'/platform-admins'", "'/ops'"):
        assert provider in groups
    assert "system:" not in groups
    reserved = jwt["userValidationRules"][0]["expression"]
    for prefix in RESERVED_USERNAME_PREFIXES:
        assert f"startsWith('{prefix}')" in reserved


def test_every_name_the_local_ca_issues_is_reserved():
    for cn, _groups in pki.CLIENTS.values():
        assert cn in RESERVED_USERNAMES or cn.startswith(RESERVED_USERNAME_PREFIXES), cn


def test_no_provider_no_configuration():
    with pytest.raises(ValueError, match="issuer is empty"):
        authn.authentication_config(IdentityConfig())


def test_the_local_realm_has_every_catalog_department_and_signs_in_only_with_pkce_or_the_device_grant():
    people = realm.load_people(ROOT / "stacks" / "people.local.yaml")
    tenants = ["gy-health", "gz-bigdata"]
    everyone = realm.everyone(tenants, people)
    doc = realm.realm(tenants, ["platform", "security", "finance"], people, {p.username: "pw" for p in everyone})
    depts = next(g for g in doc["groups"] if g["name"] == "departments")
    assert {g["name"] for g in depts["subGroups"]} >= set(tenants)
    users = {u["username"]: u for u in doc["users"]}
    assert users["gy-health.clerk"]["groups"] == ["/departments/gy-health"]
    (client,) = doc["clients"]
    assert client["publicClient"] and not client["directAccessGrantsEnabled"] and not client["implicitFlowEnabled"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert client["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
    assert not doc["registrationAllowed"] and not doc["editUsernameAllowed"]


def _jwt(**claims) -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.sig"


def test_the_token_cache_is_the_users_alone(tmp_path):
    cache = oidc.TokenCache(oidc.Provider("https://sso.example/realms/gov"), root=tmp_path / "tokens")
    cache.save({"id_token": _jwt(exp=1), "refresh_token": "r", "expires_in": 300})
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    assert cache.load() == {"id_token": _jwt(exp=1), "refresh_token": "r"}
    assert cache.remove() and cache.load() is None


@pytest.mark.parametrize("offset,words", [(600, "behind"), (-900, "ahead of")])
def test_a_machine_clock_off_the_providers_is_one_line_naming_the_fix(offset, words):
    now = time.time()
    token = _jwt(iat=now + offset, exp=now + offset + 300)
    with pytest.raises(oidc.SignInError) as e:
        oidc.check_clock(token, now=now)
    assert words in str(e.value) and "timedatectl" in str(e.value) and "\n" not in str(e.value)
    oidc.check_clock(_jwt(iat=now - 5, exp=now + 295), now=now)  # the control: in time, no complaint


def test_an_expired_refresh_is_asked_of_the_provider_and_its_no_becomes_one_line(monkeypatch, tmp_path):
    provider = oidc.Provider("https://sso.example/realms/gov")
    cache = oidc.TokenCache(provider, root=tmp_path)
    cache.save({"id_token": _jwt(exp=time.time() - 1), "refresh_token": "old"})

    class Refused:
        status_code = 400

        @staticmethod
        def json():
            return {"error": "invalid_grant", "error_description": "Token is not active"}
    monkeypatch.setattr(oidc.Provider, "discovery", lambda self: {"token_endpoint": "https://sso.example/token"})
    monkeypatch.setattr(oidc.Provider, "post", lambda self, url, data: Refused)
    with pytest.raises(oidc.SignInError) as e:
        oidc.current(provider, cache)
    assert str(e.value) == "your sign-in has ended (the provider said: Token is not active); run `yunshang login`"


def test_platform_authentication_config_writes_the_api_servers_file(tmp_path):
    from typer.testing import CliRunner

    from yunshang.cli import app

    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
    r = CliRunner().invoke(app, ["platform", "authentication-config", "-d", str(tmp_path / "out"), "--ca-file", str(ca)])
    assert r.exit_code == 0, r.output
    import yaml

    doc = yaml.safe_load((tmp_path / "out" / "authentication.yaml").read_text())
    assert doc["jwt"][0]["issuer"]["url"] == "https://sso.gz.gov.local/realms/gov"
    assert doc["jwt"][0]["issuer"]["certificateAuthority"] == ca.read_text()
    r = CliRunner().invoke(app, ["platform", "authentication-config", "-d", str(tmp_path / "x"), "--stack", "local"])
    assert "names no provider" in str(r.exception)
