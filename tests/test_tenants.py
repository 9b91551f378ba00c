"""Tenants: the model (usernames and role names unique per tenant, the host included), the CLI,
and sign-in with a tenant (form, token, deactivation).
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Role, Tenant, User
from app.permissions import HANGFIRE, TENANTS
from tests.helpers.web import PASSWORD
from tests.test_cli_accounts import fails, ok, run


def add_user(app, username: str, tenant: str | None, email: str | None = None) -> None:
    """Insert a user of ``tenant`` straight into the database (the unique index is what is tested)."""
    with app.app_context():
        owner = Tenant.by_name(tenant) if tenant else None
        address = email or f"{username}.{tenant or 'host'}@example.com"
        user = User(username=username, email=address, tenant=owner)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()


@pytest.fixture
def two_tenants(app, runner):
    """Tenants ``acme`` and ``globex``."""
    ok(run(runner, "tenants", "create", "acme", "--display-name", "Acme Corp"))
    ok(run(runner, "tenants", "create", "globex"))
    return "acme", "globex"


# --- the model -----------------------------------------------------------------------------------

def test_a_username_is_unique_per_tenant_and_among_host_users(app, two_tenants):
    add_user(app, "sam", None)
    add_user(app, "sam", "acme")
    add_user(app, "sam", "globex")
    for tenant, spelling in ((None, "SAM"), ("acme", "Sam")):
        with pytest.raises(IntegrityError):
            add_user(app, spelling, tenant, email=f"{spelling}-again.{tenant}@example.com")
        with app.app_context():
            db.session.rollback()
    with app.app_context():
        assert len(db.session.scalars(select(User).where(User.username == "sam")).all()) == 3


def test_a_role_name_is_unique_per_tenant_and_among_host_roles(app, runner, two_tenants):
    ok(run(runner, "roles", "create", "Operators"))
    ok(run(runner, "roles", "create", "Operators", "--tenant", "acme"))
    fails(run(runner, "roles", "create", "Operators", "--tenant", "acme"), "already exists in tenant acme")
    fails(run(runner, "roles", "create", "Operators"), "already exists")
    with app.app_context():
        owners = sorted((r.tenant.name if r.tenant else "") for r in
                        db.session.scalars(select(Role).where(Role.name == "Operators")))
    assert owners == ["", "acme"]


# --- the CLI -------------------------------------------------------------------------------------

def test_tenants_create_list_deactivate_activate(app, runner, two_tenants):
    fails(run(runner, "tenants", "create", "ACME"), "already exists")
    fails(run(runner, "tenants", "create", "bad name"), "name:")
    ok(run(runner, "tenants", "deactivate", "globex"))
    rows = json.loads(ok(run(runner, "tenants", "list", "--json")))
    assert rows == [{"name": "acme", "display_name": "Acme Corp", "active": True, "users": 0},
                    {"name": "globex", "display_name": "globex", "active": False, "users": 0}]
    assert "globex\tglobex\tinactive" in ok(run(runner, "tenants", "list"))
    ok(run(runner, "tenants", "activate", "globex"))
    with app.app_context():
        assert Tenant.by_name("globex").active
    fails(run(runner, "tenants", "deactivate", "initech"), "no tenant named 'initech'")


def test_users_and_roles_of_a_tenant_from_the_cli(app, runner, two_tenants):
    ok(run(runner, "roles", "create", "Operators", "--tenant", "acme"))
    ok(run(runner, "roles", "grant", "Operators", HANGFIRE, "--tenant", "acme"))
    fails(run(runner, "roles", "grant", "Operators", TENANTS, "--tenant", "acme"), "host roles only")
    fails(run(runner, "roles", "grant", "Operators", HANGFIRE), "no role named 'Operators'")
    fails(run(runner, "users", "create", "ann", "--email", "ann@example.com", "--password", PASSWORD,
              "--role", "Operators"), "no role named 'Operators'")
    out = ok(run(runner, "users", "create", "ann", "--email", "ann@example.com", "--password", PASSWORD,
                 "--role", "Operators", "--tenant", "acme"))
    assert "created user ann in tenant acme" in out
    ok(run(runner, "users", "create", "ann", "--email", "ann.globex@example.com", "--password", PASSWORD,
           "--tenant", "globex"))
    fails(run(runner, "users", "create", "ANN", "--email", "ann2@example.com", "--password", PASSWORD,
              "--tenant", "acme"), "already exists in tenant acme")
    fails(run(runner, "users", "create", "anne", "--email", "ann@example.com", "--password", PASSWORD),
          "already has the email address")
    fails(run(runner, "users", "create", "x", "--email", "x@example.com", "--password", PASSWORD,
              "--tenant", "initech"), "no tenant named 'initech'")
    with app.app_context():
        ann = db.session.scalar(select(User).where(User.username == "ann", User.tenant_id.is_not(None))
                                .order_by(User.id))
        assert ann.tenant.name == "acme" and ann.permission_names == {HANGFIRE}
    ok(run(runner, "roles", "revoke", "Operators", HANGFIRE, "--tenant", "acme"))
