"""CLI groups for accounts: ``users``, ``roles``, ``permissions`` and ``setup``."""
from __future__ import annotations

import secrets

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy import select

from app import permissions as registry
from app.extensions import db
from app.models import Permission, Role, User
from app.validation import email_problem, password_problem, username_problem

users_cli = AppGroup("users", help="Manage user accounts.")
roles_cli = AppGroup("roles", help="Manage roles and what they grant.")
permissions_cli = AppGroup("permissions", help="The permission registry.")


def fail(message: str) -> None:
    """Abort the command with ``message`` and exit status 1."""
    raise click.ClickException(message)


def role_or_fail(name: str) -> Role:
    """The role called ``name``, or abort."""
    role = Role.by_name(name)
    if role is None:
        fail(f"no role named {name!r}")
    return role


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
@click.option("--role", "roles", multiple=True, help="Role to assign; repeat for several.")
def create_user(username: str, email: str, password: str, roles: tuple[str, ...]) -> None:
    """Create a user with a password and roles (checked by the same rules as the admin's user form)."""
    username, email = username.strip(), email.strip()
    for field, problem in (("username", username_problem(username)), ("email", email_problem(email)),
                           ("password", password_problem(password))):
        if problem:
            fail(f"{field}: {problem}")
    if User.by_login(username) or User.by_login(email):
        fail(f"a user with username {username!r} or email {email!r} already exists")
    user = User(username=username, email=email)
    user.set_password(password)
    user.roles = [role_or_fail(name) for name in roles]
    db.session.add(user)
    db.session.commit()
    click.echo(f"created user {username} (id {user.id})")


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
def create_role(name: str, description: str) -> None:
    """Create an empty role."""
    name = name.strip()
    if not name or len(name) > 64:
        fail("a role name has 1 to 64 characters")
    if Role.by_name(name):
        fail(f"role {name!r} already exists")
    db.session.add(Role(name=name, description=description))
    db.session.commit()
    click.echo(f"created role {name}")


@roles_cli.command("grant")
@click.argument("role_name")
@click.argument("permission_name")
def grant(role_name: str, permission_name: str) -> None:
    """Give a role a permission (idempotent)."""
    role, permission = role_or_fail(role_name), permission_or_fail(permission_name)
    if permission not in role.permissions:
        role.permissions.append(permission)
        db.session.commit()
    click.echo(f"{role_name} holds {permission_name}")


@roles_cli.command("revoke")
@click.argument("role_name")
@click.argument("permission_name")
def revoke(role_name: str, permission_name: str) -> None:
    """Take a permission away from a role (idempotent)."""
    role, permission = role_or_fail(role_name), permission_or_fail(permission_name)
    if role.name == registry.ADMIN_ROLE:
        fail("the Admin role always holds every permission")
    if permission in role.permissions:
        role.permissions.remove(permission)
        db.session.commit()
    click.echo(f"{role_name} no longer holds {permission_name}")


@permissions_cli.command("sync")
def sync_command() -> None:
    """Upsert the code's permission registry and the Admin role."""
    counts = registry.sync()
    click.echo("permissions synced: {created} created, {updated} updated, {total} total".format(**counts))


@click.command("setup")
@with_appcontext
def setup_command() -> None:
    """Migrate the database, sync permissions and seed the first admin (idempotent)."""
    upgrade()
    registry.sync()
    password = seed_admin()
    if password is not None:
        source = "ADMIN_PASSWORD" if current_app.config.get("ADMIN_PASSWORD") else f"generated: {password}"
        click.echo(f"sign in as admin with password ({source})")
    click.echo("database ready")


def init_app(app: Flask) -> None:
    """Register the account CLI groups."""
    for command in (users_cli, roles_cli, permissions_cli, setup_command):
        app.cli.add_command(command)
