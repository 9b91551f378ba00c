"""Failed sign-in throttling, kept in the ``login_throttle`` table so every worker shares it.

Each failure is charged to two counters: the account (``user:<login>``) and the client
address (``ip:<address>``). A counter's window opens at its first failure; when the
failures in the window reach the counter's limit, the key is locked for one window.
Locked keys refuse every attempt, right password or not, until the lock passes.

Counting is a single ``INSERT ... ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL), so
concurrent failures from several processes neither race on the first insert nor lose
increments. Functions here change the session; the caller commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import LoginThrottle, utcnow

UPSERT_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
KEY_LENGTH = LoginThrottle.__table__.c.key.type.length


def account_key(login: str) -> str:
    """The counter key of an account: ``user:<login lowercased>`` (capped to the column)."""
    return ("user:" + login.strip().lower())[:KEY_LENGTH]


def address_key(address: str | None) -> str:
    """The counter key of a client address: ``ip:<address>``."""
    return "ip:" + (address or "unknown")


@dataclass(frozen=True)
class Counter:
    """One failure counter and the number of failures that locks it."""

    key: str
    limit: int


class SignInThrottle:
    """The counters one sign-in attempt is charged to: its account and its client address."""

    def __init__(self, login: str, address: str | None, config=None):
        config = config or current_app.config
        self.window: timedelta = config["LOGIN_THROTTLE_WINDOW"]
        self.account = Counter(account_key(login), config["LOGIN_THROTTLE_MAX_FAILURES"])
        self.address = Counter(address_key(address), config["LOGIN_THROTTLE_IP_MAX_FAILURES"])

    @property
    def counters(self) -> tuple[Counter, Counter]:
        """The account counter, then the address counter (always locked in this order)."""
        return self.account, self.address

    def retry_after(self, now: datetime | None = None) -> timedelta | None:
        """How long until the attempt may be made, or None when neither key is locked."""
        now = now or utcnow()
        locked_until = db.session.scalar(
            select(func.max(LoginThrottle.locked_until)).where(
                LoginThrottle.key.in_([counter.key for counter in self.counters]),
                LoginThrottle.locked_until > now,
            )
        )
        return None if locked_until is None else locked_until - now

    def record_failure(self, now: datetime | None = None) -> None:
        """Count a failed attempt against the account and the address."""
        now = now or utcnow()
        for counter in self.counters:
            count_failure(counter, self.window, now)

    def record_success(self, now: datetime | None = None) -> None:
        """Clear the account's counter (not the address's) and purge expired counters."""
        db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == self.account.key))
        purge_expired(self.window, now or utcnow())


def upsert_for_session():
    """The dialect's ``insert`` construct supporting ``on_conflict_do_update``."""
    dialect = db.session.get_bind(mapper=LoginThrottle).dialect.name
    try:
        return UPSERT_DIALECTS[dialect]
    except KeyError:
        raise RuntimeError(f"login throttling supports SQLite and PostgreSQL, not {dialect}") from None


def count_failure(counter: Counter, window: timedelta, now: datetime) -> None:
    """Atomically add one failure to ``counter``, opening a new window when the old one passed."""
    row = LoginThrottle.__table__.c
    lock_until = now + window
    window_passed = row.window_started_at <= now - window
    failures = case((window_passed, 1), else_=row.failures + 1)
    statement = upsert_for_session()(LoginThrottle).values(
        key=counter.key,
        failures=1,
        window_started_at=now,
        locked_until=lock_until if counter.limit <= 1 else None,
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[row.key],
            set_={
                "failures": failures,
                "window_started_at": case((window_passed, now), else_=row.window_started_at),
                "locked_until": case((failures >= counter.limit, lock_until), else_=row.locked_until),
            },
        )
    )


def purge_expired(window: timedelta, now: datetime) -> int:
    """Delete counters whose window and lock have both passed; returns how many."""
    result = db.session.execute(
        delete(LoginThrottle).where(
            and_(
                LoginThrottle.window_started_at <= now - window,
                or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
            )
        )
    )
    return result.rowcount
