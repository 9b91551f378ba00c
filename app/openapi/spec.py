"""The OpenAPI 3.1 description of the app's JSON API, built from ``app.url_map`` at request time.

Every rule whose view carries :func:`app.openapi.registry.documented` operations becomes a path
item; the path follows the app's configuration (e.g. ``JOBS_DASHBOARD_PATH``), and path
parameters get their type from the URL converter (``<id:...>``: an integer id) unless the
operation names a schema for them.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask
from werkzeug.routing import Rule

from app.inputs import MAX_ID
from app.openapi.registry import INTEGER, STRING, Operation, Schema, operations_of

OPENAPI_VERSION = "3.1.0"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTER_SCHEMAS: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    "int": INTEGER,
}
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "a token from POST /api/token (1 hour)"},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "session",
                   "description": "a signed-in browser session; changes also need the X-CSRFToken header"},
}
DESCRIPTION = (
    "The JSON API of the jobs application. Authenticate with a bearer token from `POST /api/token` "
    "(or a signed-in session). The dashboard API (under the dashboard path) also needs the "
    "\"Hangfire Dashboard\" permission (changes) or its \"View only\" variant (reads); the reports API "
    "shows each caller only their own reports. Every error is `{\"error\": \"...\"}`."
)


def openapi_path(rule: Rule) -> str:
    """``/api/reports/<id:report_id>`` → ``/api/reports/{report_id}``."""
    return VARIABLE.sub(lambda match: "{" + match["name"] + "}", rule.rule)


def path_parameters(rule: Rule, operation: Operation) -> list[dict]:
    """The path parameters of ``rule``, typed by the operation or by their converter."""
    parameters = []
    for match in VARIABLE.finditer(rule.rule):
        name = match["name"]
        schema = operation.path.get(name) or CONVERTER_SCHEMAS.get(match["converter"] or "", STRING)
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return parameters


def operation_object(rule: Rule, method: str, operation: Operation, operation_id: str) -> dict:
    """The OpenAPI operation object for ``method`` on ``rule``."""
    found: dict = {
        "operationId": operation_id, "summary": operation.summary,
        "parameters": path_parameters(rule, operation) + [param.as_openapi() for param in operation.query],
        "responses": {str(status): answer.as_openapi()
                      for status, answer in sorted(operation.responses.items())},
        "security": [dict(requirement) for requirement in operation.security],
    }
    if operation.description:
        found["description"] = operation.description
    if operation.tags:
        found["tags"] = list(operation.tags)
    if operation.body is not None:
        body = operation.body() if callable(operation.body) else operation.body
        found["requestBody"] = {"required": operation.body_required,
                                "content": {"application/json": {"schema": body}}}
    return found


def documented_routes(app: Flask) -> Iterator[tuple[Rule, str, Operation]]:
    """``(rule, method, operation)`` for every documented method of every rule, in path order."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        operations = operations_of(app.view_functions.get(rule.endpoint))
        for method in METHODS:
            if method in (rule.methods or ()) and method in operations:
                yield rule, method, operations[method]


def build_spec(app: Flask, server_url: str = "/") -> dict:
    """The whole OpenAPI 3.1 document for ``app``."""
    paths: dict[str, dict] = {}
    used_ids: set[str] = set()
    for rule, method, operation in documented_routes(app):
        operation_id = rule.endpoint.replace(".", "_") + ("" if method == "GET" else f"_{method.lower()}")
        while operation_id in used_ids:
            operation_id += "_"
        used_ids.add(operation_id)
        paths.setdefault(openapi_path(rule), {})[method.lower()] = operation_object(rule, method, operation,
                                                                                    operation_id)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Jobs application API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }
