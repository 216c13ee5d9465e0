"""Stack config ``yunshang:identity``: which provider the API server trusts and how the provider's
group names become the platform's.  The mapping is data (here and in the stack file), never code:
a rule maps one provider group pattern to platform groups, ``{name}`` standing for one DNS label."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..models.tenant import ADMIN_GROUP, DEPARTMENTS_GROUP, DEPT_GROUP_PREFIX
from ..signoff import REVIEWER_GROUP_PREFIX

NAME = "{name}"
OPS_GROUP = "yunshang:ops"
# usernames a token may never carry: the API server's own (system:…), the platform's groups and the
# names its CA issues (yunshang-admin, yunshang-prometheus, …), and the other client certificates'
RESERVED_USERNAME_PREFIXES = ("system:", "yunshang:", "yunshang-")
RESERVED_USERNAMES = ("admin", "kwok-controller", "front-proxy-client", "kubernetes-admin")
# what a token's platform groups may be: the platform's own, each with at most one {name}
PLATFORM_GROUP = re.compile(r"^yunshang:[a-z0-9-]+(:[a-z0-9-]+|:\{name\})*$")
DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class GroupRule(BaseModel):
    """One provider group (or pattern with ``{name}``) and the platform groups its members get."""

    model_config = ConfigDict(extra="forbid")
    provider: str = Field(min_length=1, max_length=200)
    """The provider's group, e.g. ``/departments/{name}`` (Keycloak's full path) or ``/platform-admins``."""
    platform: list[str] = Field(min_length=1, max_length=8)
    """The platform groups members get, e.g. ``[yunshang:dept:{name}, yunshang:departments]``."""

    @field_validator("provider")
    @classmethod
    def _one_name_at_the_end(cls, v: str) -> str:
        if v.count(NAME) > 1 or (NAME in v and not v.endswith(NAME)):
            raise ValueError(f"{v!r}: {NAME} may appear once, at the end of the provider's group")
        if "'" in v or "\\" in v:
            raise ValueError(f"{v!r}: quotes and backslashes are not allowed in a group name")
        return v

    @field_validator("platform")
    @classmethod
    def _platform_groups(cls, v: list[str]) -> list[str]:
        for g in v:
            if not PLATFORM_GROUP.match(g) or g.count(NAME) > 1:
                raise ValueError(f"{g!r}: a platform group is yunshang:<word>[:<word>…] with at most one {NAME} "
                                 "(system: and other names are reserved and never come from a token)")
        return v

    @model_validator(mode="after")
    def _names_match(self) -> "GroupRule":
        if any(NAME in g for g in self.platform) and NAME not in self.provider:
            raise ValueError(f"{self.platform}: {NAME} in a platform group needs {NAME} in provider "
                             f"{self.provider!r}")
        return self

    @property
    def prefix(self) -> str:
        """The provider group's fixed part (all of it when it has no ``{name}``)."""
        return self.provider.removesuffix(NAME)


def default_groups() -> list[GroupRule]:
    return [
        GroupRule(provider="/departments/{name}", platform=[DEPT_GROUP_PREFIX + NAME, DEPARTMENTS_GROUP]),
        GroupRule(provider="/reviewers/{name}", platform=[REVIEWER_GROUP_PREFIX + NAME]),
        GroupRule(provider="/platform-admins", platform=[ADMIN_GROUP]),
        GroupRule(provider="/ops", platform=[OPS_GROUP]),
    ]


class Claims(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")] = "preferred_username"
    """The claim that names the person (Keycloak: preferred_username, which users cannot edit)."""
    groups: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")] = "groups"
    """The claim listing the person's groups (Keycloak's group-membership mapper, full paths)."""


class IdentityConfig(BaseModel):
    """The province's identity provider, as the API server and the CLI see it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    issuer: str = Field(default="", pattern=r"^(https://[^\s#?]+)?$")
    """The provider's issuer URL (https only: the API server accepts nothing else); '' = no sign-in
    (client certificates only).  The local platform fills in its own Keycloak's."""
    client_id: str = Field(default="yunshang", alias="clientId", pattern=r"^[A-Za-z0-9._-]+$")
    """The OIDC client the CLI signs in with (public, PKCE and/or the device grant)."""
    audiences: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]+$")]] = Field(
        default_factory=lambda: ["yunshang"], min_length=1)
    """Audiences the API server accepts (the client's id: ID tokens are issued to it)."""
    ca_file: str = Field(default="", alias="caFile")
    """The CA of the provider's TLS certificate ('' = the system's)."""
    claims: Claims = Field(default_factory=Claims)
    groups: list[GroupRule] = Field(default_factory=default_groups, min_length=1)
    """How the provider's groups map to the platform's (unmapped groups are dropped)."""

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)
