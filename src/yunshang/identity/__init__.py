"""统一身份认证: people sign in through the province's identity provider (OIDC).

- ``settings``: stack config ``yunshang:identity`` (issuer, audiences, claims, the group mapping);
- ``authn``: the API server's AuthenticationConfiguration, a pure function of those settings;
- ``realm``: the local platform's Keycloak realm, a pure function of the catalog and the people file;
- ``oidc``: the CLI's side: sign-in (PKCE on a loopback redirect, or the device grant), the token
  cache, refresh.
"""
