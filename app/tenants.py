"""Tenants: creating them, switching them on and off, and which tenant a request belongs to.

A user, a role and a job belong to the host (no tenant) or to exactly one tenant. The CLI
(``flask tenants ...``) and the admin's Configuration → Tenants page both go through here.
"""
from __future__ import annotations

from flask import has_request_context
from sqlalchemy import select

from app.auth.signins import end_all_sessions
from app.extensions import db
from app.models import Tenant, User
from app.validation import tenant_name_problem


class TenantError(ValueError):
    """A tenant change that can't be made; the message is for the person."""


def create_tenant(name: str, display_name: str = "") -> Tenant:
    """Add a tenant called ``name`` (checked, unique ignoring case); the caller commits."""
    name, display_name = name.strip(), (display_name or "").strip()
    problem = tenant_name_problem(name)
    if problem:
        raise TenantError(f"name: {problem}")
    if len(display_name) > 128:
        raise TenantError("display name: at most 128 characters")
    if Tenant.by_name(name) is not None:
        raise TenantError(f"a tenant named {name!r} already exists")
    tenant = Tenant(name=name, display_name=display_name or name, active=True)
    db.session.add(tenant)
    db.session.flush()
    return tenant


def set_active(tenant: Tenant, active: bool) -> None:
    """Switch ``tenant`` on or off; switching off ends every session and token of its users.

    (They are refused on each request anyway while the tenant is off; ending them means a later
    reactivation doesn't bring old sessions back.) The caller commits.
    """
    if tenant.active and not active:
        for user in db.session.scalars(select(User).where(User.tenant_id == tenant.id)):
            end_all_sessions(user)
    tenant.active = active


def user_tenant(user) -> str | None:
    """The tenant name of ``user`` (None for host users, anonymous callers and custom principals)."""
    tenant = getattr(user, "tenant", None)
    return tenant.name if isinstance(tenant, Tenant) else None


def request_tenant() -> str | None:
    """The signed-in user's tenant name inside a request; None outside one and for the host."""
    if not has_request_context():
        return None
    from flask_login import current_user

    if not getattr(current_user, "is_authenticated", False):
        return None
    return user_tenant(current_user)
