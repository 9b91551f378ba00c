"""Authentication: session sign-in (Flask-Login) and bearer tokens (JWT) for API clients.

``init_app(app)`` registers the ``auth`` blueprint (``/login``, ``/logout``, ``/api/token``,
``/api/me``), configures the shared ``login_manager`` and installs a session interface that
keeps bearer-token requests cookie-free.
"""
from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Request, abort, current_app, flash, redirect, request, url_for
from werkzeug import Response

from app.auth import api, views  # noqa: F401  (register the routes on the blueprint)
from app.auth.blueprint import bp
from app.auth.responses import bearer_challenge
from app.auth.sessions import BearerAwareSessionInterface
from app.auth.signins import session_user
from app.auth.tokens import TokenError, bearer_token, decode_token, issue_token, verify_token
from app.extensions import db, login_manager
from app.models import User
from app.web import is_api_request, landing_url, safe_next_url

__all__ = ["bp", "init_app", "issue_token", "verify_token", "bearer_token", "load_user"]


def init_app(app: Flask) -> None:
    """Register the ``auth`` blueprint and wire Flask-Login and bearer authentication."""
    app.register_blueprint(bp)
    app.session_interface = BearerAwareSessionInterface()
    app.before_request(authenticate_bearer_request)
    configure_login_manager()


def configure_login_manager() -> None:
    """Set the login view, strong session protection, the loaders and the 401 handler."""
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_request)
    login_manager.unauthorized_handler(unauthorized)


def load_user(login_id: str) -> User | None:
    """The active user of the live session ``login_id`` names (session or remember cookie), else None."""
    return session_user(login_id)


def load_user_from_request(req: Request) -> User | None:
    """The user a request's bearer token names; None without a token.

    An invalid, expired or unsigned token, or one naming an unknown or inactive user,
    ends the request with a 401 JSON error: it never falls back to anonymous.
    """
    token = bearer_token(req)
    if token is None:
        return None
    try:
        claims = decode_token(token)
    except TokenError as refused:
        abort(bearer_challenge(401, refused.reason, "invalid_token"))
    user = db.session.get(User, claims.user_id)
    if user is None:
        abort(bearer_challenge(401, TokenError.reason, "invalid_token"))
    if not user.is_active:
        abort(bearer_challenge(401, "account disabled", "invalid_token"))
    if not claims.matches(user):
        abort(bearer_challenge(401, "token revoked", "invalid_token"))
    return user


def authenticate_bearer_request() -> None:
    """Authenticate bearer requests up front, so the token wins over any cookie sent with it.

    Flask-Login consults its ``request_loader`` only after the session and the remember
    cookie; checking here makes every bearer token verified (401 when bad) on every route.
    A view may accept a bearer token of its own instead: its ``accepts_own_bearer()``
    returning true skips the check (``/metrics`` and ``METRICS_TOKEN``).
    """
    view = current_app.view_functions.get(request.endpoint or "")
    own = getattr(view, "accepts_own_bearer", None)
    if own is not None and own():
        return
    if bearer_token(request) is not None:
        login_manager._update_request_context_with_user(load_user_from_request(request))


def unauthorized() -> Response:
    """401 JSON for API callers; otherwise a redirect to the sign-in page with ``next``."""
    if is_api_request():
        return bearer_challenge(401, "authentication required")
    flash("Please sign in to continue.", "info")
    here = safe_next_url(request.script_root + request.full_path.rstrip("?"), default=landing_url())
    return redirect(url_for("auth.login") + "?next=" + quote(here, safe=""))
