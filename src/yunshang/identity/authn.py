"""The API server's AuthenticationConfiguration (``--authentication-config``): a JWT authenticator
for the province's provider, a pure function of stack config ``yunshang:identity``.

Every validation rule is a named control (its message starts with the name, so the API server's
log says which one refused a token):

- ``identity-authorized-party`` (claim rule): the token was issued to the platform's own client
  (``azp``), not to another application of the same realm that was given the platform's audience;
- ``identity-reserved-usernames`` (user rule): no token names ``system:`` anything, the platform's
  groups, or a name the platform's CA issues (the operator's account is ``system:serviceaccount:…``);
- ``identity-platform-groups`` (user rule): every group a token yields is one of the platform's
  (``yunshang:…``), whatever the mapping in the stack says.
"""
from __future__ import annotations

from typing import Any

from .settings import DNS_LABEL, NAME, RESERVED_USERNAME_PREFIXES, RESERVED_USERNAMES, GroupRule, IdentityConfig

API_VERSION = "apiserver.config.k8s.io/v1"


def _quote(s: str) -> str:
    """A CEL string literal (the settings refuse quotes and backslashes in names)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _provider_groups(cfg: IdentityConfig) -> str:
    c = cfg.claims.groups
    return f"dyn(claims.?{c}.orValue([]))"


def _match(rule: GroupRule) -> str:
    """CEL: does provider group ``g`` match the rule (a ``{name}`` stands for one DNS label)?"""
    if NAME not in rule.provider:
        return f"g == {_quote(rule.provider)}"
    return f"g.startsWith({_quote(rule.prefix)}) && g.substring({len(rule.prefix)}).matches({_quote(DNS_LABEL)})"


def groups_expression(cfg: IdentityConfig) -> str:
    """CEL: the platform groups of a token's claims, by the stack's mapping; unmapped groups are dropped."""
    src = _provider_groups(cfg)
    parts: list[str] = []
    for rule in cfg.groups:
        for target in rule.platform:
            if NAME in target:
                head, tail = target.split(NAME)
                name = f"g.substring({len(rule.prefix)})"
                value = " + ".join(x for x in (_quote(head) if head else "", name, _quote(tail) if tail else "") if x)
                parts.append(f"{src}.filter(g, {_match(rule)}).map(g, {value})")
            else:
                parts.append(f"({src}.exists(g, {_match(rule)}) ? [{_quote(target)}] : [])")
    return " + ".join(parts)


def rules(cfg: IdentityConfig) -> dict[str, tuple[str, str]]:
    """name -> (where: claim|user, CEL expression) of every validation rule."""
    reserved = " && ".join([*(f"!user.username.startsWith({_quote(p)})" for p in RESERVED_USERNAME_PREFIXES),
                            f"!(user.username in [{', '.join(map(_quote, RESERVED_USERNAMES))}])"])
    return {
        "identity-authorized-party": ("claim", f"has(claims.azp) && claims.azp == {_quote(cfg.client_id)}"),
        "identity-reserved-usernames": ("user", reserved),
        "identity-platform-groups": ("user", "user.groups.all(g, g.startsWith('yunshang:'))"),
    }


MESSAGES = {
    "identity-authorized-party": "the token was issued to another client of the provider",
    "identity-reserved-usernames": "the username is one the platform reserves",
    "identity-platform-groups": "a group outside yunshang: came from the token",
}


def authentication_config(cfg: IdentityConfig, ca_pem: str = "") -> dict[str, Any]:
    """The AuthenticationConfiguration the API server reads (and reloads when the file changes)."""
    if not cfg.enabled:
        raise ValueError("yunshang:identity.issuer is empty: there is no provider to trust")
    issuer: dict[str, Any] = {"url": cfg.issuer, "audiences": list(cfg.audiences)}
    if len(cfg.audiences) > 1:
        issuer["audienceMatchPolicy"] = "MatchAny"
    if ca_pem:
        issuer["certificateAuthority"] = ca_pem
    named = rules(cfg)
    by_kind = {kind: [{"expression": expr, "message": f"{name}: {MESSAGES[name]}"}
                      for name, (k, expr) in named.items() if k == kind] for kind in ("claim", "user")}
    return {
        "apiVersion": API_VERSION,
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": issuer,
            "claimValidationRules": by_kind["claim"],
            "claimMappings": {
                "username": {"expression": f"claims.{cfg.claims.username}"},
                "groups": {"expression": groups_expression(cfg)},
                "uid": {"expression": "claims.sub"},
            },
            "userValidationRules": by_kind["user"],
        }],
    }

