"""HTTP hardening: response headers on every page, a CSP nonce per request, and which proxies to trust.

Every response carries a Content-Security-Policy whose scripts come only from this site
or carry the request's nonce (``csp_nonce()`` in templates, Flask-Admin's
``admin_csp_nonce_attribute``), so an injected ``<script>`` or ``onclick=`` never runs;
framing is refused (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``);
``nosniff`` and a same-origin ``Referrer-Policy``; HSTS in production.

``X-Forwarded-For``/``-Proto``/``-Port`` are believed only from ``TRUSTED_PROXIES`` hops
(Heroku's router is one); without it the client's own address counts, so nobody can
choose the address the sign-in throttle charges. ``TRUSTED_HOSTS`` (Flask's own
check) refuses requests for other hosts with a 400.
"""
from __future__ import annotations

import secrets

from flask import Flask, Response, current_app, g
from werkzeug.middleware.proxy_fix import ProxyFix

HSTS = "max-age=31536000; includeSubDomains"
REFERRER_POLICY = "same-origin"


def csp_nonce() -> str:
    """The nonce of this request's inline scripts (one per request, made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy(nonce: str) -> str:
    """The policy: everything from this site; scripts from files here or with the nonce; no framing."""
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce}'",
        "style-src": "'self' 'unsafe-inline'",  # style="" attributes (progress bars); never scripts
        "img-src": "'self' data:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def secure_headers(response: Response) -> Response:
    """Add the security headers to ``response`` (kept when a view set its own)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(csp_nonce()))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    if current_app.config.get("APP_ENV") == "production":
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def trust_proxies(app: Flask) -> None:
    """Believe ``X-Forwarded-*`` from ``TRUSTED_PROXIES`` hops, and only then."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops:
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_port=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]


def init_app(app: Flask) -> None:
    """Install the proxy rule, the header hook and the ``csp_nonce()`` template global."""
    trust_proxies(app)
    app.after_request(secure_headers)
    app.add_template_global(csp_nonce)
