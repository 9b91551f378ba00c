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
from flask_admin.helpers import get_form_data
from sqlalchemy import func, select
from wtforms.validators import ValidationError

from admin.access import is_active_user, is_signed_in, refuse
from admin.forms import (HostRoleForm, HostUserCreateForm, RoleForm, TenantForm, UserCreateForm, UserForm,
                         permission_query)
from admin.grants import (GrantRefused, check_delete_role, check_keeps_an_admin, check_manage_user,
                          check_role_permissions, check_user_roles, display_names, held, may_grant)
from app.auth.signins import end_all_sessions, session_count
from app.extensions import db
from app.inputs import MAX_ID
from app.models import Permission, Role, tenant_clause
from admin.navigation import open_views
from app.permissions import ADMIN_ROLE, ROLES, TENANTS, USERS, host_only_names
from app.tenants import set_active

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


def editor_tenant_id() -> int | None:
    """The signed-in editor's tenant id; None for a host editor (who may act in any tenant)."""
    return getattr(current_user, "tenant_id", None)


def tenant_label(view: Any, context: Any, model: Any, name: str) -> str:
    """The tenant a row belongs to ("host" for none)."""
    return model.tenant.name if model.tenant is not None else "host"


class TenantScopedView(PermissionModelView):
    """Rows of the host or of one tenant (``model.tenant_id``): a tenant's editors see, count and open
    only their tenant's rows (another tenant's row is a 404) and create rows in their tenant; host
    editors see every row, with its tenant, and pick the tenant of a row they create."""

    host_create_form: Any = None

    @property
    def _list_columns(self) -> list:
        """The list's columns: the tenant column (first) only for host editors."""
        columns = self._all_list_columns
        return columns if editor_tenant_id() is None else [c for c in columns if c[0] != "tenant"]

    @_list_columns.setter
    def _list_columns(self, columns: list) -> None:
        self._all_list_columns = columns

    def scoped(self, query: Any) -> Any:
        """``query`` narrowed to the editor's tenant (unchanged for host editors)."""
        tenant_id = editor_tenant_id()
        return query if tenant_id is None else query.filter(self.model.tenant_id == tenant_id)

    def get_query(self) -> Any:
        """The list's rows: the editor's tenant's only (every row for host editors)."""
        return self.scoped(super().get_query())

    def get_count_query(self) -> Any:
        """The list's count, scoped like its rows."""
        return self.scoped(super().get_count_query())

    def get_one(self, id: Any) -> Any:
        """The row ``id``; a row of another tenant than a tenant editor's is a 404, never shown or changed."""
        model = super().get_one(id)
        tenant_id = editor_tenant_id()
        if model is not None and tenant_id is not None and model.tenant_id != tenant_id:
            abort(404)
        return model

    def create_form(self, obj: Any = None):
        """The create form: host editors pick the tenant, a tenant's editors create in their own."""
        tenant_id = editor_tenant_id()
        form_class = self.host_create_form if tenant_id is None else self.get_create_form()
        form = form_class(get_form_data(), obj=obj)
        form.owner_tenant_id = tenant_id
        return form

    def edit_form(self, obj: Any = None):
        """The edit form of a row, which stays in its tenant."""
        form = super().edit_form(obj)
        form.owner_tenant_id = obj.tenant_id if obj is not None else editor_tenant_id()
        return form

    def place(self, form: Any, model: Any, is_created: bool) -> None:
        """Keep a new row in the editor's tenant (host editors: the picked one); rows never move."""
        tenant_id = editor_tenant_id()
        if is_created and tenant_id is not None:
            model.tenant_id, model.tenant = tenant_id, current_user.tenant


def tenant_of(form: Any, model: Any) -> int | None:
    """The tenant id a row being saved belongs to (the picker's choice on a host editor's create form)."""
    picked = getattr(form, "tenant", None)
    if picked is not None and hasattr(picked, "query_factory"):
        return picked.data.id if picked.data is not None else None
    return model.tenant_id


def permissions_for(tenant_id: int | None) -> list[Permission]:
    """The permissions a role of ``tenant_id`` may hold: all for the host, none host-only for a tenant."""
    hidden = host_only_names() if tenant_id is not None else frozenset()
    return [p for p in permission_query() if p.name not in hidden]


def roles_for(tenant_id: int | None, everyone: bool = False) -> list[Role]:
    """The roles a user of ``tenant_id`` may hold (every role, for a host editor's create form)."""
    query = select(Role).order_by(Role.tenant_id.is_not(None), Role.name)
    if not everyone:
        query = query.where(tenant_clause(Role.tenant_id, tenant_id))
    return list(db.session.scalars(query))


def role_label(role: Role) -> str:
    """A role's name, prefixed with its tenant when it has one (``acme: Operators``)."""
    return f"{role.tenant.name}: {role.name}" if role.tenant is not None else role.name


