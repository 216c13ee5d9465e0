"""The local platform's Keycloak realm: a pure function of the catalog's departments, the reviewer
roles, the people file (stacks/people.local.yaml) and the passwords made for this platform.

Every catalog department is group ``/departments/<tenant>`` with a clerk ``<tenant>.clerk``;
reviewer roles are ``/reviewers/<role>``; ``/platform-admins`` and ``/ops`` as the people file
places them.  The CLI's client is public and signs people in with PKCE (S256) on a loopback
redirect or with the device grant; nothing else (no password grant, no implicit flow).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

REALM = "yunshang"
FIXED_GROUPS = ("/platform-admins", "/ops")
GROUP_PATH = r"^(/[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$"


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=r"^[a-z0-9][-a-z0-9._]*$", max_length=60)
    name: str = Field(min_length=1, max_length=40)
    """Family name first (张伟): the provider shows it; the platform knows the username."""
    family: str = Field(default="", max_length=40)
    """The family name when ``name`` does not start with it (a clerk: 办事员 of gy-health)."""
    groups: list[str] = Field(default_factory=list)
    """The provider's groups (full paths), e.g. /departments/gy-health, /reviewers/security."""


class People(BaseModel):
    model_config = ConfigDict(extra="forbid")
    people: list[Person] = Field(default_factory=list)


def load_people(path: Path) -> list[Person]:
    import yaml

    return People.model_validate(yaml.safe_load(path.read_text()) or {}).people


def clerk(tenant: str) -> str:
    """The username of a catalog department's clerk."""
    return f"{tenant}.clerk"


def everyone(tenants: Iterable[str], people: Iterable[Person]) -> list[Person]:
    """The catalog's clerks, then the people file's."""
    clerks = [Person(username=clerk(t), name="办事员", family=t, groups=[f"/departments/{t}"]) for t in tenants]
    return clerks + list(people)


def _tree(paths: Iterable[str]) -> list[dict[str, Any]]:
    root: dict[str, dict] = {}
    for p in sorted(set(paths)):
        node = root
        for part in p.strip("/").split("/"):
            node = node.setdefault(part, {})

    def groups(level: dict[str, dict]) -> list[dict[str, Any]]:
        return [{"name": n, "subGroups": groups(sub)} for n, sub in level.items()]
    return groups(root)


def realm(tenants: list[str], roles: list[str], people: list[Person], passwords: dict[str, str],
          client_id: str = "yunshang") -> dict[str, Any]:
    """The realm document Keycloak's admin API takes (POST /admin/realms)."""
    persons = everyone(tenants, people)
    paths = [*(f"/departments/{t}" for t in tenants), *(f"/reviewers/{r}" for r in roles), *FIXED_GROUPS,
             *(g for p in persons for g in p.groups)]
    return {
        "realm": REALM,
        "enabled": True,
        "displayName": "云上 yunshang",
        "registrationAllowed": False,
        "editUsernameAllowed": False,
        "loginWithEmailAllowed": False,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": False,
        "bruteForceProtected": True,
        "accessTokenLifespan": 300,
        "ssoSessionIdleTimeout": 1800,
        "ssoSessionMaxLifespan": 36000,
        "oauth2DeviceCodeLifespan": 600,
        "oauth2DevicePollingInterval": 1,
        "groups": _tree(paths),
        "clients": [{
            "clientId": client_id,
            "name": "yunshang CLI",
            "enabled": True,
            "publicClient": True,
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "implicitFlowEnabled": False,
            "serviceAccountsEnabled": False,
            "frontchannelLogout": False,
            "redirectUris": ["http://127.0.0.1/*"],
            "webOrigins": [],
            "attributes": {"pkce.code.challenge.method": "S256",
                           "oauth2.device.authorization.grant.enabled": "true",
                           "post.logout.redirect.uris": "-"},
            "protocolMappers": [{
                "name": "groups", "protocol": "openid-connect", "protocolMapper": "oidc-group-membership-mapper",
                "config": {"claim.name": "groups", "full.path": "true", "id.token.claim": "true",
                           "access.token.claim": "true", "userinfo.token.claim": "true"},
            }],
        }],
        "users": [{
            "username": p.username,
            "enabled": True,
            "lastName": p.family or p.name[:1],
            "firstName": p.name if p.family else (p.name[1:] or p.name),
            "email": f"{p.username}@yunshang.local",
            "emailVerified": True,
            "credentials": [{"type": "password", "value": passwords[p.username], "temporary": False}],
            "groups": list(p.groups),
            # as a province's provider has them: each person may see and edit their own profile
            # (the account console); what they edit there never reaches the platform's groups
            "realmRoles": [f"default-roles-{REALM}"],
        } for p in persons],
    }
