"""Tenants: the model (usernames and role names unique per tenant, the host included), the CLI,
and sign-in with a tenant (form, token, deactivation).
"""
from __future__ import annotations

import json

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Role, Tenant, User
from app.permissions import HANGFIRE, TENANTS
from app.auth.tokens import signing_key
from tests.helpers.web import PASSWORD, bearer_token, post_login, sign_in, sign_out
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


# --- signing in with a tenant --------------------------------------------------------------------

@pytest.fixture
def namesakes(app, runner, two_tenants):
    """``sam`` three times: a host user, one of acme and one of globex, each with its own password."""
    for tenant, password in ((None, "host password 1"), ("acme", "acme password 1"),
                             ("globex", "globex password 1")):
        args = ["users", "create", "sam", "--email", f"sam.{tenant or 'host'}@example.com",
                "--password", password]
        ok(run(runner, *args, *(["--tenant", tenant] if tenant else [])))
    return {None: "host password 1", "acme": "acme password 1", "globex": "globex password 1"}


def me(client, **kwargs) -> dict:
    """``/api/me`` for ``client`` (a 200 is required)."""
    response = client.get("/api/me", **kwargs)
    assert response.status_code == 200, response.get_data(True)
    return response.get_json()


def test_the_login_form_signs_in_to_the_tenant_named_and_remembers_it(app, namesakes):
    client = app.test_client()
    assert post_login(client, "sam", namesakes["globex"], tenant="acme").status_code == 200  # wrong tenant
    assert post_login(client, "sam", namesakes["acme"], tenant="nowhere").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert post_login(client, "sam", namesakes["acme"], tenant=" ACME ").status_code == 302
    assert me(client)["tenant"] == "acme"
    sign_out(client)
    page = client.get("/login").get_data(True)
    assert 'name="tenant"' in page and 'value="acme"' in page  # remembered by this browser
    host = app.test_client()
    assert post_login(host, "sam", namesakes[None], tenant="").status_code == 302
    assert me(host)["tenant"] is None
    assert 'value="acme"' not in host.get("/login").get_data(True)


def test_a_token_names_its_tenant_and_the_host_is_the_default(app, namesakes):
    client = app.test_client()
    for tenant in ("acme", "globex", None):
        token = bearer_token(client, "sam", namesakes[tenant], tenant=tenant)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["tnt"] == tenant
        assert me(app.test_client(), headers={"Authorization": f"Bearer {token}"})["tenant"] == tenant
    refused = client.post("/api/token", json={"username": "sam", "password": namesakes["acme"]})
    assert refused.status_code == 401
    for bad in (7, ["acme"], "x" * 65):
        answer = client.post("/api/token", json={"username": "sam", "password": "p", "tenant": bad})
        assert answer.status_code == 400 and "tenant" in answer.get_json()["error"]


def test_a_token_moved_to_another_tenant_is_refused(app, namesakes):
    token = bearer_token(app.test_client(), "sam", namesakes["acme"], tenant="acme")
    with app.app_context():
        claims = jwt.decode(token, options={"verify_signature": False})
        user = db.session.get(User, int(claims["sub"]))
        forged = jwt.encode({**claims, "tnt": "globex"}, signing_key(app.config["SECRET_KEY"]), "HS256")
        assert user.tenant_name == "acme"
    assert app.test_client().get("/api/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_deactivated_tenant_signs_its_users_out_and_keeps_them_out(app, runner, namesakes):
    browser = sign_in(app, "sam", namesakes["acme"], tenant="acme")
    token = bearer_token(app.test_client(), "sam", namesakes["acme"], tenant="acme")
    other = sign_in(app, "sam", namesakes["globex"], tenant="globex")
    auth = {"Authorization": f"Bearer {token}"}
    assert me(browser)["tenant"] == "acme" and me(app.test_client(), headers=auth)["tenant"] == "acme"
    with app.app_context():  # switched off in the database only: every request checks the tenant itself
        Tenant.by_name("acme").active = False
        db.session.commit()
    assert browser.get("/api/me").status_code == 401
    assert app.test_client().get("/api/me", headers=auth).status_code == 401
    assert post_login(app.test_client(), "sam", namesakes["acme"], tenant="acme").status_code == 200
    assert me(other)["tenant"] == "globex"  # other tenants carry on
    ok(run(runner, "tenants", "activate", "acme"))
    assert me(browser)["tenant"] == "acme"  # only a deactivation through the app ends sessions for good
    ok(run(runner, "tenants", "deactivate", "acme"))
    ok(run(runner, "tenants", "activate", "acme"))
    assert browser.get("/api/me").status_code == 401
    assert app.test_client().get("/api/me", headers=auth).status_code == 401
