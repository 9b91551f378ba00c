"""The token API: exchange credentials for a bearer token, and describe the caller."""
from __future__ import annotations

from flask import Response, jsonify, request
from flask_login import current_user, login_required

from app.auth.blueprint import bp
from app.auth.credentials import SignInRefused, SignInThrottled, authenticate
from app.auth.responses import json_error, retry_after_headers
from app.auth.tokens import issue_token
from app.extensions import csrf
from app.openapi.registry import ERROR, PUBLIC, STRING, array_of, documented, error, obj
from app.openapi.registry import Response as Answer

CREDENTIAL_FIELDS = ("username", "password")


FIELD_MAX_LENGTH = {"username": 255, "password": 1024, "tenant": 64}


def credentials_problem(body) -> str | None:
    """Why ``body`` is not a credentials object, or None when it is."""
    if not isinstance(body, dict):
        return 'expected a JSON object with "username" and "password"'
    for field in CREDENTIAL_FIELDS:
        value = body.get(field)
        if value is None:
            return f"missing field: {field}"
        if not isinstance(value, str):
            return f"{field} must be a string"
        if not value.strip():
            return f"missing field: {field}"
        if len(value) > FIELD_MAX_LENGTH[field]:
            return f"{field} is longer than {FIELD_MAX_LENGTH[field]} characters"
    tenant = body.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        return "tenant must be a string (or null for the host)"
    if tenant and len(tenant) > FIELD_MAX_LENGTH["tenant"]:
        return f"tenant is longer than {FIELD_MAX_LENGTH['tenant']} characters"
    return None


TOKEN = obj(access_token=STRING, token_type={"const": "Bearer"}, expires_in={"type": "integer", "minimum": 1})
CREDENTIALS = obj(username={"type": "string", "minLength": 1, "maxLength": FIELD_MAX_LENGTH["username"]},
                  password={"type": "string", "minLength": 1, "maxLength": FIELD_MAX_LENGTH["password"]})
ME = obj(id={"type": "integer"}, username=STRING, email=STRING, permissions=array_of(STRING))


@bp.route("/api/token", methods=["POST"])
@csrf.exempt
@documented("Exchange a username and password for a bearer token", {
    200: Answer("a token valid for expires_in seconds", TOKEN),
    400: error("the body isn't a JSON object with both fields"),
    401: error("wrong username or password, or an inactive account"),
    429: Answer("too many failed sign-ins: try again after Retry-After seconds", ERROR,
                headers={"Retry-After": "seconds to wait"}),
}, methods=["POST"], body=CREDENTIALS, security=PUBLIC, tags=("Authentication",))
def token() -> Response:
    """``{"username", "password", "tenant"}`` → ``{"access_token", "token_type": "Bearer", "expires_in"}``.

    ``tenant`` is optional (absent, null or blank: the host). A body that isn't JSON answers
    400 ``invalid JSON`` (see app.inputs).
    """
    body = request.get_json(force=True)
    problem = credentials_problem(body)
    if problem:
        return json_error(400, problem)
    try:
        user = authenticate(body["username"], body["password"], request.remote_addr, body.get("tenant"))
    except SignInThrottled as refused:
        return json_error(429, refused.message, retry_after_headers(refused.retry_after_seconds))
    except SignInRefused as refused:
        return json_error(401, refused.message)
    access_token, expires_in = issue_token(user)
    response = jsonify(access_token=access_token, token_type="Bearer", expires_in=expires_in)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/me", methods=["GET"])
@login_required
@documented("Who the token (or session) belongs to", {200: ME}, tags=("Authentication",))
def me() -> Response:
    """The signed-in user (by bearer token or session): id, username, email, tenant, permissions."""
    return jsonify(
        id=current_user.id,
        username=current_user.username,
        email=current_user.email,
        tenant=current_user.tenant_name,
        permissions=sorted(current_user.permission_names),
    )
