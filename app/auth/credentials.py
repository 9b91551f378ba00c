"""Checking a username (or email) and password, shared by the login form and the token API."""
from __future__ import annotations

import math
from datetime import timedelta
from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from app.auth.throttle import SignInThrottle
from app.extensions import db
from app.models import Tenant, User, password_hash_method, utcnow

INVALID_CREDENTIALS = "Invalid username or password"


class SignInRefused(Exception):
    """A sign-in attempt was refused; ``message`` is safe to show to the client."""

    message = INVALID_CREDENTIALS


class InvalidCredentials(SignInRefused):
    """Unknown login, wrong password or inactive account (deliberately indistinguishable)."""


class SignInThrottled(SignInRefused):
    """Too many recent failures: for the account from this address, the address, or the account."""

    def __init__(self, retry_after: timedelta):
        super().__init__()
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds until the lock passes (at least 1)."""
        return max(1, math.ceil(self.retry_after.total_seconds()))

    @property
    def message(self) -> str:  # type: ignore[override]
        seconds = self.retry_after_seconds
        if seconds < 60:
            return f"Too many failed sign-ins; try again in {seconds} second{'' if seconds == 1 else 's'}"
        minutes = math.ceil(seconds / 60)
        return f"Too many failed sign-ins; try again in {minutes} minute{'' if minutes == 1 else 's'}"


@cache
def decoy_password_hash(method: str) -> str:
    """A hash (by ``method``) to check unknown logins against, so they take as long as known ones."""
    return generate_password_hash("decoy password for unknown logins", method=method)


def password_matches(user: User | None, password: str) -> bool:
    """True when ``user`` exists and ``password`` is theirs; constant work either way."""
    if user is None:
        check_password_hash(decoy_password_hash(password_hash_method()), password)
        return False
    return user.check_password(password)


def account_name(login: str, user: User | None, tenant_name: str | None) -> str:
    """The name the throttle counts an account's failures under: ``tenant/username`` in a tenant."""
    name = user.username if user else login
    return f"{tenant_name.strip().lower()}/{name}" if tenant_name else name


def authenticate(login: str, password: str, address: str | None, tenant_name: str | None = None) -> User:
    """The active user of tenant ``tenant_name`` (blank: the host) that ``login`` and ``password`` name,
    signed in now.

    Raises ``SignInThrottled`` while the account or ``address`` is locked (whatever the
    password), else ``InvalidCredentials`` on any mismatch, which counts as a failure: an
    unknown or deactivated tenant is a mismatch like any other (indistinguishable).
    Success clears the account's failures and records ``last_login_at``.
    """
    tenant_name = (tenant_name or "").strip() or None
    tenant = Tenant.by_name(tenant_name) if tenant_name else None
    user = None if tenant_name and tenant is None else User.by_login(login, tenant)
    throttle = SignInThrottle(account_name(login, user, tenant_name), address)
    wait = throttle.retry_after()
    if wait is not None:
        raise SignInThrottled(wait)
    if not password_matches(user, password) or not user.is_active:
        throttle.record_failure()
        db.session.commit()
        raise InvalidCredentials()
    throttle.record_success()
    user.last_login_at = utcnow()
    db.session.commit()
    return user
