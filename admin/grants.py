"""Who may grant what: nobody grants, takes away or manages power they don't hold themselves.

The rules the role and user views (forms, inline and bulk actions) apply before saving:

* a role's permissions may be added or removed only by an editor holding each of them;
* a role may be given to or taken from a user only by an editor holding all its permissions;
* a user holding a permission the editor lacks can't be edited, deactivated, deleted, have
  their password reset or be signed out everywhere by that editor;
* a role holding a permission the editor lacks can't be deleted by that editor;
* the Admin role always holds every permission (a request unticking one changes nothing);
* the last active member of the Admin role can't be deactivated, deleted or lose the role.

Each check raises :class:`GrantRefused` with a message for the person; the view shows it
and saves nothing.
"""
from __future__ import annotations

from collections.abc import Iterable

from flask import g
from sqlalchemy import func, select
from wtforms.validators import ValidationError

from app.extensions import db
from app.models import Permission, Role, User, user_roles
from app.permissions import ADMIN_ROLE


class GrantRefused(ValidationError):
    """A change the editor may not make; the admin shows ``str(error)`` and saves nothing."""


def held(editor: User) -> frozenset[str]:
    """Names of the permissions ``editor`` holds (none when inactive), as of their first check
    in this request: a form editing the editor's own account must not widen what they may grant."""
    cache = g.setdefault("grants_held", {})
    if editor.id not in cache:
        cache[editor.id] = editor.permission_names if editor.is_active else frozenset()
    return cache[editor.id]


def display_names(names: Iterable[str]) -> str:
    """``"Roles", "Users"`` for permission names, in a stable order."""
    rows = db.session.scalars(select(Permission).where(Permission.name.in_(list(names)))).all()
    return ", ".join(sorted(f"“{p.display_name}”" for p in rows))


def may_grant(editor: User, permissions: Iterable[str]) -> bool:
    """True when ``editor`` holds every one of ``permissions``."""
    return set(permissions) <= held(editor)


def check_role_permissions(editor: User, before: set[str], after: set[str]) -> None:
    """Refuse adding or removing a permission the editor doesn't hold."""
    lacking = (before ^ after) - held(editor)
    if lacking:
        raise GrantRefused("You can't grant or take away permissions you don't hold: "
                           f"{display_names(lacking)}.")


def check_manage_user(editor: User, target: User, action: str, holds: Iterable[str] | None = None) -> None:
    """Refuse ``action`` (edit, delete, ...) on a user holding a permission the editor lacks.

    ``holds`` is what the user held before the change being saved (default: what they hold).
    """
    lacking = set(target.permission_names if holds is None else holds) - held(editor)
    if lacking:
        raise GrantRefused(f"You can't {action} {target.username}: they hold permissions you don't "
                           f"({display_names(lacking)}).")


def check_user_roles(editor: User, before: Iterable[Role], after: Iterable[Role]) -> None:
    """Refuse giving or taking a role whose permissions the editor doesn't all hold."""
    changed = set(before) ^ set(after)
    refused = sorted(role.name for role in changed
                     if not may_grant(editor, {p.name for p in role.permissions}))
    if refused:
        names = ", ".join(f"“{name}”" for name in refused)
        raise GrantRefused(f"You can't give or take away roles granting permissions you don't hold: {names}.")


def check_delete_role(editor: User, role: Role) -> None:
    """Refuse deleting the Admin role, or a role holding a permission the editor lacks."""
    if role.is_admin_role:
        raise GrantRefused("The Admin role can't be deleted.")
    lacking = {p.name for p in role.permissions} - held(editor)
    if lacking:
        raise GrantRefused(f"You can't delete the role {role.name}: it grants permissions you don't hold "
                           f"({display_names(lacking)}).")


def active_admins_besides(user_ids: Iterable[int]) -> int:
    """How many active members of the Admin role there are besides the users ``user_ids``.

    Locks the Admin role's row on PostgreSQL, so two admins demoting each other at once
    are serialised and the second sees the first's change.
    """
    admin = db.session.scalar(select(Role).where(Role.name == ADMIN_ROLE, Role.tenant_id.is_(None))
                              .with_for_update())
    if admin is None:
        return 0
    return db.session.scalar(
        select(func.count()).select_from(User).join(user_roles, user_roles.c.user_id == User.id)
        .where(user_roles.c.role_id == admin.id, User.active.is_(True), User.id.not_in(list(user_ids)))
    )


def check_keeps_an_admin(users: Iterable[User]) -> None:
    """Refuse deactivating, deleting or demoting ``users`` when no other active admin would remain.

    ``users`` are the active admins the change removes from the Admin role's active members.
    """
    leaving = list(users)
    if leaving and active_admins_besides(user.id for user in leaving) == 0:
        names = ", ".join(user.username for user in leaving)
        raise GrantRefused(f"{names} {'is' if len(leaving) == 1 else 'are'} the last active administrator"
                           f"{'' if len(leaving) == 1 else 's'}: another active user must hold the Admin "
                           "role first.")
