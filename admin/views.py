"""Admin views: the signed-in home page and the permission-guarded Roles and Users views."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import redirect, url_for
from flask_admin import AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.model import typefmt
from flask_login import current_user
from wtforms.validators import ValidationError

from admin.access import is_active_user, is_signed_in, refuse
from admin.forms import RoleForm, UserCreateForm, UserForm
from admin.navigation import open_views
from app.permissions import ADMIN_ROLE, ROLES, USERS


def format_datetime(view: Any, value: datetime, name: str) -> str:
    """Timestamps are naive UTC: show them to the minute, labelled UTC."""
    return value.strftime("%Y-%m-%d %H:%M UTC")


DATETIME_FORMATTERS = {**typefmt.BASE_FORMATTERS, datetime: format_datetime}


class SecureIndexView(AdminIndexView):
    """The admin home page: any active, signed-in user; anonymous users go to the login page."""

    def is_accessible(self) -> bool:
        """True for an active, signed-in user."""
        return is_active_user(current_user)

    def inaccessible_callback(self, name: str, **kwargs: Any):
        """Login redirect (or 401) when anonymous, 403 for a deactivated account."""
        return refuse(is_signed_in(current_user))

    @expose("/")
    def index(self):
        """The admin's home: a tile per page the user may open; users with none go to Reports."""
        views = open_views(self.admin)
        if not views:
            return redirect(url_for("reports.index"))
        return self.render(self._template, views=views)


class PermissionModelView(ModelView):
    """A model view open only to active users holding ``permission``.

    Anonymous browsers are redirected to the login page (401 JSON for API callers);
    signed-in users without the permission get a 403. The menu hides the view from
    users who can't open it.
    """

    permission: str = ""
    column_type_formatters = DATETIME_FORMATTERS
    create_template = "admin/jobs_create.html"
    edit_template = "admin/jobs_edit.html"
    page_size = 50

    def is_accessible(self) -> bool:
        """True when the current user is active and holds ``self.permission``."""
        if not self.permission or not is_active_user(current_user):
            return False
        return current_user.has_permission(self.permission)

    def inaccessible_callback(self, name: str, **kwargs: Any):
        """Login redirect or 401 when anonymous, 403 otherwise."""
        return refuse(is_signed_in(current_user))


def permission_names(view: Any, context: Any, model: Any, name: str) -> str:
    """A role's permissions as their display names."""
    return ", ".join(p.display_name for p in model.permissions)


def role_names(view: Any, context: Any, model: Any, name: str) -> str:
    """A user's roles as their names."""
    return ", ".join(sorted(role.name for role in model.roles))


class RoleView(PermissionModelView):
    """Configuration → Roles: name, description and the permissions a role grants."""

    permission = ROLES
    form = RoleForm
    column_list = ("name", "description", "permissions")
    column_sortable_list = ("name",)
    column_searchable_list = ("name",)
    column_default_sort = "name"
    column_formatters = {"permissions": permission_names}

    def edit_form(self, obj: Any = None):
        """The edit form; the Admin role's name is shown read-only."""
        form = super().edit_form(obj)
        if obj is not None and obj.name == ADMIN_ROLE:
            form.name.render_kw = {"readonly": True}
            form.name.description = "The Admin role can't be renamed; it holds every permission."
        return form

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Refuse renaming the Admin role."""
        if not is_created and form.name.object_data == ADMIN_ROLE and model.name != ADMIN_ROLE:
            raise ValidationError("The Admin role can't be renamed.")

    def on_model_delete(self, model: Any) -> None:
        """Refuse deleting the Admin role."""
        if model.name == ADMIN_ROLE:
            raise ValidationError("The Admin role can't be deleted.")


class UserView(PermissionModelView):
    """Configuration → Users: accounts, their roles and passwords (never shown)."""

    permission = USERS
    column_list = ("username", "email", "active", "roles", "created_at", "last_login_at")
    column_labels = {"created_at": "Created", "last_login_at": "Last login"}
    column_sortable_list = ("username", "email", "active", "created_at", "last_login_at")
    column_searchable_list = ("username", "email")
    column_filters = ("active",)
    column_default_sort = "username"
    column_formatters = {"roles": role_names}

    def get_create_form(self):
        """The create form (password required)."""
        return UserCreateForm

    def get_edit_form(self):
        """The edit form (blank password keeps the current one)."""
        return UserForm

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Refuse deactivating yourself; hash a new password when one was typed."""
        if not is_created and is_current_user(model) and not model.active:
            raise ValidationError("You can't deactivate your own account.")
        if form.new_password.data:
            model.set_password(form.new_password.data)

    def on_model_delete(self, model: Any) -> None:
        """Refuse deleting yourself."""
        if is_current_user(model):
            raise ValidationError("You can't delete your own account.")


def is_current_user(user: Any) -> bool:
    """True when ``user`` is the signed-in user.

    Compares ids only: Flask-Login's ``is_authenticated`` follows ``is_active``, which
    the form being saved may just have switched off.
    """
    return current_user.get_id() is not None and current_user.get_id() == str(user.id)
