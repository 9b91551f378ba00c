"""Forms of the admin: roles (grouped permission checkboxes) and users (roles, new password).

The forms derive from Flask-Admin's plain ``BaseForm``: CSRF is checked app-wide by
Flask-WTF's ``CSRFProtect`` and the admin templates emit ``csrf_token()``.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Any

from flask_admin.contrib.sqla.fields import QuerySelectField, QuerySelectMultipleField
from flask_admin.form import BaseForm
from markupsafe import Markup, escape
from sqlalchemy import func, select
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from app.extensions import db
from app.models import Permission, Role, Tenant, User, tenant_clause
from app.permissions import REGISTRY
from app.validation import (PASSWORD_MIN_LENGTH, email_problem, password_problem, tenant_name_problem,
                            username_problem)


@dataclass
class CheckboxOption:
    """One checkbox: submitted value, visible label, state, and the exclusive choices beside it.

    ``locked`` shows the box disabled (the editor may not change it); a locked, ticked box is
    still submitted (a hidden input), so saving the form keeps it. ``owner`` says which pick of the
    form's Tenant field may have it: "" any, "host" the host only, else one tenant's id
    (``static/admin/admin.js`` hides and unticks the others when the pick changes).
    """

    value: str
    label: str
    checked: bool
    title: str = ""
    locked: bool = False
    submit_locked: bool = True
    alternatives: list["CheckboxOption"] = dataclass_field(default_factory=list)
    owner: str = ""


class CheckboxGroupsWidget:
    """Render a field's ``option_groups()`` as Bootstrap 4 checkboxes, a fieldset per group.

    Every checkbox has its own ``<label for=...>`` holding the option's label, so
    browsers (and Playwright's ``get_by_label``) find it by its visible text. An option
    with alternatives is one exclusive choice: its box and theirs stand side by side, at
    most one may be ticked (``static/admin/admin.js`` unticks the others; the field
    refuses two), and none ticked means none of them.
    """

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        """The HTML of every group of ``field``."""
        invalid = " is-invalid" if "is-invalid" in str(kwargs.get("class", "")).split() else ""
        groups = "".join(self.render_group(field, name, options) for name, options in field.option_groups())
        return Markup(f'<div id="{escape(field.id)}" class="checkbox-groups{invalid}">{groups}</div>')

    def render_group(self, field: Any, name: str, options: list[CheckboxOption]) -> str:
        """A fieldset with an optional legend and its checkboxes."""
        legend = ""
        if name:
            legend = f'<legend class="col-form-label font-weight-bold pt-0">{escape(name)}</legend>'
        items = "".join(self.render_choice(field, option) for option in options)
        return f'<fieldset class="checkbox-group mb-2">{legend}{items}</fieldset>'

    def render_choice(self, field: Any, option: CheckboxOption) -> str:
        """One checkbox, or an exclusive choice: the option and its alternatives on one line."""
        owner = f' data-owner="{escape(option.owner)}"' if option.owner else ""
        if not option.alternatives:
            return f'<div class="form-check"{owner}>{self.render_box(field, option)}</div>'
        group = f"{field.id}-{option.value}-choice"
        boxes = "".join(f'<div class="form-check form-check-inline">{self.render_box(field, box, group)}'
                        '</div>' for box in [option, *option.alternatives])
        return (f'<div class="exclusive-choice mb-1" role="group" data-choice="{escape(group)}"{owner}>'
                f'{boxes}<small class="form-text text-muted mt-0">Tick one, or neither for no access.</small>'
                '</div>')

    def render_box(self, field: Any, option: CheckboxOption, group: str = "") -> str:
        """The input, its hidden stand-in when locked and ticked, and its label."""
        input_id = f"{field.id}-{option.value}"
        checked = " checked" if option.checked else ""
        locked = " disabled" if option.locked else ""
        exclusive = f' data-exclusive="{escape(group)}"' if group else ""
        title = option.title if option.title != option.label else ""
        if option.locked:
            title = (title + " — " if title else "") + "you can't change this"
        title_attr = f' title="{escape(title)}"' if title else ""
        keep = ""
        if option.locked and option.checked and option.submit_locked:
            keep = f'<input type="hidden" name="{escape(field.name)}" value="{escape(option.value)}">'
        return (
            f'<input class="form-check-input" type="checkbox" id="{escape(input_id)}" '
            f'name="{escape(field.name)}" value="{escape(option.value)}"{checked}{locked}{exclusive}>{keep}'
            f'<label class="form-check-label" id="{escape(input_id)}-label" for="{escape(input_id)}"'
            f'{title_attr}>{escape(option.label)}</label>'
        )


class CheckboxListField(QuerySelectMultipleField):
    """A many-to-many relation as a list of checkboxes (one group, no legend).

    ``is_locked(obj)`` (set by the view) tells which boxes the editor may not change;
    ``all_locked`` shows every box disabled and submits none (the Admin role's permissions).
    """

    widget = CheckboxGroupsWidget()
    all_locked = False

    def is_locked(self, obj: Any) -> bool:
        """True when the editor may not tick or untick ``obj`` (default: every box is free)."""
        return False

    def owner_of(self, obj: Any) -> str:
        """Which pick of the form's Tenant field may have ``obj`` (see ``CheckboxOption.owner``; default
        any)."""
        return ""

    def option(self, pk: str, obj: Any, label: str | None = None) -> CheckboxOption:
        """The checkbox of ``obj`` (label from ``get_label`` unless given)."""
        full_label = str(self.get_label(obj))
        return CheckboxOption(value=pk, label=label or full_label, checked=obj in (self.data or ()),
                              title=full_label, locked=self.all_locked or self.is_locked(obj),
                              submit_locked=not self.all_locked, owner=self.owner_of(obj))

    def option_groups(self) -> list[tuple[str, list[CheckboxOption]]]:
        """``[(group name, options)]`` to render."""
        return [("", [self.option(pk, obj) for pk, obj in self._get_object_list()])]


def relative_label(display_name: str, parent_display_name: str) -> str:
    """An alternative's label beside its parent: "Hangfire Dashboard (view only)" → "View only"."""
    if not display_name.startswith(parent_display_name):
        return display_name
    rest = display_name[len(parent_display_name):].strip().strip("()-:").strip()
    return rest[:1].upper() + rest[1:] if rest else display_name


class PermissionsField(CheckboxListField):
    """Permissions grouped by their group; a permission named ``<parent>.<x>`` is an exclusive
    alternative to its parent ("Hangfire Dashboard" or "View only"), never a box under it.

    A parent's label is its display name ("Hangfire Dashboard"); an alternative shows the part
    of its display name after the parent's ("View only") and the full name as its tooltip, so
    every label stays unique on the page.
    """

    def option_groups(self) -> list[tuple[str, list[CheckboxOption]]]:
        """Options grouped by permission group, alternatives beside their parent."""
        groups: dict[str, list[CheckboxOption]] = {}
        seen: dict[str, tuple[Permission, CheckboxOption]] = {}
        for pk, permission in self._get_object_list():
            parent = nearest_parent(permission.name, seen)
            if parent is None:
                option = self.option(pk, permission)
                groups.setdefault(permission.group, []).append(option)
                seen[permission.name] = (permission, option)
            else:
                parent_permission, parent_option = parent
                label = relative_label(permission.display_name, parent_permission.display_name)
                parent_option.alternatives.append(self.option(pk, permission, label=label))
        return list(groups.items())

    def pre_validate(self, form: Any) -> None:
        """Refuse ticking a permission together with one of its alternatives."""
        super().pre_validate(form)
        if self.all_locked:
            return
        names = {p.name for p in self.data or ()}
        for name in sorted(names):
            clash = {other for other in names if other != name and other.startswith(name + ".")}
            if clash:
                labels = sorted(p.display_name for p in self.data if p.name in clash | {name})
                raise ValidationError("Choose one of " + " or ".join(f"“{label}”" for label in labels)
                                      + ", not both.")


def nearest_parent(name: str, seen: dict[str, Any]) -> Any | None:
    """The entry of ``seen`` for the longest dotted prefix of ``name``, or None."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in seen:
            return seen[prefix]
    return None


def group_rank() -> dict[str, int]:
    """Position of each permission group in the code registry (declaration order)."""
    rank: dict[str, int] = {}
    for definition in REGISTRY.values():
        rank.setdefault(definition.group, len(rank))
    return rank


def permission_query() -> list[Permission]:
    """Every permission: groups in registry order, then by name (a parent before its children)."""
    rank = group_rank()
    permissions = db.session.scalars(select(Permission)).all()
    return sorted(permissions, key=lambda p: (rank.get(p.group, len(rank)), p.group, p.name))


def role_query():
    """Every role, by name."""
    return db.session.scalars(select(Role).order_by(Role.name)).all()


def strip(value: Any) -> Any:
    """Strip surrounding whitespace from submitted text."""
    return value.strip() if isinstance(value, str) else value


def text_or_empty(value: Any) -> str:
    """Submitted text, stripped; empty string when absent (NOT NULL columns)."""
    return strip(value) or ""


class Checked:
    """A WTForms validator from one of ``app.validation``'s ``*_problem`` rules (shared with the CLI)."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem

    def __call__(self, form: Any, field: Any) -> None:
        """Raise ValidationError with the rule's message when the value breaks it."""
        message = self.problem(field.data)
        if message:
            raise ValidationError(message)


def form_tenant_id(form: Any) -> int | None:
    """The tenant the form's row belongs to: the picked one (host editors creating), else the one the
    view set (``owner_tenant_id``: the edited row's, or the tenant editor's own)."""
    picker = getattr(form, "tenant", None)
    if picker is not None and hasattr(picker, "query_factory"):
        return picker.data.id if picker.data is not None else None
    return getattr(form, "owner_tenant_id", None)


class UniqueIgnoringCase:
    """Refuse a value another row already holds in ``column`` (case-insensitively).

    The value the edited object already has is always accepted. With ``per_tenant`` (a model's
    ``tenant_id`` column) only rows of the form's tenant count.
    """

    def __init__(self, column: Any, message: str, per_tenant: Any = None) -> None:
        self.column = column
        self.message = message
        self.per_tenant = per_tenant

    def __call__(self, form: Any, field: Any) -> None:
        """Raise ValidationError when the value is taken."""
        value = (field.data or "").lower()
        if not value or value == (field.object_data or "").lower():
            return
        query = select(func.count()).where(func.lower(self.column) == value)
        if self.per_tenant is not None:
            query = query.where(tenant_clause(self.per_tenant, form_tenant_id(form)))
        if db.session.scalar(query):
            raise ValidationError(self.message)


class RoleForm(BaseForm):
    """Name, description and the permissions a role grants."""

    name = StringField(
        "Name",
        validators=[InputRequired(), Length(max=64),
                    UniqueIgnoringCase(Role.name, "A role with this name already exists.", Role.tenant_id)],
        filters=[strip],
    )
    description = StringField("Description", validators=[Optional(), Length(max=255)],
                              filters=[text_or_empty], default="")
    permissions = PermissionsField("Permissions", query_factory=permission_query, get_label="display_name")


class UserForm(BaseForm):
    """A user as the edit form shows it; a blank new password keeps the current one."""

    username = StringField(
        "Username",
        validators=[InputRequired(), Checked(username_problem),
                    UniqueIgnoringCase(User.username, "This username is already taken.", User.tenant_id)],
        filters=[strip],
    )
    email = StringField(
        "Email",
        validators=[InputRequired(), Checked(email_problem),
                    UniqueIgnoringCase(User.email, "Another user already has this email address.")],
        filters=[strip],
    )
    active = BooleanField("Active", default=True,
                          description="Inactive users can't sign in or use API tokens.")
    roles = CheckboxListField("Roles", query_factory=role_query, get_label="name")
    new_password = PasswordField(
        "New password",
        validators=[Optional(), Checked(password_problem)],
        description="Leave blank to keep the current password.",
    )

    def populate_obj(self, obj: Any) -> None:
        """Copy every field but the password onto ``obj`` (the view hashes the password)."""
        for name, form_field in self._fields.items():
            if name != "new_password":
                form_field.populate_obj(obj, name)


class UserCreateForm(UserForm):
    """The create form: the password is required."""

    new_password = PasswordField(
        "Password",
        validators=[InputRequired(), Checked(password_problem)],
        description=f"At least {PASSWORD_MIN_LENGTH} characters.",
    )


def tenant_query():
    """Every tenant, by name (the picker host editors create users and roles with)."""
    return db.session.scalars(select(Tenant).order_by(Tenant.name)).all()


def tenant_picker() -> QuerySelectField:
    """Which tenant a new row belongs to; blank is the host. It comes first on the form: the roles and
    permissions offered below it depend on it."""
    picker = QuerySelectField("Tenant", query_factory=tenant_query, get_label="name", allow_blank=True,
                              blank_text="(host)", render_kw={"data-tenant-picker": ""},
                              description="Blank: the host. This can't be changed later.")
    picker.creation_counter = -1  # WTForms orders fields by creation: this one before the inherited ones
    return picker


class HostRoleForm(RoleForm):
    """The role create form of host editors: they pick the tenant it belongs to."""

    tenant = tenant_picker()


class HostUserCreateForm(UserCreateForm):
    """The user create form of host editors: they pick the tenant the user belongs to."""

    tenant = tenant_picker()


class TenantForm(BaseForm):
    """A tenant: its name (fixed once created), the name people see, and whether it is active."""

    name = StringField(
        "Name",
        validators=[InputRequired(), Checked(tenant_name_problem),
                    UniqueIgnoringCase(Tenant.name, "A tenant with this name already exists.")],
        filters=[strip], description="Signs in with it; can't be changed later.")
    display_name = StringField("Display name", validators=[Optional(), Length(max=128)],
                               filters=[text_or_empty], default="")
    active = BooleanField(
        "Active", default=True,
        description="Users of an inactive tenant can't sign in; their sessions and tokens end.")
