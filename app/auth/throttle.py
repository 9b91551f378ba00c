"""Failed sign-in throttling, kept in the ``login_throttle`` table so every worker shares it.

Each failure is charged to three counters, each counting within a window that opens at
its first failure:

* the account *from this address* (``pair:<hash>``): at ``LOGIN_THROTTLE_MAX_FAILURES``
  that address may not try that account again for one window;
* the address (``ip:<address>``): at ``LOGIN_THROTTLE_IP_MAX_FAILURES`` it may not try any
  account for one window;
* the account from every address (``user:<login>``): past ``LOGIN_THROTTLE_SLOWDOWN_AFTER``
  failures each further failure makes the next attempt wait longer (1 s, 2 s, 4 s, ... up to
  ``LOGIN_THROTTLE_MAX_DELAY``). It slows guessing down but never locks the owner out for long:
  a stranger failing from many addresses can't keep the owner out for a whole window.

A throttled attempt is refused before the password is checked, right or wrong, and isn't
counted. Counting is a single ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite and
PostgreSQL), so concurrent failures neither race on the first insert nor lose increments.
Functions here change the session; the caller commits. The client address is
``request.remote_addr``: the proxy's ``X-Forwarded-For`` counts only from ``TRUSTED_PROXIES``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import LoginThrottle, utcnow

UPSERT_DIALECTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
KEY_LENGTH = LoginThrottle.__table__.c.key.type.length
FIRST_DELAY = timedelta(seconds=1)


def account_key(login: str) -> str:
    """The counter key of an account: ``user:<login lowercased>`` (capped to the column)."""
    return ("user:" + login.strip().lower())[:KEY_LENGTH]


def address_key(address: str | None) -> str:
    """The counter key of a client address: ``ip:<address>``."""
    return ("ip:" + (address or "unknown"))[:KEY_LENGTH]


def pair_key(login: str, address: str | None) -> str:
    """The counter key of one account tried from one address (hashed: both parts are long)."""
    digest = hashlib.sha256(f"{login.strip().lower()}\n{address or 'unknown'}".encode()).hexdigest()
    return "pair:" + digest


@dataclass(frozen=True)
class Counter:
    """One failure counter: locks for a window at ``limit`` failures, or slows down past it."""

    key: str
    limit: int
    slows: bool = False

    def hold(self, failures: int, window: timedelta, max_delay: timedelta) -> timedelta | None:
        """How long the key refuses attempts after its ``failures``-th failure (None: not at all)."""
        if failures < self.limit:
            return None
        if not self.slows:
            return window
        doublings = min(failures - self.limit, 30)
        return min(max_delay, FIRST_DELAY * 2 ** doublings)


class SignInThrottle:
    """The counters one sign-in attempt is charged to: account+address, address, account."""

    def __init__(self, login: str, address: str | None, config=None):
        config = config or current_app.config
        self.window: timedelta = config["LOGIN_THROTTLE_WINDOW"]
        self.max_delay: timedelta = config["LOGIN_THROTTLE_MAX_DELAY"]
        self.pair = Counter(pair_key(login, address), config["LOGIN_THROTTLE_MAX_FAILURES"])
        self.address = Counter(address_key(address), config["LOGIN_THROTTLE_IP_MAX_FAILURES"])
        self.account = Counter(account_key(login), config["LOGIN_THROTTLE_SLOWDOWN_AFTER"], slows=True)

    @property
    def counters(self) -> tuple[Counter, Counter, Counter]:
        """Every counter, in the order they are written (the same order in every process)."""
        return self.account, self.address, self.pair

    def retry_after(self, now: datetime | None = None) -> timedelta | None:
        """How long until the attempt may be made, or None when no key holds it back."""
        now = now or utcnow()
        locked_until = db.session.scalar(
            select(func.max(LoginThrottle.locked_until)).where(
                LoginThrottle.key.in_([counter.key for counter in self.counters]),
                LoginThrottle.locked_until > now,
            )
        )
        return None if locked_until is None else locked_until - now

    def record_failure(self, now: datetime | None = None) -> None:
        """Count a failed attempt against every counter, holding back the ones at their limit."""
        now = now or utcnow()
        for counter in self.counters:
            failures = count_failure(counter.key, self.window, now)
            hold = counter.hold(failures, self.window, self.max_delay)
            if hold is not None:
                db.session.execute(update(LoginThrottle).where(LoginThrottle.key == counter.key)
                                   .values(locked_until=now + hold))

    def record_success(self, now: datetime | None = None) -> None:
        """Clear the account's counters (not the address's) and purge expired counters."""
        cleared = [self.account.key, self.pair.key]
        db.session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(cleared)))
        purge_expired(self.window, now or utcnow())


def upsert_for_session():
    """The dialect's ``insert`` construct supporting ``on_conflict_do_update``."""
    dialect = db.session.get_bind(mapper=LoginThrottle).dialect.name
    try:
        return UPSERT_DIALECTS[dialect]
    except KeyError:
        raise RuntimeError(f"login throttling supports SQLite and PostgreSQL, not {dialect}") from None


def count_failure(key: str, window: timedelta, now: datetime) -> int:
    """Atomically add one failure to ``key`` (a new window when the old one passed); returns the count."""
    row = LoginThrottle.__table__.c
    window_passed = row.window_started_at <= now - window
    statement = upsert_for_session()(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[row.key],
        set_={
            "failures": case((window_passed, 1), else_=row.failures + 1),
            "window_started_at": case((window_passed, now), else_=row.window_started_at),
        },
    ).returning(row.failures)
    return db.session.execute(statement).scalar_one()


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
