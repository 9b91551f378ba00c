"""The admin with tenants: a tenant's admins manage only their tenant's users and roles, a tenant's role
never holds a host-only permission, and host admins manage tenants (Configuration → Tenants) and act in
any tenant.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Role, Tenant, User
from app.permissions import HANGFIRE, OUTBOX, ROLES, TENANTS, USERS
from tests.helpers.accounts import permission_id
from tests.helpers.ledger import enqueue
from tests.helpers.web import PASSWORD, csrf_for, sign_in, submit
from tests.test_admin import delete_row, user_form
from tests.test_cli_accounts import ok, run


def tenant_user(runner, tenant: str, username: str, *roles: str) -> None:
    """Create ``username`` in ``tenant`` holding ``roles`` (of that tenant) through the CLI."""
    args = ["users", "create", username, "--email", f"{username}.{tenant}@example.com",
            "--password", PASSWORD, "--tenant", tenant]
    for role in roles:
        args += ["--role", role]
    ok(run(runner, *args))


def tenant_role(runner, tenant: str, name: str, *permissions: str) -> None:
    """Create role ``name`` in ``tenant`` granting ``permissions``."""
    ok(run(runner, "roles", "create", name, "--tenant", tenant))
    for permission in permissions:
        ok(run(runner, "roles", "grant", name, permission, "--tenant", tenant))


def row_id(app, model, tenant: str, **where) -> int:
    """The id of the ``model`` row of ``tenant`` matching ``where``."""
    with app.app_context():
        owner = Tenant.by_name(tenant)
        query = select(model.id).where(model.tenant_id == owner.id,
                                       *(getattr(model, k) == v for k, v in where.items()))
        return db.session.scalar(query)


@pytest.fixture
def tenant_admins(app, runner):
    """Tenants acme and globex, each with a role "Managers" (Roles, Users, Hangfire Dashboard), an admin
    ``boss`` holding it and a plain user ``worker``; returns acme's boss signed in."""
    for tenant in ("acme", "globex"):
        ok(run(runner, "tenants", "create", tenant))
        tenant_role(runner, tenant, "Managers", ROLES, USERS, HANGFIRE)
        tenant_role(runner, tenant, "Staff")
        tenant_user(runner, tenant, "boss", "Managers")
        tenant_user(runner, tenant, "worker", "Staff")
    return sign_in(app, "boss", tenant="acme")


def test_a_tenant_admin_lists_only_their_tenants_users_and_roles(app, tenant_admins, make_user):
    make_user("hostperson")
    users = tenant_admins.get("/admin/user/").get_data(True)
    assert "worker.acme@example.com" in users and "worker.globex@example.com" not in users
    assert "hostperson" not in users and "Tenant</a>" not in users
    roles = tenant_admins.get("/admin/role/").get_data(True)
    assert "Managers" in roles and "Admin" not in roles
    assert tenant_admins.get("/admin/tenant/").status_code == 403


def test_another_tenants_rows_are_404_to_a_tenant_admin(app, tenant_admins):
    theirs_user = row_id(app, User, "globex", username="worker")
    theirs_role = row_id(app, Role, "globex", name="Staff")
    for url in (f"/admin/user/edit/?id={theirs_user}", f"/admin/role/edit/?id={theirs_role}"):
        assert tenant_admins.get(url).status_code == 404, url
    assert delete_row(tenant_admins, "user", theirs_user).status_code == 404
    assert delete_row(tenant_admins, "role", theirs_role).status_code == 404
    signed_out = tenant_admins.post("/admin/user/sign-out-everywhere/",
                                    data={"id": str(theirs_user), "csrf_token": csrf_for(tenant_admins)})
    assert signed_out.status_code == 404
    mine = row_id(app, User, "acme", username="worker")
    page = tenant_admins.get(f"/admin/user/edit/?id={mine}")
    assert page.status_code == 200
    assert "Staff" in page.get_data(True)
    assert f'value="{theirs_role}"' not in page.get_data(True)  # another tenant's role isn't offered...
    form = user_form("worker", "worker.acme@example.com", roles=[theirs_role])
    submit(tenant_admins, f"/admin/user/edit/?id={mine}", form)
    with app.app_context():  # ...and can't be given by posting its id
        assert theirs_role not in [r.id for r in db.session.get(User, mine).roles]


