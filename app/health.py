"""``GET /healthz``: is the database and the job transport reachable?"""
from __future__ import annotations

from flask import Flask, current_app, jsonify
from sqlalchemy import text

from app.extensions import csrf, db


def check_database() -> str | None:
    """None when a trivial query succeeds, else the error text."""
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        db.session.rollback()
        return f"{type(exc).__name__}: {exc}"


def healthz():
    """200 with per-component status when everything answers, 503 otherwise."""
    from tasks import transport_error

    checks = {"database": check_database(), "transport": transport_error(current_app)}
    healthy = all(error is None for error in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: ("ok" if err is None else err) for name, err in checks.items()},
    }
    return jsonify(body), 200 if healthy else 503


def init_app(app: Flask) -> None:
    """Register the health route (exempt from CSRF: it is a GET only)."""
    app.add_url_rule("/healthz", "healthz", csrf.exempt(healthz), methods=["GET"])
