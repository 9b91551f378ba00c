"""CLI groups for accounts: ``tenants``, ``users``, ``roles``, ``permissions`` and ``setup``."""
from __future__ import annotations

import json
import secrets

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy import func, select

from app import permissions as registry
from app.extensions import db
from app.models import Permission, Role, Tenant, User, sync_permissions
from app.tenants import TenantError, create_tenant, set_active
from app.validation import email_problem, password_problem, username_problem

tenants_cli = AppGroup("tenants", help="Manage tenants (customers whose users, roles and jobs are kept "
                       "apart).")
users_cli = AppGroup("users", help="Manage user accounts.")
roles_cli = AppGroup("roles", help="Manage roles and what they grant.")
permissions_cli = AppGroup("permissions", help="The permission registry.")


def fail(message: str) -> None:
    """Abort the command with ``message`` and exit status 1."""
    raise click.ClickException(message)


TENANT_OPTION = click.option("--tenant", "tenant_name", default=None,
                             help="Tenant name (default: the host).")


def tenant_or_fail(name: str | None) -> Tenant | None:
    """The tenant called ``name`` (None when no name is given: the host), or abort."""
    if name is None:
        return None
    tenant = Tenant.by_name(name)
    if tenant is None:
        fail(f"no tenant named {name!r}")
    return tenant


def where(tenant: Tenant | None) -> str:
    """`` in tenant acme`` (nothing for the host), for messages."""
    return f" in tenant {tenant.name}" if tenant is not None else ""


def role_or_fail(name: str, tenant: Tenant | None = None) -> Role:
    """The role called ``name`` of ``tenant`` (default: the host), or abort."""
    role = Role.by_name(name, tenant)
    if role is None:
        fail(f"no role named {name!r}{where(tenant)}")
    return role


@tenants_cli.command("create")
@click.argument("name")
@click.option("--display-name", default="", help="Name shown to people (default: NAME).")
def create_tenant_command(name: str, display_name: str) -> None:
    """Create an active tenant."""
    try:
        tenant = create_tenant(name, display_name)
    except TenantError as refused:
        fail(str(refused))
    db.session.commit()
    click.echo(f"created tenant {tenant.name} (id {tenant.id})")


@tenants_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def list_tenants(as_json: bool) -> None:
    """Every tenant: name, display name, active, users."""
    counts = dict(db.session.execute(select(User.tenant_id, func.count()).where(User.tenant_id.is_not(None))
                                     .group_by(User.tenant_id)).all())
    rows = [{"name": t.name, "display_name": t.display_name, "active": t.active, "users": counts.get(t.id, 0)}
            for t in db.session.scalars(select(Tenant).order_by(Tenant.name))]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = "active" if row["active"] else "inactive"
        click.echo(f"{row['name']}\t{row['display_name']}\t{state}\t{row['users']} users")


def switch_tenant(name: str, active: bool) -> None:
    """Activate or deactivate the tenant ``name``."""
    tenant = tenant_or_fail(name)
    set_active(tenant, active)
    db.session.commit()
    click.echo(f"tenant {tenant.name} is {'active' if active else 'inactive: its users are signed out'}")


@tenants_cli.command("deactivate")
@click.argument("name")
def deactivate_tenant(name: str) -> None:
    """Switch a tenant off: its users can't sign in and their sessions and tokens end."""
    switch_tenant(name, False)


@tenants_cli.command("activate")
@click.argument("name")
def activate_tenant(name: str) -> None:
    """Switch a tenant back on."""
    switch_tenant(name, True)


def permission_or_fail(name: str) -> Permission:
    """The permission called ``name`` (synced from the registry), or abort."""
    permission = db.session.scalar(select(Permission).where(Permission.name == name))
    if permission is None:
        known = ", ".join(sorted(registry.REGISTRY))
        fail(f"no permission named {name!r} (known: {known}; run 'permissions sync' first)")
    return permission


@users_cli.command("create")
@click.argument("username")
@click.option("--email", required=True, help="Email address (unique).")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", "roles", multiple=True,
              help="Role to assign (of the same tenant); repeat for several.")
