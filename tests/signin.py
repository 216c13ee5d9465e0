"""A person at a browser, for the tests: opens the provider's sign-in page a URL leads to, types a
username and password into its form, and follows where the provider sends the browser (the CLI's
loopback redirect, or the device grant's confirmation pages).  HTTP with a cookie jar, no
JavaScript: Keycloak's login and device pages are plain forms."""
from __future__ import annotations

import html
import re
import urllib.parse

import requests

FORM = re.compile(r'<form[^>]*\baction="([^"]+)"', re.S)
METHOD = re.compile(r'<form[^>]*\bmethod="([^"]+)"', re.S)


class SignInRefused(AssertionError):
    """The provider showed its form again (wrong password, disabled user) or an error page."""


def _browser(ca_file: str) -> requests.Session:
    b = requests.Session()
    b.trust_env = False  # $REQUESTS_CA_BUNDLE would win over verify
    b.verify = ca_file
    return b


def _action(page: requests.Response) -> str:
    m = FORM.search(page.text)
    if not m:
        raise SignInRefused(f"no form on {page.url}: {_words(page.text)}")
    return urllib.parse.urljoin(page.url, html.unescape(m.group(1)))


def _submit(b: requests.Session, page: requests.Response, data: dict[str, str]) -> requests.Response:
    """Submit the page's form as a browser would (its method, its action)."""
    m = METHOD.search(page.text)
    if m and m.group(1).lower() == "get":
        return b.get(_action(page), params=data)
    return b.post(_action(page), data=data)


def _words(text: str) -> str:
    for pattern in (r'id="input-error[^"]*"[^>]*>\s*([^<]+)', r'class="[^"]*alert[^"]*"[^>]*>(?:\s*<[^>]+>)*\s*([^<]+)',
                    r'id="kc-page-title"[^>]*>\s*([^<]+)', r"<title>([^<]+)"):
        m = re.search(pattern, text)
        if m and m.group(1).strip():
            return html.unescape(m.group(1).strip())
    return text[:200]


def sign_in(url: str, username: str, password: str, ca_file: str) -> str:
    """Open ``url`` (an authorization URL), sign in; return where the provider redirects the
    browser next (the loopback callback, with its code), without going there."""
    b = _browser(ca_file)
    page = b.get(url)
    r = b.post(_action(page), data={"username": username, "password": password}, allow_redirects=False)
    if r.status_code not in (302, 303) or "code=" not in r.headers.get("Location", "") \
            and "error=" not in r.headers.get("Location", ""):
        raise SignInRefused(f"{username}: {_words(r.text)}")
    return r.headers["Location"]


def approve_device(verification_uri_complete: str, username: str, password: str, ca_file: str) -> None:
    """The device grant's other half: on another device, open the link the CLI printed (the code in
    it, as a phone scanning it would), sign in, grant access.  (Keycloak 26.7's page for typing the
    code posts it where its device endpoint answers invalid_client: the link is the way that works.)"""
    b = _browser(ca_file)
    page = b.get(verification_uri_complete)
    if 'name="username"' in page.text:
        page = _submit(b, page, {"username": username, "password": password})
    if 'name="accept"' in page.text:
        page = _submit(b, page, {"accept": "Yes"})
    if "success" not in page.text.lower() and "device login successful" not in page.text.lower():
        raise SignInRefused(f"{username}: device not approved: {_words(page.text)}")


def main(argv: list[str]) -> int:
    """As $BROWSER for `yunshang login` (webbrowser runs ``python tests/signin.py <url>``): signs in as
    $YUNSHANG_TEST_USER with $YUNSHANG_TEST_PASSWORD, then follows the redirect to the CLI's listener."""
    import os

    ca = os.environ["YUNSHANG_TEST_CA"]
    try:
        where = sign_in(argv[0], os.environ["YUNSHANG_TEST_USER"], os.environ["YUNSHANG_TEST_PASSWORD"], ca)
    except SignInRefused as e:
        print(f"browser: {e}", file=sys.stderr)
        return 1
    requests.get(where, timeout=10)  # the loopback callback: plain http on 127.0.0.1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
