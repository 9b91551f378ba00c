"""Accounts: users, roles and the permissions roles grant."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Column, ForeignKey, Index, String, Table, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.permissions import ADMIN_ROLE
from app.permissions import REGISTRY as PERMISSIONS


def new_stamp() -> str:
    """A fresh random session stamp (or session key)."""
    return secrets.token_urlsafe(24)


def utcnow() -> datetime:
    """Current time in UTC, naive: every timestamp column stores naive UTC on every database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


user_roles = Table(
    "user_roles",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)

role_permissions = Table(
    "role_permissions",
    db.metadata,
    Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("permission_id", ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
)


class Permission(db.Model):
    """A named capability (``Pages.Hangfire``), synced from the code registry."""

    __tablename__ = "permissions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    group: Mapped[str] = mapped_column(String(64), default="General")

    def __str__(self) -> str:
        return self.display_name


#: what a NULL tenant (the host) counts as in the per-tenant unique indexes: NULLs never clash in a
#: unique index, so the key coalesces them to a value no tenant id takes
HOST_KEY = 0


def tenant_key(column):
    """The per-tenant unique indexes' tenant part: the tenant id, or ``HOST_KEY`` for the host."""
    return func.coalesce(column, HOST_KEY)


class Tenant(db.Model):
    """A customer of the application: its users, roles and jobs are kept apart from every other's.

    Users, roles and jobs with no tenant belong to the host (the operators of the application).
    A deactivated tenant's users can't sign in, and their sessions and tokens stop working.
    """

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __str__(self) -> str:
        return self.display_name or self.name

    @classmethod
    def by_name(cls, name: str) -> "Tenant | None":
        """The tenant called ``name`` (case-insensitive), or None."""
        return db.session.scalar(select(cls).where(func.lower(cls.name) == name.strip().lower()))


def tenant_clause(column, tenant: "Tenant | int | None"):
    """``column`` names ``tenant`` (None: the host)."""
    tenant_id = tenant.id if isinstance(tenant, Tenant) else tenant
    return column.is_(None) if tenant_id is None else column == tenant_id


class Role(db.Model):
    """A named set of permissions assigned to users; a role belongs to the host or to one tenant."""

    __tablename__ = "roles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    tenant: Mapped[Tenant | None] = relationship()
    description: Mapped[str] = mapped_column(String(255), default="")
    permissions: Mapped[list[Permission]] = relationship(
        secondary=role_permissions, order_by=Permission.name
    )
    users: Mapped[list["User"]] = relationship(secondary=user_roles, back_populates="roles")

    __table_args__ = (Index("uq_roles_tenant_name", tenant_key(tenant_id), name, unique=True),)

    def __str__(self) -> str:
        return self.name

    @property
    def is_admin_role(self) -> bool:
        """True for the host's Admin role (a tenant's role called "Admin" is an ordinary role)."""
        return self.name == ADMIN_ROLE and self.tenant_id is None

    @classmethod
    def by_name(cls, name: str, tenant: "Tenant | int | None" = None) -> "Role | None":
        """The role called ``name`` of ``tenant`` (default: the host's), or None."""
        return db.session.scalar(select(cls).where(cls.name == name, tenant_clause(cls.tenant_id, tenant)))


def password_hash_method() -> str:
    """Werkzeug's hash method for new passwords: ``PASSWORD_HASH_METHOD`` (default ``scrypt``, Werkzeug's
    own cost). The test suite sets a cheap scrypt cost: each default hash takes ~120 ms of CPU."""
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt") if has_app_context() else "scrypt"


def hash_password(password: str) -> str:
    """``password`` hashed with the configured method (salted; never reversible)."""
    return generate_password_hash(password, method=password_hash_method())


class User(UserMixin, db.Model):
    """A person who signs in, of the host or of one tenant. Passwords are stored as scrypt hashes.

    Usernames are unique per tenant (ignoring case); email addresses are unique everywhere.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    tenant: Mapped[Tenant | None] = relationship()
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    #: changes whenever every session and token of the user must end (password, deactivation,
    #: "Sign out everywhere"); bearer tokens carry it and die when it changes
    session_stamp: Mapped[str] = mapped_column(String(32), default=new_stamp)
    roles: Mapped[list[Role]] = relationship(secondary=user_roles, back_populates="users")

    #: ``<id>:<session key>`` of the signed-in browser (not a column; see app.auth.signins)
    login_id = None

    __table_args__ = (Index("uq_users_tenant_username", tenant_key(tenant_id), func.lower(username),
                            unique=True),)

    def __str__(self) -> str:
        return self.username

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and remember-me cookies."""
        return self.login_id or str(self.id)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users, and users of inactive tenants
        return self.active and (self.tenant is None or self.tenant.active)

    @property
    def tenant_name(self) -> str | None:
        """The name of the user's tenant; None for a host user."""
        return self.tenant.name if self.tenant is not None else None

    def set_password(self, password: str) -> None:
        """Hash and store ``password``."""
        self.password_hash = hash_password(password)

    def is_admin(self) -> bool:
        """True when the user is active and a member of the (host's) Admin role."""
        return self.active and any(role.name == ADMIN_ROLE and role.tenant_id is None for role in self.roles)

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def permission_names(self) -> frozenset[str]:
        """Names of every permission granted through the user's roles."""
        return frozenset(p.name for role in self.roles for p in role.permissions)

    def has_permission(self, *names: str) -> bool:
        """True when the user is active and holds any of ``names``."""
        return self.is_active and not self.permission_names.isdisjoint(names)

    @classmethod
    def by_login(cls, login: str, tenant: "Tenant | int | None" = None) -> "User | None":
        """The user of ``tenant`` (default: the host) whose username or email (ignoring case) is ``login``."""
        login = login.strip()
        return db.session.scalar(
            select(cls).where(
                (func.lower(cls.username) == login.lower()) | (func.lower(cls.email) == login.lower()),
                tenant_clause(cls.tenant_id, tenant),
            )
        )


class LoginThrottle(db.Model):
    """Failed sign-ins counted per key (``user:<login>`` or ``ip:<address>``) in a window."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class UserSession(db.Model):
    """One signed-in browser: the server's half of a session or remember-me cookie.

    The cookie holds ``<user id>:<key>``; a request is signed in only while a row with
    that key's hash exists for that user and hasn't expired. Signing out deletes the
    row, so a copy of the cookie stops working; ending every session deletes them all.
    """

    __tablename__ = "user_sessions"
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


def sync_permissions() -> dict[str, int]:
    """Upsert the permission registry (:mod:`app.permissions`) and give the Admin role every permission;
    returns counts."""
    existing = {p.name: p for p in db.session.scalars(select(Permission))}
    created = updated = 0
    for definition in PERMISSIONS.values():
        row = existing.get(definition.name)
        if row is None:
            row = Permission(name=definition.name)
            db.session.add(row)
            existing[definition.name] = row
            created += 1
        elif (row.display_name, row.group) != (definition.display_name, definition.group):
            updated += 1
        row.display_name, row.group = definition.display_name, definition.group
    admin = Role.by_name(ADMIN_ROLE)
    if admin is None:
        admin = Role(name=ADMIN_ROLE, description="Holds every permission")
        db.session.add(admin)
    admin.permissions = sorted(existing.values(), key=lambda p: p.name)
    db.session.commit()
    return {"created": created, "updated": updated, "total": len(existing)}