class RoleView(TenantScopedView):
    """Configuration → Roles: name, description and the permissions a role grants.

    Only permissions the editor holds can be ticked or unticked; the Admin role's boxes are
    all ticked and disabled, and saving it always keeps every permission.
    """

    permission = ROLES
    form = RoleForm
    host_create_form = HostRoleForm
    column_list = ("tenant", "name", "description", "permissions")
    column_sortable_list = ("name",)
    column_searchable_list = ("name",)
    column_default_sort = "name"
    column_formatters = {"permissions": permission_names, "tenant": tenant_label}

    def lock_permissions(self, form: Any, obj: Any = None) -> Any:
        """Disable the boxes the editor may not change (all of them for the Admin role); a tenant's role
        doesn't offer host-only permissions."""
        mine = held(current_user)
        form.permissions.is_locked = lambda permission: permission.name not in mine
        if hasattr(form, "tenant"):  # a host editor's create form: a tenant's role holds no host-only one
            host_only = host_only_names()
            form.permissions.owner_of = lambda permission: "host" if permission.name in host_only else ""
        if obj is not None or editor_tenant_id() is not None:
            owner = obj.tenant_id if obj is not None else editor_tenant_id()
            form.permissions.query_factory = lambda: permissions_for(owner)
        if obj is not None and obj.is_admin_role:
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
        if obj is not None and obj.is_admin_role:
            form.name.render_kw = {"readonly": True}
            form.name.description = "The Admin role can't be renamed; it holds every permission."
        return form

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Refuse renaming the Admin role, changing permissions the editor doesn't hold and giving a
        tenant's role a host-only permission."""
        self.place(form, model, is_created)
        host_only = {p.name for p in model.permissions} & host_only_names()
        if tenant_of(form, model) is not None and host_only:
            raise GrantRefused("A tenant's role can't hold host-only permissions: "
                               f"{display_names(host_only)}.")
        if not is_created and form.name.object_data == ADMIN_ROLE and model.tenant_id is None:
            if model.name != ADMIN_ROLE:
                raise ValidationError("The Admin role can't be renamed.")
            model.permissions = all_permissions()
            return
        before = {p.name for p in (form.permissions.object_data or ())}
        check_role_permissions(current_user, before, {p.name for p in model.permissions})

    def delete_refusal(self, model: Any) -> None:
        """Refuse deleting the Admin role or a role granting what the editor lacks."""
        check_delete_role(current_user, model)


class UserView(TenantScopedView):
    """Configuration → Users: accounts, their roles and passwords (never shown).

    An editor may give or take only roles whose permissions they all hold, and may not
    change, delete or sign out a user who holds a permission they lack; the last active
    administrator stays one. A new password, a deactivation or "Sign out everywhere"
    ends every session and token of the user.
    """

    permission = USERS
    host_create_form = HostUserCreateForm
    column_list = ("tenant", "username", "email", "active", "roles", "created_at", "last_login_at")
    column_labels = {"created_at": "Created", "last_login_at": "Last login"}
    column_sortable_list = ("username", "email", "active", "created_at", "last_login_at")
    column_searchable_list = ("username", "email")
    column_filters = ("active",)
    column_default_sort = "username"
    column_formatters = {"roles": role_names, "tenant": tenant_label}
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
        owner, everyone = getattr(form, "owner_tenant_id", None), hasattr(form, "tenant")
        form.roles.query_factory = lambda: roles_for(owner, everyone)
        form.roles.get_label = role_label
        if everyone:  # a host editor's create form: a user may hold only the picked tenant's roles
            form.roles.owner_of = lambda role: str(role.tenant_id) if role.tenant_id is not None else "host"
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
        self.place(form, model, is_created)
        owner = tenant_of(form, model)
        strangers = sorted(role_label(role) for role in model.roles if role.tenant_id != owner)
        if strangers:
            raise ValidationError("A user can only hold roles of their own tenant, not "
                                  + ", ".join(f"“{name}”" for name in strangers) + ".")
        before_roles = list(form.roles.object_data or ()) if not is_created else []
        if not is_created:
            held_before = {p.name for role in before_roles for p in role.permissions}
            check_manage_user(current_user, model, "change", holds=held_before)
            if is_current_user(model) and not model.active:
                raise ValidationError("You can't deactivate your own account.")
        check_user_roles(current_user, before_roles, model.roles)
        was_admin = bool(form.active.object_data) and any(r.is_admin_role for r in before_roles)
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


class TenantView(PermissionModelView):
    """Configuration → Tenants (host editors holding "Tenants"): create tenants, rename how they show,
    switch them off (their users are signed out and kept out) and on again. A tenant is never deleted
    here: switching it off keeps its jobs and history."""

    permission = TENANTS
    form = TenantForm
    can_delete = False
    column_list = ("name", "display_name", "active", "users", "created_at")
    column_sortable_list = ("name", "display_name", "active", "created_at")
    column_searchable_list = ("name", "display_name")
    column_filters = ("active",)
    column_default_sort = "name"
    column_formatters = {"users": lambda view, context, model, name: str(user_count(model.id))}

    def is_accessible(self) -> bool:
        """Host editors holding "Tenants" only."""
        return super().is_accessible() and editor_tenant_id() is None

    def edit_form(self, obj: Any = None):
        """The edit form; the name people sign in with is fixed."""
        form = super().edit_form(obj)
        form.name.render_kw = {"readonly": True}
        return form

    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None:
        """Keep the name; switching a tenant off ends its users' sessions and tokens."""
        if not is_created:
            model.name = form.name.object_data
            if form.active.object_data and not model.active:
                model.active = True
                set_active(model, False)
        if not model.display_name:
            model.display_name = model.name


def user_count(tenant_id: int) -> int:
    """How many users a tenant has."""
    from app.models import User

    return db.session.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant_id)) or 0