def test_a_tenant_admin_creates_users_and_roles_in_their_tenant(app, tenant_admins):
    staff = row_id(app, Role, "acme", name="Staff")
    response = submit(tenant_admins, "/admin/user/new/",
                      user_form("worker2", "worker2@example.com", password=PASSWORD, roles=[staff]))
    assert response.status_code == 302, response.get_data(True)
    duplicate = submit(tenant_admins, "/admin/user/new/",
                       user_form("WORKER", "worker3@example.com", password=PASSWORD))
    assert "already taken" in duplicate.get_data(True)
    form = tenant_admins.get("/admin/role/new/").get_data(True)
    assert "Hangfire Dashboard" in form and "Outbox" not in form and ">Tenants<" not in form
    created = submit(tenant_admins, "/admin/role/new/",
                     {"name": "Staff2", "permissions": [permission_id(app, HANGFIRE)]})
    assert created.status_code == 302
    submit(tenant_admins, "/admin/role/new/",
           {"name": "Sneaky", "permissions": [permission_id(app, TENANTS)]})
    with app.app_context():
        acme = Tenant.by_name("acme")
        assert db.session.scalar(select(User).where(User.username == "worker2")).tenant_id == acme.id
        assert [p.name for p in Role.by_name("Staff2", acme).permissions] == [HANGFIRE]
        sneaky = Role.by_name("Sneaky", acme)  # a box that isn't offered can't be ticked by posting its id
        assert sneaky is None or TENANTS not in {p.name for p in sneaky.permissions}
    assert sign_in(app, "worker2", tenant="acme").get("/api/me").get_json()["tenant"] == "acme"


def test_a_host_admin_manages_tenants_and_acts_in_any(app, admin_client):
    assert "Tenants" in admin_client.get("/admin/").get_data(True)
    created = submit(admin_client, "/admin/tenant/new/", {"name": "initech", "display_name": "Initech",
                                                          "active": "y"})
    assert created.status_code == 302, created.get_data(True)
    with app.app_context():
        initech = Tenant.by_name("initech")
        assert initech.display_name == "Initech" and initech.active
    role = submit(admin_client, "/admin/role/new/", {"name": "Ops", "tenant": str(initech.id),
                                                     "permissions": [permission_id(app, HANGFIRE)]})
    assert role.status_code == 302, role.get_data(True)
    refused = submit(admin_client, "/admin/role/new/", {"name": "Ops2", "tenant": str(initech.id),
                                                        "permissions": [permission_id(app, OUTBOX)]})
    assert "host-only" in refused.get_data(True)
    with app.app_context():
        ops = Role.by_name("Ops", initech.id)
        assert ops is not None and Role.by_name("Ops") is None
        admin_role = Role.by_name("Admin")
    mixed = submit(admin_client, "/admin/user/new/", {**user_form("ivy", "ivy@example.com", password=PASSWORD,
                                                                  roles=[admin_role.id]),
                                                      "tenant": str(initech.id)})
    assert "own tenant" in mixed.get_data(True)
    user = submit(admin_client, "/admin/user/new/", {**user_form("ivy", "ivy@example.com", password=PASSWORD,
                                                                 roles=[ops.id]), "tenant": str(initech.id)})
    assert user.status_code == 302, user.get_data(True)
    users = admin_client.get("/admin/user/").get_data(True)
    assert "initech" in users  # the tenant column
    ivy = sign_in(app, "ivy", tenant="initech")
    assert ivy.get("/api/me").get_json()["tenant"] == "initech"
    # the seed's story, for a tenant: the user of a tenant role holding "Hangfire Dashboard" sees only
    # the tenant's jobs once JOBS_DASHBOARD_TENANTS lets tenants in
    mine, host_job = enqueue(app, "demo.noop", args=(), tenant="initech"), enqueue(app, "demo.noop", args=())
    assert ivy.get("/hangfire/").status_code == 403
    app.config["JOBS_DASHBOARD_TENANTS"] = True
    listed = ivy.get("/hangfire/api/jobs").get_json()["jobs"]
    assert [job["id"] for job in listed] == [mine]
    assert host_job[-8:] not in ivy.get("/hangfire/jobs/all").get_data(True)
    with app.app_context():
        tenant_id = Tenant.by_name("initech").id
    off = submit(admin_client, f"/admin/tenant/edit/?id={tenant_id}",
                 {"name": "renamed", "display_name": "I", "active": ""})
    assert off.status_code == 302, off.get_data(True)
    with app.app_context():
        tenant = db.session.get(Tenant, tenant_id)
        assert tenant.name == "initech" and not tenant.active
    assert ivy.get("/api/me").status_code == 401
