"""CSRF for JSON APIs that take both bearer tokens and session cookies.

The app-wide CSRF check can't apply to bearer callers (they have no session to hold a token),
so API blueprints are exempt from it and call :func:`csrf_refusal` instead: a change must carry
a bearer token, or else a valid CSRF token (``X-CSRFToken`` header) with the session cookie.
"""
from __future__ import annotations

from flask import Response, request
from flask_wtf.csrf import CSRFError

from app.auth.responses import json_error
from app.auth.tokens import bearer_token
from app.extensions import csrf

CSRF_REFUSED = "a session request that changes something needs an X-CSRFToken header (or use a bearer token)"


def csrf_refusal() -> Response | None:
    """None when this request may change things (bearer token, or session plus valid CSRF token);
    otherwise a 403 JSON answer."""
    if bearer_token(request) is not None:
        return None
    try:
        csrf.protect()
    except CSRFError:
        return json_error(403, CSRF_REFUSED)
    return None
