"""The accounts CLI (``users``, ``roles``, ``permissions``, ``setup``) against the real database,
and ``/healthz`` answering 503 per component: a stopped redis-server, an unreachable database.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import Permission, Role, User
from app.permissions import ADMIN_ROLE, HANGFIRE, REGISTRY
from tests.helpers.accounts import make_role, role_state, role_id_by_name, user_state
from tests.helpers.web import PASSWORD, sign_in
from tests.services import RedisServer


def run(runner, *args):
    """Invoke ``flask <args>``; returns the result."""
    return runner.invoke(args=list(args))


def ok(result) -> str:
    """The output of a command that must succeed."""
    assert result.exit_code == 0, result.output
    return result.output


def fails(result, message: str) -> None:
    """A command that must fail with ``message`` and no traceback."""
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output


# --- users ---------------------------------------------------------------------------------------

def test_users_create_with_roles_signs_in(app, runner):
    make_role(app, "Operators", [HANGFIRE])
    out = ok(run(runner, "users", "create", "carol", "--email", "carol@example.com", "--password", PASSWORD,
                 "--role", "Operators"))
    assert out.startswith("created user carol (id ")
    carol = user_state(app, "carol")
    assert carol.email == "carol@example.com" and carol.active and carol.check_password(PASSWORD)
    assert sign_in(app, "carol").get("/hangfire").status_code == 200


@pytest.mark.parametrize("args, message", [
    (["carol", "--email", "carol@example.com", "--password", "short"], "password: A password has at least 8"),
    (["carol", "--email", "carol@localhost", "--password", PASSWORD], "email: Enter a valid email address."),
    (["two words", "--email", "carol@example.com", "--password", PASSWORD],
     "username: A username can't contain"),
    (["carol", "--email", "carol@example.com", "--password", PASSWORD, "--role", "Nope"],
     "no role named 'Nope'"),
    (["root", "--email", "other@example.com", "--password", PASSWORD], "already exists"),
    (["other", "--email", "ROOT@example.com", "--password", PASSWORD], "already exists"),
])
def test_users_create_refuses_bad_input(app, runner, make_user, args, message):
    make_user("root")
    fails(run(runner, "users", "create", *args), message)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_seed_admin_creates_once_with_the_configured_password(app, runner):
    app.config["ADMIN_PASSWORD"] = "seeded admin password"
    created = ok(run(runner, "users", "seed-admin"))
    assert "created user admin with the password from ADMIN_PASSWORD" in created
    assert ok(run(runner, "users", "seed-admin")).strip() == "user admin already exists"
    admin = user_state(app, "admin")
    assert admin.check_password("seeded admin password") and admin.email == "admin@example.com"
    assert sign_in(app, "admin", "seeded admin password").get("/admin/role/").status_code == 200


def test_seed_admin_generates_and_prints_a_password(app, runner):
    out = ok(run(runner, "users", "seed-admin"))
    password = out.rsplit(": ", 1)[1].strip()
    assert len(password) >= 12 and user_state(app, "admin").check_password(password)


# --- roles and permissions ------------------------------------------------------------------------

def test_roles_create_grant_revoke(app, runner):
    assert ok(run(runner, "roles", "create", "Operators", "--description", "Run jobs")).strip() == \
        "created role Operators"
    role_id = role_id_by_name(app, "Operators")
    assert ok(run(runner, "roles", "grant", "Operators", HANGFIRE)).strip() == f"Operators holds {HANGFIRE}"
    ok(run(runner, "roles", "grant", "Operators", HANGFIRE))  # idempotent
    assert role_state(app, role_id) == ("Operators", {HANGFIRE})
    ok(run(runner, "roles", "revoke", "Operators", HANGFIRE))
    ok(run(runner, "roles", "revoke", "Operators", HANGFIRE))
    assert role_state(app, role_id) == ("Operators", set())


def test_roles_commands_refuse_bad_input(app, runner):
    make_role(app, "Operators")
    fails(run(runner, "roles", "create", "Operators"), "role 'Operators' already exists")
    fails(run(runner, "roles", "create", "x" * 65), "a role name has 1 to 64 characters")
    fails(run(runner, "roles", "grant", "Nope", HANGFIRE), "no role named 'Nope'")
    fails(run(runner, "roles", "grant", "Operators", "Pages.Nope"), "no permission named 'Pages.Nope'")
    fails(run(runner, "roles", "revoke", ADMIN_ROLE, HANGFIRE),
          "the Admin role always holds every permission")
    assert role_state(app, role_id_by_name(app, ADMIN_ROLE))[1] == set(REGISTRY)


def test_permissions_sync_twice_is_idempotent_and_repairs_the_admin_role(app, runner):
    with app.app_context():
        admin = Role.by_name(ADMIN_ROLE)
        admin.permissions = []
        db.session.scalar(select(Permission).where(Permission.name == HANGFIRE)).display_name = "Old name"
        db.session.commit()
    first = ok(run(runner, "permissions", "sync"))
    assert first.strip() == f"permissions synced: 0 created, 1 updated, {len(REGISTRY)} total"
    second = ok(run(runner, "permissions", "sync"))
    assert second.strip() == f"permissions synced: 0 created, 0 updated, {len(REGISTRY)} total"
    assert role_state(app, role_id_by_name(app, ADMIN_ROLE))[1] == set(REGISTRY)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Permission)) == len(REGISTRY)


def test_setup_is_idempotent(app, runner):
    app.config["ADMIN_PASSWORD"] = "seeded admin password"
    first = ok(run(runner, "setup"))
    assert "sign in as admin with password (ADMIN_PASSWORD)" in first and "database ready" in first
    second = ok(run(runner, "setup"))
    assert "sign in as admin" not in second and "database ready" in second
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


# --- /healthz ---------------------------------------------------------------------------------------

@pytest.fixture
def own_redis(tmp_path, app_config):
    """A redis-server only this test uses (so stopping it harms no other test)."""
    server = RedisServer(str(tmp_path)).start()
    app_config["REDIS_URL"] = server.url
    yield server
    server.stop()


def test_healthz_503_names_the_transport_when_redis_stops(own_redis, app, make_user):
    client = app.test_client()
    healthy = {"status": "ok", "checks": {"database": "ok", "transport": "ok"}}
    assert client.get("/healthz").get_json() == healthy
    own_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable",
                                   "checks": {"database": "ok", "transport": "unavailable"}}
    make_user("olivia", permissions=[HANGFIRE])
    detailed = sign_in(app, "olivia").get("/healthz").get_json()
    assert detailed["checks"]["transport"] not in ("ok", "unavailable")  # the error, for a dashboard user
    own_redis.start()
    assert client.get("/healthz").status_code == 200


def test_healthz_503_names_the_database_when_it_is_unreachable(app_config, tmp_path):
    url = ("postgresql+psycopg://nobody:secret@127.0.0.1:1/nowhere?connect_timeout=2"
           if app_config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
           else "sqlite:///" + str(tmp_path / "missing" / "folder" / "app.db"))
    broken = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": url})
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body == {"status": "unavailable", "checks": {"database": "unavailable", "transport": "ok"}}
    assert "secret" not in response.get_data(True) and "nobody" not in response.get_data(True)
