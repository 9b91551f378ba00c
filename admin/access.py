"""Responses for requests the admin or the dashboard refuse.

One rule everywhere: an anonymous browser is sent to the login page (with a safe
``next`` back here), an anonymous API caller gets a 401 JSON body, and a signed-in
user who lacks the right gets a 403 (JSON for API callers).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Response, abort, flash, jsonify, redirect, request, url_for

from app.web import wants_json

LOGIN_ENDPOINT = "auth.login"


def current_path() -> str:
    """The path (and query string) of this request, relative to the site root."""
    path = request.script_root + request.path
    query = request.query_string.decode("latin-1")
    return f"{path}?{query}" if query else path


def login_url() -> str:
    """The login page's URL with ``next`` pointing back here (``/login?next=%2Fhangfire``)."""
    return url_for(LOGIN_ENDPOINT) + "?" + urlencode({"next": current_path()})


def login_redirect() -> Response:
    """Redirect to the login page, coming back here once signed in."""
    flash("Please sign in to continue.", "info")
    return redirect(login_url())


def json_error(status: int, message: str) -> Response:
    """A ``{"error": message}`` JSON response; a 401 carries the bearer challenge."""
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def is_signed_in(user: Any) -> bool:
    """True for an authenticated user (session or bearer token)."""
    return bool(getattr(user, "is_authenticated", False))


def is_active_user(user: Any) -> bool:
    """True for an authenticated user whose account is active."""
    return is_signed_in(user) and bool(getattr(user, "is_active", False))


def refuse(signed_in: bool, api: bool | None = None) -> Response:
    """The response for a refused request: login redirect or 401 when anonymous, else 403.

    ``api`` forces the JSON form; by default it follows :func:`app.web.wants_json`.
    """
    api = wants_json() if api is None else api
    if not signed_in:
        if api:
            return json_error(401, "authentication required")
        return login_redirect()
    if api:
        return json_error(403, "permission denied")
    abort(403)
