"""Small request helpers shared by the auth pages, the admin and the dashboard."""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from flask import Request, request


def wants_json(req: Request | None = None) -> bool:
    """True for API callers: a bearer token, a JSON body, or JSON preferred over HTML."""
    req = req or request
    if req.headers.get("Authorization", "").lower().startswith("bearer "):
        return True
    if req.is_json:
        return True
    best = req.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and req.accept_mimetypes[best] > req.accept_mimetypes["text/html"]


def safe_next_url(target: str | None, default: str) -> str:
    """``target`` if it stays on this site (a relative path), else ``default``.

    Rejects absolute URLs to other hosts, scheme-relative ``//evil``, backslash
    tricks and anything with a scheme other than this site's own.
    """
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        host = urlsplit(urljoin(request.host_url, target))
        if host.netloc != urlsplit(request.host_url).netloc or host.scheme not in ("http", "https"):
            return default
        return host.path + (f"?{host.query}" if host.query else "")
    return target
