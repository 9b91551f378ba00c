"""Flask-Admin setup: the admin at ``/admin/``, Configuration → Roles/Users, and the jobs dashboard.

``init_admin(app)`` builds a fresh :class:`flask_admin.Admin` per application (an
``Admin`` holds per-app blueprints, so it can't be a module-level singleton).
"""
from __future__ import annotations

import flask_admin.actions
import flask_admin.model.base
from flask import Flask, request
from flask_admin import Admin
from flask_admin.menu import MenuLink
from flask_admin.theme import Bootstrap4Theme

from admin import authorization, navigation
from admin.dashboard import api_path, dashboard_views
from admin.views import RoleView, SecureIndexView, TenantView, UserView
from app.extensions import db
from app.mail.admin import OutboxView
from app.models import Role, Tenant, User
from app.security import csp_nonce
from app.web import add_api_prefix, safe_next_url

CONFIGURATION = "Configuration"


def init_admin(app: Flask) -> Admin:
    """Mount the admin and the jobs dashboard on ``app`` and return the ``Admin``."""
    authorization.configure(app)
    use_safe_return_urls()
    admin = Admin(
        app,
        name="Jobs",
        theme=Bootstrap4Theme(base_template="admin/jobs_base.html"),
        index_view=SecureIndexView(name="Home", template="admin/jobs_index.html", url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    for view in dashboard_views(app):
        admin.add_view(view)
    admin.add_view(RoleView(Role, db, name="Roles", category=CONFIGURATION, endpoint="role"))
    admin.add_view(UserView(User, db, name="Users", category=CONFIGURATION, endpoint="user"))
    admin.add_view(TenantView(Tenant, db, name="Tenants", category=CONFIGURATION, endpoint="tenant"))
    admin.add_view(OutboxView(name="Outbox", endpoint="outbox", url="/admin/outbox"))
    admin.add_link(MenuLink(name="Reports", endpoint="reports.index"))
    add_api_prefix(app, api_path(app) + "/")
    navigation.init_app(app)
    return admin


def safe_return_url(param_name: str = "url") -> str | None:
    """Flask-Admin's ``?url=`` (where to go after saving) under the app's one redirect rule, or None."""
    target = request.values.get(param_name)
    safe = safe_next_url(target, default="")
    return safe or None


def use_safe_return_urls() -> None:
    """Make Flask-Admin read ``?url=`` through :func:`safe_return_url`.

    Flask-Admin's own check lets ``http:evil.example`` through (a redirect off-site from an
    HTTPS page) and it has no hook for this, so its two modules' reference is replaced.
    """
    flask_admin.model.base.get_redirect_target = safe_return_url
    flask_admin.actions.get_redirect_target = safe_return_url
