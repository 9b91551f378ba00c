"""Every bad input of the web side, one table: a clear 4xx (JSON for API callers), never a 500 or a
traceback, and the app keeps answering. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL
(where NUL in text and ids beyond INTEGER used to fail in the database).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from app.permissions import ADMIN_ROLE
from tests.helpers.web import bearer, bearer_token, csrf_for, sign_in

HUGE = "99999999999999999999"
DEEP = "[" * 10_000 + "]" * 10_000
JSON = {"content_type": "application/json"}


@dataclass(frozen=True)
class Case:
    """One bad request: who sends it, what, and the status (and JSON error start) it must get."""

    name: str
    who: str  # anonymous, admin (session + CSRF), bearer
    method: str
    path: str
    status: int
    kwargs: dict = field(default_factory=dict)
    error: str | None = None  # the start of the JSON "error", for API answers
    csrf: bool = False  # add the session's CSRF token to form data

    def __str__(self) -> str:
        return self.name


CASES = [
    # ids too large for the database, and other non-ids, on the reports routes
    Case("report status id too large", "admin", "get", f"/reports/{HUGE}/status", 404),
    Case("report download id too large", "admin", "get", f"/reports/{HUGE}/download", 404),
    Case("report retry id too large", "admin", "post", f"/reports/{HUGE}/retry", 404, csrf=True),
    Case("report id zero", "admin", "get", "/reports/0/status", 404),
    Case("report id negative", "admin", "get", "/reports/-1/status", 404),
    Case("report id past INTEGER", "admin", "get", "/reports/2147483648/status", 404),
    # pages, sorts and ids on the admin lists and forms
    Case("user list page too large", "admin", "get", f"/admin/user/?page={HUGE}", 200),
    Case("user list page negative", "admin", "get", "/admin/user/?page=-5", 200),
    Case("user list page not a number", "admin", "get", "/admin/user/?page=abc", 200),
    Case("user list page size too large", "admin", "get", f"/admin/user/?page_size={HUGE}", 200),
    Case("user list sort too large", "admin", "get", f"/admin/user/?sort={HUGE}", 200),
    Case("role list page too large", "admin", "get", f"/admin/role/?page={HUGE}&sort=0&desc=1", 200),
    Case("user list filter too large", "admin", "get", f"/admin/user/?flt0_0={HUGE}", 200),
    Case("user edit id too large", "admin", "get", f"/admin/user/edit/?id={HUGE}", 302),
    Case("user edit id not a number", "admin", "get", "/admin/user/edit/?id=abc", 302),
    Case("role edit id too large", "admin", "get", f"/admin/role/edit/?id={HUGE}", 302),
    Case("user delete id too large", "admin", "post", "/admin/user/delete/", 302,
         {"data": {"id": HUGE}}, csrf=True),
    Case("user bulk delete ids too large", "admin", "post", "/admin/user/action/", 302,
         {"data": {"action": "delete", "rowid": [HUGE, "x"]}}, csrf=True),
    Case("sign out everywhere id too large", "admin", "post", "/admin/user/sign-out-everywhere/", 404,
         {"data": {"id": HUGE}}, csrf=True),
    # NUL characters (PostgreSQL refuses them in text)
    Case("NUL in login form", "anonymous", "post", "/login", 400,
         {"data": {"username": "ali\x00ce", "password": "x"}}, csrf=True),
    Case("NUL in login next", "anonymous", "get", "/login?next=/admin/%00", 400),
    Case("NUL in token request", "anonymous", "post", "/api/token", 400,
         {"data": json.dumps({"username": "ali\x00ce", "password": "x"}), **JSON}, "invalid JSON"),
    Case("NUL in token request key", "anonymous", "post", "/api/token", 400,
         {"data": json.dumps({"username\x00": "a", "password": "x"}), **JSON}, "invalid JSON"),
    Case("NUL in user search", "admin", "get", "/admin/user/?search=%00", 400),
    Case("NUL in role form", "admin", "post", "/admin/role/new/", 400,
         {"data": {"name": "Bad\x00Role"}}, csrf=True),
    Case("NUL in reports scope", "admin", "get", "/reports?scope=%00", 400),
    Case("NUL in path", "admin", "get", "/reports/%00/status", 400),
    # JSON that can't be used
    Case("JSON nested 10,000 deep", "anonymous", "post", "/api/token", 400, {"data": DEEP, **JSON},
         "invalid JSON: nested deeper"),
    Case("JSON nested past the limit", "anonymous", "post", "/api/token", 400,
         {"data": "[" * 40 + "]" * 40, **JSON}, "invalid JSON: nested deeper"),
    Case("JSON malformed", "anonymous", "post", "/api/token", 400, {"data": "{'username': 1}", **JSON},
         "invalid JSON"),
    Case("JSON truncated", "anonymous", "post", "/api/token", 400, {"data": '{"username": "a"', **JSON},
         "invalid JSON"),
    Case("JSON not UTF-8", "anonymous", "post", "/api/token", 400, {"data": b'{"username": "\xff"}', **JSON},
         "invalid JSON"),
    Case("JSON lone surrogate", "anonymous", "post", "/api/token", 400,
         {"data": '{"username": "\\ud800", "password": "x"}', **JSON}, "invalid JSON"),
    Case("JSON field of the wrong type", "anonymous", "post", "/api/token", 400,
         {"json": {"username": {"$ne": ""}, "password": "x"}}, "username must be a string"),
    Case("JSON number as password", "anonymous", "post", "/api/token", 400,
         {"json": {"username": "alice", "password": 1e400}}, "password must be a string"),
    Case("JSON array body", "anonymous", "post", "/api/token", 400, {"json": []}, "expected a JSON object"),
    Case("JSON nested deep to the dashboard API", "bearer", "post", "/hangfire/api/jobs", 400,
         {"data": DEEP, **JSON}, "invalid JSON"),
    Case("JSON with NUL to the dashboard API", "bearer", "post", "/hangfire/api/jobs", 400,
         {"data": json.dumps({"task": "demo.noop", "args": ["\x00"]}), **JSON}, "invalid JSON"),
    Case("JSON lone surrogate to the dashboard API", "bearer", "post", "/hangfire/api/jobs", 400,
         {"data": '{"task": "demo.noop", "args": ["\\udfff"]}', **JSON}, "invalid JSON"),
    Case("JSON malformed to the dashboard API", "bearer", "post", "/hangfire/api/jobs", 400,
         {"data": '{"task": ', **JSON}, "invalid JSON"),
    # sizes and methods
    Case("body over MAX_CONTENT_LENGTH", "anonymous", "post", "/api/token", 413,
         {"data": "x" * (2 * 1024 * 1024 + 1), **JSON}),
    Case("login username too long", "anonymous", "post", "/login", 200,
         {"data": {"username": "a" * 5000, "password": "x"}}, csrf=True),
    Case("token wrong method", "anonymous", "get", "/api/token", 405, error="method GET not allowed here"),
]


@pytest.fixture
def callers(app, make_user):
    """Clients for each kind of caller in the table."""
    make_user("root", roles=[ADMIN_ROLE])
    token = bearer_token(app.test_client(), "root")
    return {"anonymous": app.test_client(), "admin": sign_in(app, "root"), "bearer": token}


def send(app, callers, case: Case):
    """Make the case's request as its caller."""
    kwargs = dict(case.kwargs)
    if case.who == "bearer":
        client = app.test_client()
        kwargs["headers"] = bearer(callers["bearer"])
    else:
        client = callers[case.who]
    if case.csrf:
        kwargs["data"] = {**kwargs.get("data", {}), "csrf_token": csrf_for(client)}
    return getattr(client, case.method)(case.path, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_gets_a_clear_client_error(app, callers, case):
    response = send(app, callers, case)
    body = response.get_data(True)
    assert response.status_code == case.status, body[:500]
    assert "Traceback" not in body
    if case.error is not None:
        assert response.is_json, body[:200]
        assert response.get_json()["error"].startswith(case.error), response.get_json()
    assert callers["admin"].get("/admin/user/").status_code == 200  # the app keeps working


def test_cli_and_form_refuse_the_same_email_addresses(app, runner, make_user):
    """One validator: what the CLI refuses the form refuses, and a CLI-made user can be edited."""
    from tests.helpers.web import submit

    make_user("root", roles=[ADMIN_ROLE])
    admin = sign_in(app, "root")
    create = ["users", "create", "ann", "--password", "long enough", "--email"]
    refused = ("not-an-email", "ann@localhost", "ann@example.test", "ann@@example.com", "ann@exa mple.com")
    for address in refused:
        result = runner.invoke(args=create + [address])
        assert result.exit_code != 0 and "Enter a valid email address." in result.output, address
        form = submit(admin, "/admin/user/new/", {"username": "ann", "email": address,
                                                  "new_password": "long enough", "active": "y"})
        assert "Enter a valid email address." in form.get_data(True), address
    made = runner.invoke(args=create + ["ann@example.com"])
    assert made.exit_code == 0, made.output
    from tests.helpers.accounts import user_id

    edited = submit(admin, f"/admin/user/edit/?id={user_id(app, 'ann')}",
                    {"username": "ann", "email": "ann@example.com", "active": "y"})
    assert edited.status_code == 302
