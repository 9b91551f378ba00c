"""Small request helpers shared by the auth pages, the admin and the dashboard."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import Request, request, url_for

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


def is_api_request(req: Request | None = None) -> bool:
    """True when the caller expects JSON: a path under an ``/api/`` segment, or :func:`wants_json`."""
    req = req or request
    return "/api/" in req.path or wants_json(req)


def landing_url() -> str:
    """Where a signed-in person goes when no (safe) ``next`` says otherwise."""
    return url_for("admin.index")


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
