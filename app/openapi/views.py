"""Where the API description is served: ``<dashboard>/api/openapi.json`` and the docs page ``/docs/api``.

Both are open to anyone who may use the API at all: a signed-in user (session) or a bearer-token
caller. The description lists every operation; which of them a caller may use still depends on
their permissions (the dashboard API needs "Hangfire Dashboard" or "View only").
The docs page is Swagger UI from ``static/vendor/swagger-ui`` (no CDN), started by
``static/apidocs.js`` (no inline script); its requests send the session's CSRF token.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask_login import login_required

from app.openapi.registry import Response, documented
from app.openapi.spec import build_spec

OPENAPI_DOCUMENT = {"type": "object", "required": ["openapi", "info", "paths"],
                    "properties": {"openapi": {"const": "3.1.0"}, "info": {"type": "object"},
                                   "paths": {"type": "object"}}}


@login_required
@documented("This description (OpenAPI 3.1)", {200: Response("the OpenAPI document", OPENAPI_DOCUMENT)},
            tags=("Meta",))
def spec():
    """The OpenAPI 3.1 document, generated from the routes."""
    response = jsonify(build_spec(current_app, request.script_root + "/"))
    response.headers["Cache-Control"] = "no-store"
    return response


@login_required
def docs():
    """Swagger UI over :func:`spec`."""
    return render_template("apidocs.html")


def spec_path(app: Flask) -> str:
    """Where the description is served: ``<dashboard path>/api/openapi.json``."""
    from admin.dashboard.guard import api_path

    return api_path(app) + "/openapi.json"


def init_app(app: Flask) -> None:
    """Register the ``openapi`` blueprint: the description (under the dashboard's API path) and its page."""
    bp = Blueprint("openapi", __name__)
    bp.add_url_rule(spec_path(app), "spec", spec, methods=["GET"])
    bp.add_url_rule("/docs/api", "docs", docs, methods=["GET"])
    app.register_blueprint(bp)
