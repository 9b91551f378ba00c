"""HTTP hardening: security headers and the CSP nonce on every page, trusted hosts, trusted proxies,
the request size limit, and links in emails built from PUBLIC_URL.
"""
from __future__ import annotations

import re

import pytest
from flask import request

from app.permissions import ADMIN_ROLE
from tests.helpers.web import post_login, sign_in

PAGES = ["/login", "/admin/", "/admin/role/", "/admin/user/", "/admin/role/new/", "/admin/user/new/",
         "/reports", "/hangfire", "/healthz", "/api/me", "/no-such-page", "/admin/outbox/"]


def csp(response) -> dict[str, str]:
    """The Content-Security-Policy as ``{directive: value}``."""
    policy = response.headers["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.fixture
def admin(app, make_user):
    make_user("root", roles=[ADMIN_ROLE])
    return sign_in(app, "root")


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(admin, path):
    response = admin.get(path)
    policy = csp(response)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["script-src"].startswith("'self' 'nonce-")
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'self'" and policy["form-action"] == "'self'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # only in production


def test_anonymous_and_error_responses_carry_them_too(client):
    for response in (client.get("/login"), client.get("/admin/"), client.post("/api/token", data="x"),
                     client.get("/reports/1/status", headers={"Accept": "application/json"})):
        assert "'nonce-" in response.headers["Content-Security-Policy"], response.status_code
        assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/login", "/admin/", "/admin/role/", "/admin/user/", "/admin/role/new/",
                                  "/reports"])
def test_pages_run_no_inline_script_without_the_nonce(admin, path):
    """Every <script> on the page is a same-site file or carries this response's nonce; no inline
    event handler or javascript: action is left that the policy would block."""
    response = admin.get(path)
    nonce = csp(response)["script-src"].split("'nonce-")[1].rstrip("'")
    html = response.get_data(True)
    for tag in re.findall(r"<script\b[^>]*>", html):
        src = re.search(r'\bsrc="([^"]+)"', tag)
        assert (src and src.group(1).startswith("/")) or f'nonce="{nonce}"' in tag, tag
    assert re.findall(r'\son[a-z]+\s*=\s*"[^"]*"', html) == []


def test_the_nonce_is_new_for_every_response(admin):
    nonces = {csp(admin.get("/admin/role/"))["script-src"] for _ in range(3)}
    assert len(nonces) == 3


@pytest.fixture
def production(app_config, monkeypatch):
    app_config.update(APP_ENV="production", PUBLIC_URL="https://jobs.example.com")
    monkeypatch.setenv("APP_ENV", "production")


def test_hsts_in_production(production, app):
    response = app.test_client().get("/login", base_url="https://jobs.example.com")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


# --- hosts ------------------------------------------------------------------------------------------

@pytest.fixture
def trusted_hosts(app_config):
    app_config["TRUSTED_HOSTS"] = ["jobs.example.com", "localhost"]


@pytest.mark.parametrize("host", ["evil.example", "jobs.example.com.evil.example", "localhost.evil.example"])
def test_requests_for_other_hosts_are_refused(trusted_hosts, app, host):
    client = app.test_client()
    assert client.get("/login", headers={"Host": host}).status_code == 400
    response = client.post("/api/token", json={"username": "x", "password": "y"}, headers={"Host": host})
    assert response.status_code == 400 and response.is_json


def test_trusted_hosts_are_served(trusted_hosts, app):
    assert app.test_client().get("/login", headers={"Host": "jobs.example.com"}).status_code == 200


def test_email_links_come_from_public_url_not_the_host(app, make_user):
    """A report asked for through a crafted Host still links to PUBLIC_URL in its email."""
    from app.reports.models import Report
    from app.reports.notify import download_link

    app.config["PUBLIC_URL"] = "https://jobs.example.com"
    with app.app_context():
        report = Report(id=7, user_id=1, origin="http://evil.example")
        assert download_link(report) == "https://jobs.example.com/reports/7/download"


# --- proxies ----------------------------------------------------------------------------------------

@pytest.fixture
def echo(app):
    """A route answering the client address and scheme the app believes."""
    app.add_url_rule("/_echo", "echo", lambda: f"{request.remote_addr} {request.scheme}")
    return app.test_client()


def test_forwarded_headers_are_ignored_without_trusted_proxies(echo):
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert echo.get("/_echo", headers=headers).get_data(True) == "127.0.0.1 http"


@pytest.fixture
def one_proxy(app_config):
    app_config["TRUSTED_PROXIES"] = 1


def test_one_trusted_proxy_hop_is_believed_and_no_more(one_proxy, echo):
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert echo.get("/_echo", headers=headers).get_data(True) == "203.0.113.9 https"
    forged = {"X-Forwarded-For": "10.0.0.1, 198.51.100.4"}  # the client's own claim, then the router's
    assert echo.get("/_echo", headers=forged).get_data(True) == "198.51.100.4 http"


def test_the_throttle_charges_the_forwarded_address_behind_a_trusted_proxy(one_proxy, app, make_user):
    app.config["LOGIN_THROTTLE_IP_MAX_FAILURES"] = 3
    make_user("alice")
    client = app.test_client()
    for n in range(3):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
        post_login(client, f"guess{n}", "wrong")
    assert post_login(client, "alice").status_code == 429
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.4"
    assert post_login(client, "alice").status_code == 302


# --- size ---------------------------------------------------------------------------------------------

def test_bodies_over_max_content_length_are_refused(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/api/token", data="x" * 2000, content_type="application/json")
    assert response.status_code == 413 and response.is_json
    assert client.post("/login", data={"username": "x" * 2000}).status_code == 413
