"""One walk over ``app.url_map``: every route, GET and POST, as every kind of caller.

Each endpoint is classified in :data:`ACCESS` (by exact endpoint name, or by the blueprint/view
prefix ``"name."``): who may call it. The walk computes what each caller must get — allowed (no
401/403, no login redirect, no 5xx), sent to sign in (302 to /login, or 401 JSON on API paths),
403, or 400 for a bearer POST to a page form (CSRF) — and compares. A route nobody classified fails
:func:`test_every_route_is_classified`: add it to ``ACCESS`` when you add it to the app.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from werkzeug.routing import IntegerConverter

from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY, OUTBOX, ROLES, TENANTS, USERS
from tests.helpers.web import bearer, bearer_token, csrf_for, sign_in

SIGN_IN_ONLY = frozenset()  # any signed-in, active user
DASHBOARD_VIEW = frozenset({HANGFIRE, HANGFIRE_READ_ONLY})


@dataclass(frozen=True)
class Access:
    """Who may call an endpoint: ``public``, or any of ``get``/``post`` permissions (empty: signed in)."""

    public: bool = False
    get: frozenset = SIGN_IN_ONLY
    post: frozenset | None = None  # None: same as ``get``
    csrf_exempt: bool = False  # bearer POSTs reach it (an API), instead of failing the CSRF check
    fresh_client: bool = False  # ends the caller's session: use a throwaway signed-in client
    challenge: bool = False  # anonymous callers get a 401 JSON challenge (a scrape), never a login redirect

    def needs(self, method: str) -> frozenset:
        """The permissions (any of) a ``method`` request needs; empty means signed in is enough."""
        return self.post if method == "POST" and self.post is not None else self.get


PUBLIC = Access(public=True)
SIGNED_IN = Access()
DASHBOARD = Access(get=DASHBOARD_VIEW, post=frozenset({HANGFIRE}))

#: endpoint (exact) or prefix ending in "." → who may call it. Extend this when adding routes.
ACCESS: dict[str, Access] = {
    "static": PUBLIC,
    "admin.static": PUBLIC,
    "healthz": PUBLIC,
    "landing": PUBLIC,  # sends anonymous callers on to sign in, others to where they can work
    "auth.login": PUBLIC,
    "auth.token": Access(public=True, csrf_exempt=True),
    "auth.logout": Access(fresh_client=True),
    "auth.me": SIGNED_IN,
    "admin.index": SIGNED_IN,
    "reports.": SIGNED_IN,
    "reports_api.": Access(csrf_exempt=True),  # bearer or session (changes: X-CSRFToken), like every API
    "openapi.spec": SIGNED_IN,  # the API description: anyone who may use the API at all
    "openapi.docs": SIGNED_IN,  # Swagger UI over it
    "role.": Access(get=frozenset({ROLES})),
    "user.": Access(get=frozenset({USERS})),
    "outbox.": Access(get=frozenset({OUTBOX})),
    "tenant.": Access(get=frozenset({TENANTS})),  # Configuration → Tenants (host users only)
    "hangfire.": DASHBOARD,
    "hangfire.enqueue": Access(get=frozenset({HANGFIRE})),  # the enqueue form is for those who may enqueue
    "hangfire_api.": Access(get=DASHBOARD_VIEW, post=frozenset({HANGFIRE}), csrf_exempt=True),
    "metrics": Access(get=DASHBOARD_VIEW, challenge=True),  # or the METRICS_TOKEN (tests/test_metrics.py)
}


def access_for(endpoint: str) -> Access | None:
    """The classification of ``endpoint``: exact name first, then the longest matching prefix."""
    if endpoint in ACCESS:
        return ACCESS[endpoint]
    prefixes = [key for key in ACCESS if key.endswith(".") and endpoint.startswith(key)]
    return ACCESS[max(prefixes, key=len)] if prefixes else None


@dataclass
class Caller:
    """One kind of caller: its client (or bearer token) and the permissions it holds."""

    name: str
    permissions: frozenset = frozenset()
    anonymous: bool = False
    token: str | None = None
    client: object = None
    username: str | None = None
    outcomes: list[str] = field(default_factory=list)


CALLERS = {  # name → permissions of its user
    "anonymous": None,
    "no_permission": frozenset(),
    "read_only": frozenset({HANGFIRE_READ_ONLY}),
    "users_editor": frozenset({USERS}),
    "roles_editor": frozenset({ROLES}),
    "bearer": frozenset({HANGFIRE_READ_ONLY}),
}


def routes(app) -> list[tuple[str, str, str]]:
    """``(endpoint, method, path)`` for every rule and each of its GET/POST methods."""
    found = []
    for rule in app.url_map.iter_rules():
        values = {arg: "1" if isinstance(rule._converters[arg], IntegerConverter) else "x"
                  for arg in rule.arguments}
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods & {"GET", "POST"}):
            found.append((rule.endpoint, method, path))
    return found


def expected(access: Access, method: str, path: str, caller: Caller) -> str:
    """What ``caller`` must get: allowed, login, forbidden or csrf."""
    if caller.token and method == "POST" and not access.csrf_exempt:
        return "csrf"  # a bearer request has no session, so no CSRF token: page forms refuse it
    if access.public:
        return "allowed"
    if caller.anonymous:
        return "login"
    needed = access.needs(method)
    return "allowed" if not needed or caller.permissions & needed else "forbidden"


def outcome(response, path: str, access: Access) -> str:
    """Classify a response the way :func:`expected` speaks."""
    status, location = response.status_code, response.headers.get("Location", "")
    if status >= 500:
        return f"server error {status}"
    if status == 401:
        return "login" if ("/api/" in path or access.challenge) and response.is_json else "401 without JSON"
    if status == 302 and location.startswith("/login?next="):
        return "login"
    if status == 403:
        return "forbidden"
    if status == 400 and "CSRF" in response.get_data(True):
        return "csrf"
    return "allowed"


def call(app, caller: Caller, access: Access, method: str, path: str):
    """Make one request as ``caller`` (session callers send their CSRF token, as the pages do)."""
    if caller.token:
        client, headers = app.test_client(), bearer(caller.token)
        data = {}
    else:
        fresh = access.fresh_client and not caller.anonymous
        client = sign_in(app, caller.username) if fresh else caller.client
        token = csrf_for(client)
        headers, data = {"X-CSRFToken": token}, {"csrf_token": token}
    if method == "GET":
        return client.get(path, headers=headers)
    return client.post(path, data=data, headers=headers)


@pytest.fixture
def callers(app, make_user) -> dict[str, Caller]:
    """Every kind of caller, signed in (or holding a token)."""
    made = {}
    for name, permissions in CALLERS.items():
        if permissions is None:
            made[name] = Caller(name, anonymous=True, client=app.test_client())
            continue
        make_user(name, permissions=sorted(permissions))
        caller = Caller(name, permissions, username=name)
        if name == "bearer":
            caller.token = bearer_token(app.test_client(), name)
        else:
            caller.client = sign_in(app, name)
        made[name] = caller
    return made


def test_every_route_is_classified(app):
    unclassified = sorted({endpoint for endpoint, _, _ in routes(app) if access_for(endpoint) is None})
    assert unclassified == [], f"classify these endpoints in tests/test_route_walk.py ACCESS: {unclassified}"


@pytest.mark.parametrize("caller_name", list(CALLERS))
def test_route_walk(app, callers, caller_name):
    caller = callers[caller_name]
    wrong = []
    for endpoint, method, path in routes(app):
        access = access_for(endpoint)
        if access is None:
            continue  # reported by test_every_route_is_classified
        want = expected(access, method, path, caller)
        got = outcome(call(app, caller, access, method, path), path, access)
        if got != want:
            wrong.append(f"{method} {path} ({endpoint}): expected {want}, got {got}")
    assert wrong == [], "\n".join(wrong)
