"""Accounts: password hashing, permissions through roles, lookup by login, inactive users."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import User
from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY, ROLES, USERS
from tests.helpers.web import PASSWORD


@pytest.fixture
def ctx(app):
    """An application context for the test body."""
    with app.app_context():
        yield


def user(user_id: int) -> User:
    """The user with ``user_id``."""
    return db.session.get(User, user_id)


def test_password_is_hashed_not_stored(ctx, make_user):
    account = user(make_user("alice"))
    assert account.password_hash.split(":", 1)[0] in ("scrypt", "pbkdf2")
    assert PASSWORD not in account.password_hash
    assert account.check_password(PASSWORD)
    assert not account.check_password("Correct horse battery")


def test_same_password_hashes_differently(ctx, make_user):
    assert user(make_user("alice")).password_hash != user(make_user("bob")).password_hash


def test_user_without_password_never_matches(ctx):
    account = User(username="nopass", email="nopass@example.com")
    assert not account.check_password("")
    assert not account.check_password("anything")


def test_set_password_replaces_hash(ctx, make_user):
    account = user(make_user("alice"))
    account.set_password("a new passphrase")
    assert account.check_password("a new passphrase") and not account.check_password(PASSWORD)


def test_permissions_come_through_roles(ctx, make_user):
    operator = user(make_user("operator", permissions=[HANGFIRE, ROLES]))
    assert operator.permission_names == {HANGFIRE, ROLES}
    assert operator.has_permission(HANGFIRE)
    assert operator.has_permission(USERS, ROLES)  # any of the names
    assert not operator.has_permission(USERS)
    assert not operator.has_permission(HANGFIRE_READ_ONLY)


def test_admin_role_holds_every_permission(ctx, make_user):
    admin = user(make_user("root", roles=["Admin"]))
    assert admin.has_permission(HANGFIRE) and admin.has_permission(USERS)


def test_user_without_roles_has_no_permission(ctx, make_user):
    assert not user(make_user("plain")).has_permission(HANGFIRE)


def test_inactive_user(ctx, make_user):
    dormant = user(make_user("dormant", permissions=[HANGFIRE], active=False))
    assert not dormant.is_active
    assert not dormant.has_permission(HANGFIRE)
    assert dormant.check_password(PASSWORD)  # the password still matches; sign-in refuses


@pytest.mark.parametrize("login", ["alice", "ALICE", "alice@example.com", "Alice@Example.COM", "  alice  "])
def test_by_login_matches_username_or_email(ctx, make_user, login):
    alice_id = make_user("alice")
    make_user("bob")
    assert User.by_login(login).id == alice_id


def test_by_login_unknown(ctx, make_user):
    make_user("alice")
    assert User.by_login("mallory") is None
    assert User.by_login("") is None
