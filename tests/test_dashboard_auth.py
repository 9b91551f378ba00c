"""The dashboard's authorization filter chain (``JOBS_DASHBOARD_AUTHORIZATION``)."""
from __future__ import annotations

import pytest

from admin.authorization import (
    CONFIG_KEY,
    DashboardContext,
    Decision,
    LocalRequestsOnly,
    PermissionFilter,
    authorize,
    dashboard_access_required,
    is_loopback,
)
from app import create_app
from app.extensions import db
from app.models import User
from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY, USERS
from tests.helpers.web import assert_json_401, bearer_token, sign_in

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


# --- the default chain: either dashboard permission -------------------------------------------

def test_default_chain_is_configured(app):
    filters = app.config[CONFIG_KEY]
    assert len(filters) == 1 and isinstance(filters[0], PermissionFilter)
    assert set(filters[0].names) == {HANGFIRE, HANGFIRE_READ_ONLY}


def test_full_permission_opens_dashboard(app, make_user):
    make_user("fran", permissions=[HANGFIRE])
    client = sign_in(app, "fran")
    page = client.get("/hangfire")
    assert page.status_code == 200
    html = page.get_data(True)
    assert 'data-testid="count-failed"' in html and 'data-testid="read-only"' not in html
    assert client.get("/hangfire/").status_code == 200
    stats = client.get("/hangfire/api/stats").get_json()
    assert stats["read_only"] is False and stats["states"]["Failed"] == 0


def test_read_only_permission_opens_dashboard_read_only(app, make_user):
    make_user("rita", permissions=[HANGFIRE_READ_ONLY])
    client = sign_in(app, "rita")
    page = client.get("/hangfire")
    assert page.status_code == 200 and 'data-testid="read-only"' in page.get_data(True)
    assert client.get("/hangfire/api/stats").get_json()["read_only"] is True


def test_both_permissions_are_not_read_only(app, make_user):
    make_user("bea", permissions=[HANGFIRE, HANGFIRE_READ_ONLY])
    assert sign_in(app, "bea").get("/hangfire/api/stats").get_json()["read_only"] is False


def test_without_permission_is_forbidden(app, make_user):
    make_user("nina", permissions=[USERS])
    client = sign_in(app, "nina")
    assert client.get("/hangfire").status_code == 403
    refused = client.get("/hangfire/api/stats")
    assert refused.status_code == 403 and refused.get_json() == {"error": "permission denied"}


def test_anonymous_browser_is_sent_to_login(client):
    response = client.get("/hangfire")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fhangfire"


def test_anonymous_api_caller_gets_401_json(client):
    assert_json_401(client.get("/hangfire", headers={"Accept": "application/json"}))
    assert_json_401(client.get("/hangfire/api/stats"))


# --- bearer tokens ----------------------------------------------------------------------------

