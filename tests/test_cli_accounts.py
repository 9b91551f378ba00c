"""The accounts CLI (``users``, ``roles``, ``permissions``, ``setup``) against the real database."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Permission, Role, User
from app.permissions import ADMIN_ROLE, HANGFIRE, REGISTRY
from tests.helpers.accounts import make_role, role_state, role_id_by_name, user_state
from tests.helpers.web import PASSWORD, sign_in


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
