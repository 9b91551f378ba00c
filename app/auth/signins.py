"""Server-side sessions: each sign-in is a row, and a cookie is good only while its row lives.

Flask-Login keeps ``user.get_id()`` in the session cookie and in the remember-me cookie.
Here that id is ``<user id>:<key>``, a new random key per sign-in (so the remember-me
cookie is new at each sign-in too), and the ``user_sessions`` row holds the key's SHA-256.

* Signing out deletes the row: a captured session or remember-me cookie stops working.
* :func:`end_all_sessions` (password change, deactivation, "Sign out everywhere") deletes
  every row of the user and changes the user's ``session_stamp``, which bearer tokens carry.
"""
from __future__ import annotations

import hashlib
import secrets

from flask import current_app
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import User, UserSession, new_stamp, utcnow


def key_hash(key: str) -> str:
    """What the database keeps of a session key."""
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(user: User, remember: bool) -> str:
    """Record a new sign-in of ``user``; returns the id to keep in the cookies (``<id>:<key>``).

    Lives ``REMEMBER_COOKIE_DURATION`` with remember-me, ``SESSION_LIFETIME`` otherwise.
    The user's expired sessions are purged on the way. The caller commits.
    """
    now = utcnow()
    config = current_app.config
    lifetime = config["REMEMBER_COOKIE_DURATION"] if remember else config["SESSION_LIFETIME"]
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id,
                                                 UserSession.expires_at <= now))
    key = secrets.token_urlsafe(32)
    db.session.add(UserSession(key_hash=key_hash(key), user_id=user.id, created_at=now,
                               expires_at=now + lifetime))
    user.login_id = f"{user.id}:{key}"
    return user.login_id


def split_login_id(login_id: str) -> tuple[int, str] | None:
    """``(user id, key)`` of a cookie's id, or None when it isn't one."""
    user_part, _, key = str(login_id).partition(":")
    if not key or not user_part.isdigit() or len(user_part) > 18:
        return None
    return int(user_part), key


def session_user(login_id: str) -> User | None:
    """The active user whose live session ``login_id`` names, else None."""
    parts = split_login_id(login_id)
    if parts is None:
        return None
    user_id, key = parts
    row = db.session.scalar(select(UserSession).where(UserSession.key_hash == key_hash(key),
                                                      UserSession.user_id == user_id,
                                                      UserSession.expires_at > utcnow()))
    if row is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    user.login_id = login_id
    return user


def end_session(login_id: str | None) -> None:
    """Forget the session ``login_id`` names (sign-out). The caller commits."""
    parts = split_login_id(login_id or "")
    if parts is not None:
        db.session.execute(delete(UserSession).where(UserSession.key_hash == key_hash(parts[1])))


def end_all_sessions(user: User) -> None:
    """End every session, remember-me cookie and bearer token of ``user``. The caller commits."""
    user.session_stamp = new_stamp()
    if user.id is not None:
        db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))


def session_count(user: User) -> int:
    """How many live sessions ``user`` has (shown beside "Sign out everywhere")."""
    return db.session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user.id, UserSession.expires_at > utcnow()))
