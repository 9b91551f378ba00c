"""JSON error responses shared by the bearer loader, the token API and the login manager."""
from __future__ import annotations

from collections.abc import Mapping

from flask import Response, jsonify, make_response


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A ``{"error": message}`` response with ``status`` and extra ``headers``."""
    response = make_response(jsonify(error=message), status)
    response.headers.update(headers or {})
    return response


def bearer_challenge(status: int, message: str, error: str | None = None) -> Response:
    """A JSON error carrying the RFC 6750 ``WWW-Authenticate: Bearer`` challenge."""
    challenge = 'Bearer realm="api"' + (f', error="{error}"' if error else "")
    return json_error(status, message, {"WWW-Authenticate": challenge})


def retry_after_headers(seconds: int) -> dict[str, str]:
    """The ``Retry-After`` header for a throttled request."""
    return {"Retry-After": str(seconds)}
