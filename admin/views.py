"""Admin views: the signed-in home page and the permission-guarded Roles and Users views."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.model import typefmt
from flask_login import current_user
from sqlalchemy import select
from wtforms.validators import ValidationError

from admin.access import is_active_user, is_signed_in, refuse
from admin.forms import RoleForm, UserCreateForm, UserForm
from admin.grants import (GrantRefused, check_delete_role, check_keeps_an_admin, check_manage_user,
                          check_role_permissions, check_user_roles, held, may_grant)
from app.auth.signins import end_all_sessions, session_count
from app.extensions import db
from app.inputs import MAX_ID
from app.models import Permission
from admin.navigation import open_views
from app.permissions import ADMIN_ROLE, ROLES, USERS

MAX_PAGE = 100_000  # page numbers past this are empty pages (offsets stay within any database's range)


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
    users who can't open it. Ids and page numbers a database can't hold find nothing
    instead of failing; the delete row button and bulk actions run without inline script.
    """

    permission: str = ""
    column_type_formatters = DATETIME_FORMATTERS
    create_template = "admin/jobs_create.html"
    edit_template = "admin/jobs_edit.html"
    list_template = "admin/jobs_list.html"
    page_size = 50

    @property
    def extra_js(self) -> list[str]:  # type: ignore[override]
        """The admin's own script: confirmations, bulk actions and exclusive choices without inline JS."""
        return [url_for("static", filename="admin/admin.js")]

    def is_accessible(self) -> bool:
        """True when the current user is active and holds ``self.permission``."""
        if not self.permission or not is_active_user(current_user):
            return False
        return current_user.has_permission(self.permission)

    def inaccessible_callback(self, name: str, **kwargs: Any):
        """Login redirect or 401 when anonymous, 403 otherwise."""
        return refuse(is_signed_in(current_user))

    def get_one(self, id: Any) -> Any:
        """The row with primary key ``id``; None for anything that isn't an id a column can hold."""
        number = row_id(id)
        return None if number is None else super().get_one(str(number))

    def get_list(self, page: int | None, *args: Any, **kwargs: Any) -> Any:
        """One page of rows; a page number out of range is an empty page, never a database error."""
        if page is not None and not 0 <= page <= MAX_PAGE:
            count, _ = super().get_list(0, *args, **kwargs)
            return count, []
        return super().get_list(page, *args, **kwargs)

    def delete_refusal(self, model: Any) -> None:
        """Raise GrantRefused when the current user may not delete ``model`` (subclasses say when)."""

    def on_model_delete(self, model: Any) -> None:
        """Refuse a deletion the rules forbid (inline delete button and bulk delete alike)."""
        self.delete_refusal(model)

    @action("delete", "Delete", "Are you sure you want to delete selected records?")
    def action_delete(self, ids: tuple[str, ...]) -> None:
        """Bulk delete: every selected row or none of them (one refused row refuses the lot)."""
        numbers = [number for number in map(row_id, ids) if number is not None]
        try:
            self.check_bulk_delete(self.get_one(pk) for pk in numbers)
        except GrantRefused as refused:
            flash(f"Nothing was deleted. {refused}", "error")
            return
        super().action_delete(tuple(numbers))  # as integers: PostgreSQL won't compare ids with text

    def check_bulk_delete(self, models: Iterable[Any]) -> None:
        """Raise GrantRefused unless every one of ``models`` may be deleted."""
        for model in models:
            if model is not None:
                self.delete_refusal(model)


def row_id(value: Any) -> int | None:
    """``value`` as a row id an INTEGER column can hold, else None."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


def permission_names(view: Any, context: Any, model: Any, name: str) -> str:
    """A role's permissions as their display names."""
    return ", ".join(p.display_name for p in model.permissions)


def role_names(view: Any, context: Any, model: Any, name: str) -> str:
    """A user's roles as their names."""
    return ", ".join(sorted(role.name for role in model.roles))


def all_permissions() -> list[Permission]:
    """Every permission in the database (what the Admin role holds)."""
    return list(db.session.scalars(select(Permission).order_by(Permission.name)))


class RoleView(PermissionModelView):
    """Configuration → Roles: name, description and the permissions a role grants.

    Only permissions the editor holds can be ticked or unticked; the Admin role's boxes are
    all ticked and disabled, and saving it always keeps every permission.
    """

    permission = ROLES
    form = RoleForm
    column_list = ("name", "description", "permissions")
    column_sortable_list = ("name",)
    column_searchable_list = ("name",)
    column_default_sort = "name"
    column_formatters = {"permissions": permission_names}

    def lock_permissions(self, form: Any, obj: Any = None) -> Any:
        """Disable the boxes the editor may not change (all of them for the Admin role)."""
        mine = held(current_user)
        form.permissions.is_locked = lambda permission: permission.name not in mine
        if obj is not None and obj.name == ADMIN_ROLE:
            form.permissions.all_locked = True
            form.permissions.data = all_permissions()
            form.permissions.description = "The Admin role always holds every permission."
        return form

    def create_form(self, obj: Any = None):
        """The create form, boxes the editor doesn't hold disabled."""
        return self.lock_permissions(super().create_form(obj))

    def edit_form(self, obj: Any = None):
        """The edit form; the Admin role's name is read-only and its permissions fixed."""
        form = self.lock_permissions(super().edit_form(obj), obj)
        if obj is not None and obj.name == ADMIN_ROLE:
            form.name.render_kw = {"readonly": True}
            form.name.description = "The Admin role can't be renamed; it holds every permission."
        return form

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Refuse renaming the Admin role and changing permissions the editor doesn't hold."""
        if not is_created and form.name.object_data == ADMIN_ROLE:
            if model.name != ADMIN_ROLE:
                raise ValidationError("The Admin role can't be renamed.")
            model.permissions = all_permissions()
            return
        before = {p.name for p in (form.permissions.object_data or ())}
        check_role_permissions(current_user, before, {p.name for p in model.permissions})

    def delete_refusal(self, model: Any) -> None:
        """Refuse deleting the Admin role or a role granting what the editor lacks."""
        check_delete_role(current_user, model)


