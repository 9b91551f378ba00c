"""Roles, permissions and users, read and written straight in the database (for arranging tests)."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Permission, Role, User


def make_role(app, name: str, permissions=(), description: str = "") -> int:
    """Create a role holding ``permissions``; returns its id."""
    with app.app_context():
        role = Role(name=name, description=description)
        role.permissions = [permission_row(p) for p in permissions]
        db.session.add(role)
        db.session.commit()
        return role.id


def permission_row(name: str) -> Permission:
    """The Permission row called ``name`` (inside an app context)."""
    return db.session.scalar(select(Permission).where(Permission.name == name))


def permission_id(app, name: str) -> int:
    """The id of the permission called ``name``."""
    with app.app_context():
        return permission_row(name).id


def role_state(app, role_id: int) -> tuple[str, set[str]] | None:
    """``(name, permission names)`` of a role, or None when it is gone."""
    with app.app_context():
        role = db.session.get(Role, role_id)
        return None if role is None else (role.name, {p.name for p in role.permissions})


def user_state(app, username: str) -> User | None:
    """A detached copy of the user called ``username`` (or None)."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def user_id(app, username: str) -> int:
    """The id of the user called ``username``."""
    return user_state(app, username).id


def role_id_by_name(app, name: str) -> int:
    """The id of the role called ``name``."""
    with app.app_context():
        return Role.by_name(name).id
