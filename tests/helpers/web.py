"""Signing in, CSRF tokens, forms and bearer tokens: one helper for each, used by every test module."""
from __future__ import annotations

import re
from urllib.parse import quote

PASSWORD = "correct horse battery"  # every test user's password unless a test says otherwise

#: what each kind of dashboard visitor gets for a page (GET) and a form action (POST)
EXPECTED_GET = {"anonymous": 302, "no_permission": 403, "read_only": 200, "full": 200}
EXPECTED_POST = {"anonymous": 302, "no_permission": 403, "read_only": 403, "full": 302}

_CSRF_PATTERNS = (re.compile(r'name="csrf_token"[^>]*value="([^"]+)"'),
                  re.compile(r'value="([^"]+)"[^>]*name="csrf_token"'),
                  re.compile(r'<meta name="csrf-token" content="([^"]+)"'))


def csrf_token(html: str) -> str:
    """The CSRF token embedded in a rendered page (a form field or the page's meta tag)."""
    for pattern in _CSRF_PATTERNS:
        match = pattern.search(html)
        if match:
            return match.group(1)
    raise AssertionError("no csrf_token in page")


def csrf_for(client) -> str:
    """A CSRF token valid for ``client``'s session: from the person's start page (its sign-out form), or
    the sign-in page for a visitor who isn't signed in."""
    page = client.get("/", follow_redirects=True)
    if page.status_code != 200:
        page = client.get("/login")
    return csrf_token(page.get_data(True))


def post_login(client, username: str, password: str = PASSWORD, *, next_url: str | None = None,
               remember: bool = False, address: str | None = None, tenant: str | None = None):
    """Submit the real login form with a fresh CSRF token (from client address ``address`` when given);
    returns the response."""
    environ = {"REMOTE_ADDR": address} if address else None
    page = client.get("/login", environ_overrides=environ)
    data = {"username": username, "password": password, "csrf_token": csrf_token(page.get_data(True))}
    if remember:
        data["remember"] = "y"
    if tenant is not None:
        data["tenant"] = tenant
    query = {"next": next_url} if next_url is not None else None
    return client.post("/login", data=data, query_string=query, environ_overrides=environ)


def sign_in(app, username: str, password: str = PASSWORD, environ_base: dict | None = None,
            tenant: str | None = None):
    """A new test client (optionally with ``environ_base``, e.g. its address) signed in via /login
    (to ``tenant`` when given)."""
    client = app.test_client()
    client.environ_base.update(environ_base or {})
    post_login(client, username, password, tenant=tenant)
    return client


def sign_out(client, token: str | None = None):
    """Post the sign-out form with ``token`` (default: a valid CSRF token for the session)."""
    return client.post("/logout", data={"csrf_token": token or csrf_for(client)})


def post_form(client, url: str, data: dict | None = None, **kwargs):
    """POST form ``data`` to ``url`` with ``client``'s CSRF token."""
    return client.post(url, data={**(data or {}), "csrf_token": csrf_for(client)}, **kwargs)


def submit(client, path: str, data: dict, **kwargs):
    """GET the form at ``path`` and POST ``data`` back to it with the page's own CSRF token."""
    token = csrf_token(client.get(path).get_data(True))
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def bearer_token(client, username: str, password: str = PASSWORD, tenant: str | None = None) -> str:
    """An access token from ``POST /api/token`` (for a user of ``tenant`` when given)."""
    body = {"username": username, "password": password}
    if tenant is not None:
        body["tenant"] = tenant
    response = client.post("/api/token", json=body)
    assert response.status_code == 200, response.get_data(True)
    return response.get_json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def cookie_names(response) -> set[str]:
    """Names of the cookies a response sets."""
    return {header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")}


def assert_json_401(response) -> None:
    """A 401 with a JSON error body and a bearer challenge."""
    assert response.status_code == 401
    assert response.is_json and "error" in response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def assert_login_redirect(response, path: str) -> None:
    """``response`` sends the browser to the login page with ``next`` back to ``path``."""
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"] == "/login?next=" + quote(path, safe="")


def assert_escaped(html: str, where: str) -> None:
    """No payload appears raw; the script payload appears escaped."""
    from tests.helpers.ledger import SCRIPT

    assert SCRIPT not in html, where
    assert "<img src=x" not in html, where
    assert "onerror=alert(1)>" not in html.replace("onerror=alert(1)&gt;", ""), where
