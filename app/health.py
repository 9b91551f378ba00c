"""``GET /healthz``: are the database and the job transport reachable?

Anonymous callers (load balancers, uptime checks) learn only which component is down;
the error text goes to the log, and to signed-in users who may open the jobs dashboard.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from flask_login import current_user
from sqlalchemy import text

from app.extensions import csrf, db
from app.openapi.registry import PUBLIC, STRING, Response, documented, enum, obj
from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY

log = logging.getLogger(__name__)


def check_database() -> str | None:
    """None when a trivial query succeeds, else the error text."""
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        db.session.rollback()
        return f"{type(exc).__name__}: {exc}"


def may_see_errors() -> bool:
    """True for an active, signed-in user who may open the jobs dashboard."""
    try:
        user = current_user
        return bool(user.is_authenticated and user.has_permission(HANGFIRE, HANGFIRE_READ_ONLY))
    except Exception:  # noqa: BLE001 - with the database down nobody can be looked up
        db.session.rollback()
        return False


HEALTH = obj(status=enum(["ok", "unavailable"]), checks=obj(database=STRING, transport=STRING))


@documented("Is the database and the job transport reachable?", {
    200: Response("everything answers", HEALTH), 503: Response("a component is down", HEALTH),
}, security=PUBLIC, tags=("Meta",))
def healthz():
    """200 with per-component status when everything answers, 503 otherwise."""
    from tasks import transport_error

    checks = {"database": check_database(), "transport": transport_error(current_app)}
    for name, error in checks.items():
        if error is not None:
            log.warning("health check: %s unavailable: %s", name, error)
    healthy = all(error is None for error in checks.values())
    detailed = not healthy and may_see_errors()
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: "ok" if error is None else (error if detailed else "unavailable")
                   for name, error in checks.items()},
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, 200 if healthy else 503


def init_app(app: Flask) -> None:
    """Register the health route (exempt from CSRF: it is a GET only)."""
    app.add_url_rule("/healthz", "healthz", csrf.exempt(healthz), methods=["GET"])