def test_bearer_token_opens_stats(app, make_user, client):
    make_user("tom", permissions=[HANGFIRE])
    token = bearer_token(client, "tom")
    response = app.test_client().get("/hangfire/api/stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["read_only"] is False and "states" in response.get_json()


def test_bearer_token_without_permission_is_forbidden(app, make_user, client):
    make_user("nina")
    token = bearer_token(client, "nina")
    response = app.test_client().get("/hangfire/api/stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.is_json


def test_bad_bearer_token_gets_401_json(client):
    assert_json_401(client.get("/hangfire/api/stats", headers={"Authorization": "Bearer not-a-token"}))
    assert_json_401(client.get("/hangfire", headers={"Authorization": "Bearer not-a-token"}))


# --- LocalRequestsOnly ------------------------------------------------------------------------

@pytest.fixture
def local_only_app(app_config, app):
    """A second app on the same (clean) database whose chain is ``[LocalRequestsOnly()]``."""
    local = create_app({**app_config, CONFIG_KEY: [LocalRequestsOnly()]})
    yield local
    with local.app_context():
        db.engine.dispose()


def test_local_requests_only(local_only_app, make_user):
    assert isinstance(local_only_app.config[CONFIG_KEY][0], LocalRequestsOnly)  # setdefault kept it
    client = local_only_app.test_client()
    assert client.get("/hangfire", environ_base=LOCAL).status_code == 200
    assert client.get("/hangfire", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/hangfire", environ_base=REMOTE).headers["Location"] == "/login?next=%2Fhangfire"
    make_user("fran", permissions=[HANGFIRE])
    assert sign_in(local_only_app, "fran", environ_base=REMOTE).get("/hangfire").status_code == 403
    assert sign_in(local_only_app, "fran", environ_base=LOCAL).get("/hangfire").status_code == 200


@pytest.mark.parametrize("address,expected", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.1.2.3", False), ("192.168.0.1", False), ("::ffff:10.0.0.1", False), ("2001:db8::1", False),
    ("", False), (None, False), ("localhost", False),
])
def test_is_loopback(address, expected):
    assert is_loopback(address) is expected


@pytest.fixture
def behind_one_proxy(app_config):
    """The app behind one trusted proxy hop (``TRUSTED_PROXIES=1``, as on Heroku)."""
    app_config["TRUSTED_PROXIES"] = 1


def test_forwarded_address_counts_behind_a_trusted_proxy(behind_one_proxy, app):
    """Behind the router (TRUSTED_PROXIES=1) the client's address is the forwarded one."""
    app.config[CONFIG_KEY] = [LocalRequestsOnly()]
    client = app.test_client()
    via_proxy = client.get("/hangfire", environ_base=LOCAL, headers={"X-Forwarded-For": "10.1.2.3"})
    assert via_proxy.status_code == 302
    forwarded_local = client.get("/hangfire", environ_base=REMOTE, headers={"X-Forwarded-For": "127.0.0.1"})
    assert forwarded_local.status_code == 200


def test_forwarded_address_is_ignored_without_trusted_proxies(app):
    """Without TRUSTED_PROXIES a client can't claim to be local with X-Forwarded-For."""
    app.config[CONFIG_KEY] = [LocalRequestsOnly()]
    client = app.test_client()
    forged = client.get("/hangfire", environ_base=REMOTE, headers={"X-Forwarded-For": "127.0.0.1"})
    assert forged.headers["Location"] == "/login?next=%2Fhangfire"


# --- custom filters and chains ----------------------------------------------------------------

def test_custom_filter_only_admin(app, make_user):
    """The README's example: only the user called ``admin`` may open the dashboard."""
    app.config["JOBS_DASHBOARD_AUTHORIZATION"] = [
        lambda ctx: ctx.user.is_authenticated and ctx.user.username == "admin"
    ]
    make_user("admin")
    make_user("fran", permissions=[HANGFIRE])
    assert sign_in(app, "admin").get("/hangfire").status_code == 200
    assert sign_in(app, "fran").get("/hangfire").status_code == 403
    assert app.test_client().get("/hangfire").headers["Location"] == "/login?next=%2Fhangfire"


def test_chain_needs_every_filter(app, make_user):
    app.config[CONFIG_KEY] = [PermissionFilter(HANGFIRE), LocalRequestsOnly()]
    make_user("fran", permissions=[HANGFIRE])
    make_user("rita", permissions=[HANGFIRE_READ_ONLY])
    assert sign_in(app, "fran", environ_base=LOCAL).get("/hangfire").status_code == 200
    assert sign_in(app, "fran", environ_base=REMOTE).get("/hangfire").status_code == 403
    assert sign_in(app, "rita", environ_base=LOCAL).get("/hangfire").status_code == 403


def test_filter_that_raises_denies(app, make_user):
    def broken(ctx):
        raise RuntimeError("boom")

    app.config[CONFIG_KEY] = [broken]
    make_user("fran", permissions=[HANGFIRE])
    assert sign_in(app, "fran").get("/hangfire").status_code == 403


def test_decorator_guards_plain_views(app, make_user):
    """``dashboard_access_required`` puts the same chain on routes outside the admin."""
    app.add_url_rule("/probe", "probe", dashboard_access_required(lambda: "inside"))
    make_user("fran", permissions=[HANGFIRE])
    make_user("nina")
    assert sign_in(app, "fran").get("/probe").get_data(True) == "inside"
    assert sign_in(app, "nina").get("/probe").status_code == 403
    assert app.test_client().get("/probe").headers["Location"] == "/login?next=%2Fprobe"
    assert_json_401(app.test_client().get("/probe", headers={"Accept": "application/json"}))


def test_menu_follows_the_chain(app, make_user):
    make_user("fran", permissions=[HANGFIRE])
    make_user("nina", permissions=[USERS])
    assert 'href="/hangfire"' in sign_in(app, "fran").get("/admin/").get_data(True)
    assert 'href="/hangfire"' not in sign_in(app, "nina").get("/admin/").get_data(True)
    app.config[CONFIG_KEY] = [lambda ctx: ctx.user.is_authenticated and ctx.user.username == "nina"]
    assert 'href="/hangfire"' in sign_in(app, "nina").get("/admin/").get_data(True)


# --- authorize() directly ---------------------------------------------------------------------

def user_named(username: str) -> User:
    """The user called ``username`` (inside the current app context)."""
    return db.session.scalar(db.select(User).where(User.username == username))


def test_authorize_decisions(app, make_user):
    make_user("fran", permissions=[HANGFIRE])
    make_user("rita", permissions=[HANGFIRE_READ_ONLY])
    make_user("gone", permissions=[HANGFIRE], active=False)
    from flask_login import AnonymousUserMixin

    with app.test_request_context("/hangfire"):
        from flask import request

        def decide(user, filters=None):
            return authorize(DashboardContext(request=request, user=user), filters)

        assert decide(user_named("fran")) == Decision(allowed=True, read_only=False, authenticated=True)
        assert decide(user_named("rita")) == Decision(allowed=True, read_only=True, authenticated=True)
        assert decide(user_named("gone")).allowed is False
        assert decide(AnonymousUserMixin()) == Decision(allowed=False)
        assert decide(AnonymousUserMixin(), filters=[]).allowed is True
        assert decide(user_named("rita"), filters=[PermissionFilter(HANGFIRE)]).allowed is False


def test_permission_filter_needs_a_name():
    with pytest.raises(ValueError):
        PermissionFilter()


# --- the mount path ---------------------------------------------------------------------------

def test_dashboard_path_is_configurable(app_config, app, make_user):
    moved = create_app({**app_config, "JOBS_DASHBOARD_PATH": "/ops/jobs/"})
    try:
        make_user("fran", permissions=[HANGFIRE])
        client = sign_in(moved, "fran")
        assert client.get("/ops/jobs").status_code == 200
        assert client.get("/ops/jobs/api/stats").status_code == 200
        assert client.get("/hangfire").status_code == 404
        assert moved.test_client().get("/ops/jobs").headers["Location"] == "/login?next=%2Fops%2Fjobs"
    finally:
        with moved.app_context():
            db.engine.dispose()
