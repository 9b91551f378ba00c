"""The app's error pages, plus small request helpers shared by every blueprint.

(``GET /``, which sends each person where they can work, is the admin's: it reads the admin's menu,
:func:`admin.navigation.landing_url`.)

* 4xx and 5xx answers are pages in the app's layout (with its navigation and a way back)
  for browsers, and ``{"error": ...}`` JSON for API callers (a bearer token, a JSON body,
  JSON preferred, or any URL under an API prefix such as ``/api/`` or ``<dashboard>/api/``).
"""
from __future__ import annotations

import logging
from urllib.parse import unquote, urlsplit

from flask import Flask, Request, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException, SecurityError

log = logging.getLogger(__name__)

#: what an error page says, by status (the exception's own description adds the detail)
ERROR_TITLES = {
    400: "Bad request", 401: "Please sign in", 403: "You don't have access to this page",
    404: "Page not found", 405: "Not allowed here", 413: "Too large", 429: "Too many requests",
    500: "Something went wrong", 503: "Temporarily unavailable",
}
#: URL prefixes whose every answer is JSON (the dashboard adds its own API path at start-up)
API_PREFIXES_KEY = "API_PATH_PREFIXES"
MAX_NEXT_LENGTH = 2048


def wants_json(req: Request | None = None) -> bool:
    """True for API callers: a bearer token, a JSON body, or JSON preferred over HTML."""
    req = req or request
    if req.headers.get("Authorization", "").lower().startswith("bearer "):
        return True
    if req.is_json:
        return True
    best = req.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and req.accept_mimetypes[best] > req.accept_mimetypes["text/html"]


def is_api_path(path: str | None = None) -> bool:
    """True for a URL under one of the app's JSON API prefixes."""
    path = request.path if path is None else path
    prefixes = current_app.config.get(API_PREFIXES_KEY) or ("/api/",)
    return any(path == prefix.rstrip("/") or path.startswith(prefix) for prefix in prefixes)


def is_api_request(req: Request | None = None) -> bool:
    """True when the caller expects JSON: :func:`wants_json`, or a path under an API prefix."""
    req = req or request
    return wants_json(req) or is_api_path(req.path)


def add_api_prefix(app: Flask, prefix: str) -> None:
    """Declare ``prefix`` (e.g. ``/hangfire/api/``) as JSON-only: its errors are always JSON."""
    prefixes = list(app.config.get(API_PREFIXES_KEY) or ("/api/",))
    if prefix not in prefixes:
        prefixes.append(prefix)
    app.config[API_PREFIXES_KEY] = tuple(prefixes)


def landing_url() -> str:
    """Where a signed-in person goes when no (safe) ``next`` says otherwise: ``/`` decides."""
    return url_for("landing")


def is_local_path(target: str) -> bool:
    """True for a path on this site: starts with one ``/``, no backslash, no control character."""
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(c) < 32 or ord(c) == 127 for c in target))


def safe_next_url(target: str | None, default: str | None = None) -> str:
    """``target`` if it is a same-site relative path, else ``default`` (the landing page).

    The one rule for every ``next`` (and Flask-Admin's ``url``): only ``/path?query``.
    Scheme-relative ``//host``, ``////host``, ``/\\host``, absolute URLs, ``javascript:``,
    control characters, and any of these percent-encoded (``/%2F%2Fhost``, ``/%5Chost``,
    even encoded twice) fall back.
    """
    fallback = default if default is not None else landing_url()
    if not target or len(target) > MAX_NEXT_LENGTH:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not is_local_path(target):
        return fallback
    path = parts.path
    for _ in range(3):  # undo up to three layers of percent-encoding
        decoded = unquote(path)
        if not is_local_path(decoded):
            return fallback
        if decoded == path:
            return target
        path = decoded
    return fallback


def human_size(size: int | float | None) -> str:
    """``368 bytes``, ``1 byte``, ``12.3 kB``, ``4.0 MB`` (powers of 1000, as browsers show downloads)."""
    if size is None:
        return "–"
    if size < 1000:
        return f"{int(size)} byte{'' if size == 1 else 's'}"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}"
    return ""  # pragma: no cover - the loop always returns


def error_message(error: HTTPException) -> str:
    """The sentence shown under an error's title."""
    if error.code == 404:
        return "There is nothing at this address. It may have moved, or the link may be mistyped."
    if error.code == 403:
        return "Your roles don't allow this. Ask an administrator if you need it."
    if error.code and error.code >= 500:
        return ("The error has been logged. Try again in a moment; "
                "if it keeps happening, tell an administrator.")
    return error.description or ""


def json_message(error: HTTPException) -> str:
    """The ``error`` text of a JSON answer: short for the common cases, else the exception's own."""
    code = error.code or 500
    if code == 404:
        return "not found"
    if code == 405:
        return f"method {request.method} not allowed here"
    if code >= 500:
        return "internal error"
    return error.description or ERROR_TITLES.get(code, error.name)


def passed_headers(error: HTTPException) -> dict[str, str]:
    """The headers of ``error``'s own response that an answer must keep (``Allow``, ``Retry-After``)."""
    headers = error.get_response().headers
    return {name: headers[name] for name in ("Allow", "Retry-After", "WWW-Authenticate") if name in headers}


def json_answer(error: HTTPException):
    """``{"error": ...}`` with the error's status and headers."""
    response = jsonify(error=json_message(error))
    response.status_code = error.code or 500
    response.headers.update(passed_headers(error))
    return response


def error_page(error: HTTPException):
    """The error page in the app's layout; a plain one if the layout itself can't be drawn.

    A request for a host outside ``TRUSTED_HOSTS`` gets bare text: it has no URL adapter, so
    no page of ours (they all link to our own static files) can be drawn for it.
    """
    code = error.code or 500
    context = {"code": code, "title": ERROR_TITLES.get(code, error.name), "message": error_message(error)}
    if isinstance(error, SecurityError):
        return current_app.response_class(f"{code} {context['title']}\n", code, passed_headers(error),
                                          mimetype="text/plain")
    try:
        html = render_template("errors/error.html", **context)
    except Exception:  # noqa: BLE001 - e.g. the database behind the navigation is down
        log.exception("error page %s could not be drawn in the app's layout", code)
        html = render_template("errors/plain.html", **context)
    return current_app.make_response((html, code, passed_headers(error)))


def handle_http_error(error: HTTPException):
    """Every 4xx/5xx the app raises: JSON for API callers, a page in the app's layout for browsers."""
    if error.code is None or error.code < 400:
        return error
    if is_api_request():
        return json_answer(error)
    return error_page(error)


def init_app(app: Flask) -> None:
    """Register the error pages (an unhandled exception becomes a 500 through them too) and the
    ``filesize`` template filter."""
    app.register_error_handler(HTTPException, handle_http_error)
    app.jinja_env.filters["filesize"] = human_size