@TENANT_OPTION
def create_user(username: str, email: str, password: str, roles: tuple[str, ...],
                tenant_name: str | None) -> None:
    """Create a user with a password and roles (checked by the same rules as the admin's user form)."""
    username, email = username.strip(), email.strip()
    tenant = tenant_or_fail(tenant_name)
    for field, problem in (("username", username_problem(username)), ("email", email_problem(email)),
                           ("password", password_problem(password))):
        if problem:
            fail(f"{field}: {problem}")
    if User.by_login(username, tenant) or User.by_login(email, tenant):
        fail(f"a user with username {username!r} or email {email!r} already exists{where(tenant)}")
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        fail(f"another user already has the email address {email!r}")
    user = User(username=username, email=email, tenant=tenant)
    user.set_password(password)
    user.roles = [role_or_fail(name, tenant) for name in roles]
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {username}{where(tenant)} (id {user.id})")


def seed_admin() -> str | None:
    """Create the user ``admin`` holding the Admin role if no such user exists.

    Uses ``ADMIN_PASSWORD`` or generates one; returns the password it set, or None
    when the user already existed.
    """
    if User.by_login("admin"):
        return None
    password = current_app.config.get("ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    user = User(username="admin", email=current_app.config["ADMIN_EMAIL"])
    user.set_password(password)
    user.roles = [role_or_fail(registry.ADMIN_ROLE)]
    db.session.add(user)
    db.session.commit()
    return password


@users_cli.command("seed-admin")
def seed_admin_command() -> None:
    """Create the first administrator (``admin``) unless it exists."""
    password = seed_admin()
    if password is None:
        click.echo("user admin already exists")
    elif current_app.config.get("ADMIN_PASSWORD"):
        click.echo("created user admin with the password from ADMIN_PASSWORD")
    else:
        click.echo(f"created user admin with generated password: {password}")


@roles_cli.command("create")
@click.argument("name")
@click.option("--description", default="")
@TENANT_OPTION
def create_role(name: str, description: str, tenant_name: str | None) -> None:
    """Create an empty role (of the host, or of ``--tenant``)."""
    name = name.strip()
    tenant = tenant_or_fail(tenant_name)
    if not name or len(name) > 64:
        fail("a role name has 1 to 64 characters")
    if Role.by_name(name, tenant):
        fail(f"role {name!r} already exists{where(tenant)}")
    db.session.add(Role(name=name, description=description, tenant=tenant))
    db.session.commit()
    click.echo(f"created role {name}{where(tenant)}")


@roles_cli.command("grant")
@click.argument("role_name")
@click.argument("permission_name")
@TENANT_OPTION
def grant(role_name: str, permission_name: str, tenant_name: str | None) -> None:
    """Give a role a permission (idempotent); a tenant's role never takes a host-only permission."""
    tenant = tenant_or_fail(tenant_name)
    role, permission = role_or_fail(role_name, tenant), permission_or_fail(permission_name)
    if tenant is not None and permission.name in registry.host_only_names():
        fail(f"{permission_name} is for host roles only: a tenant's role can't hold it")
    if permission not in role.permissions:
        role.permissions.append(permission)
        db.session.commit()
    click.echo(f"{role_name} holds {permission_name}")


@roles_cli.command("revoke")
@click.argument("role_name")
@click.argument("permission_name")
@TENANT_OPTION
def revoke(role_name: str, permission_name: str, tenant_name: str | None) -> None:
    """Take a permission away from a role (idempotent)."""
    tenant = tenant_or_fail(tenant_name)
    role, permission = role_or_fail(role_name, tenant), permission_or_fail(permission_name)
    if tenant is None and role.name == registry.ADMIN_ROLE:
        fail("the Admin role always holds every permission")
    if permission in role.permissions:
        role.permissions.remove(permission)
        db.session.commit()
    click.echo(f"{role_name} no longer holds {permission_name}")


@permissions_cli.command("sync")
def sync_command() -> None:
    """Upsert the code's permission registry and the Admin role."""
    counts = sync_permissions()
    click.echo("permissions synced: {created} created, {updated} updated, {total} total".format(**counts))


@click.command("setup")
@with_appcontext
def setup_command() -> None:
    """Migrate the database, sync permissions and seed the first admin (idempotent)."""
    upgrade()
    sync_permissions()
    password = seed_admin()
    if password is not None:
        source = "ADMIN_PASSWORD" if current_app.config.get("ADMIN_PASSWORD") else f"generated: {password}"
        click.echo(f"sign in as admin with password ({source})")
    click.echo("database ready")


def init_app(app: Flask) -> None:
    """Register the account CLI groups."""
    for command in (tenants_cli, users_cli, roles_cli, permissions_cli, setup_command):
        app.cli.add_command(command)