class UserView(PermissionModelView):
    """Configuration → Users: accounts, their roles and passwords (never shown).

    An editor may give or take only roles whose permissions they all hold, and may not
    change, delete or sign out a user who holds a permission they lack; the last active
    administrator stays one. A new password, a deactivation or "Sign out everywhere"
    ends every session and token of the user.
    """

    permission = USERS
    column_list = ("username", "email", "active", "roles", "created_at", "last_login_at")
    column_labels = {"created_at": "Created", "last_login_at": "Last login"}
    column_sortable_list = ("username", "email", "active", "created_at", "last_login_at")
    column_searchable_list = ("username", "email")
    column_filters = ("active",)
    column_default_sort = "username"
    column_formatters = {"roles": role_names}
    edit_template = "admin/user_edit.html"

    def get_create_form(self):
        """The create form (password required)."""
        return UserCreateForm

    def get_edit_form(self):
        """The edit form (blank password keeps the current one)."""
        return UserForm

    def lock_roles(self, form: Any) -> Any:
        """Disable the roles the editor may not give or take (what the editor holds is fixed now,
        before the form's data touches the account, which may be their own)."""
        held(current_user)
        form.roles.is_locked = lambda role: not may_grant(current_user, {p.name for p in role.permissions})
        return form

    def create_form(self, obj: Any = None):
        """The create form, roles the editor can't give disabled."""
        return self.lock_roles(super().create_form(obj))

    def edit_form(self, obj: Any = None):
        """The edit form, roles the editor can't give or take disabled."""
        return self.lock_roles(super().edit_form(obj))

    def render(self, template: str, **kwargs: Any) -> str:
        """Pages of this view, with the live session count of the user being edited."""
        model = kwargs.get("model")
        if model is not None:
            kwargs["session_count"] = session_count(model)
        return super().render(template, **kwargs)

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Apply the grant rules, then hash a new password and end sessions that must end."""
        before_roles = list(form.roles.object_data or ()) if not is_created else []
        if not is_created:
            held_before = {p.name for role in before_roles for p in role.permissions}
            check_manage_user(current_user, model, "change", holds=held_before)
            if is_current_user(model) and not model.active:
                raise ValidationError("You can't deactivate your own account.")
        check_user_roles(current_user, before_roles, model.roles)
        was_admin = bool(form.active.object_data) and any(r.name == ADMIN_ROLE for r in before_roles)
        if was_admin and not model.is_admin():
            check_keeps_an_admin([model])
        if form.new_password.data:
            model.set_password(form.new_password.data)
        if not is_created and (form.new_password.data or (form.active.object_data and not model.active)):
            end_all_sessions(model)

    def delete_refusal(self, model: Any) -> None:
        """Refuse deleting yourself, a user holding more than you, or the last administrator."""
        if is_current_user(model):
            raise GrantRefused("You can't delete your own account.")
        check_manage_user(current_user, model, "delete")
        if model.is_admin():
            check_keeps_an_admin([model])

    def check_bulk_delete(self, models: Iterable[Any]) -> None:
        """Every selected user may be deleted, and an active administrator remains after all of them."""
        users = [model for model in models if model is not None]
        super().check_bulk_delete(users)
        check_keeps_an_admin([user for user in users if user.is_admin()])

    @expose("/sign-out-everywhere/", methods=["POST"])
    def sign_out_everywhere(self):
        """End every session, remember-me cookie and bearer token of the user ``id`` (POST, CSRF)."""
        user = self.get_one(request.form.get("id"))
        if user is None:
            abort(404)
        edit_url = self.get_url(".edit_view", id=user.id)
        try:
            check_manage_user(current_user, user, "sign out")
        except GrantRefused as refused:
            flash(str(refused), "error")
            return redirect(edit_url)
        end_all_sessions(user)
        db.session.commit()
        if is_current_user(user):
            return redirect(url_for("auth.login"))
        flash(f"{user.username} was signed out everywhere: every session and API token has ended.", "success")
        return redirect(edit_url)


def is_current_user(user: Any) -> bool:
    """True when ``user`` is the signed-in user.

    Compares ids only: Flask-Login's ``is_authenticated`` follows ``is_active``, which
    the form being saved may just have switched off.
    """
    return getattr(current_user, "id", None) == user.id
