"""Unique jobs: while a job with the same uniqueness key is pending, enqueuing returns its id.

The key defaults to the task name plus its arguments; ``@job(unique="report:{0}")``
formats a key from the arguments instead. A key is held for at most the job's
``unique_window`` seconds (default a day) and only while its job is pending.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import String, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks import lifecycle
from tasks.ledger import jobs_table

PENDING = frozenset({lifecycle.ENQUEUED, lifecycle.SCHEDULED, lifecycle.PROCESSING, lifecycle.AWAITING})


class UniqueKey(db.Model):
    """The job currently holding a uniqueness key, until it finishes or the window ends."""

    __tablename__ = "job_unique_keys"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime]


keys_table = UniqueKey.__table__


def key_for(task: str, rule, args: list, kwargs: dict) -> str:
    """The hashed uniqueness key of one call (``rule``: True, a format string, or a callable)."""
    if callable(rule):
        raw = str(rule(*args, **kwargs))
    elif isinstance(rule, str):
        raw = rule.format(*args, **kwargs)
    else:
        raw = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{task}\x00{raw}".encode()).hexdigest()


def claim(conn: Connection, key: str, job_id: str, window: float, now: datetime) -> str | None:
    """Take ``key`` for ``job_id``; return the id of the pending job that already holds it, if any."""
    expires = now + timedelta(seconds=window)
    for _ in range(3):
        try:
            with conn.begin_nested():
                conn.execute(insert(keys_table).values(key=key, job_id=job_id, expires_at=expires))
            return None
        except IntegrityError:
            holder = conn.execute(select(keys_table.c.job_id, keys_table.c.expires_at)
                                  .where(keys_table.c.key == key)).first()
            if holder is None:
                continue
            state = conn.scalar(select(jobs_table.c.state).where(jobs_table.c.id == holder.job_id))
            if holder.expires_at > now and state in PENDING:
                return holder.job_id
            taken = conn.execute(update(keys_table).where(keys_table.c.key == key,
                                                          keys_table.c.job_id == holder.job_id)
                                 .values(job_id=job_id, expires_at=expires)).rowcount
            if taken:
                return None
    raise RuntimeError(f"could not settle uniqueness key {key} under contention")


def forget_expired(now: datetime, limit: int = 1000) -> int:
    """Delete keys whose window has ended (at most ``limit``)."""
    with db.engine.begin() as conn:
        keys = [r.key for r in conn.execute(select(keys_table.c.key).where(keys_table.c.expires_at < now)
                                            .limit(limit))]
        if keys:
            conn.execute(delete(keys_table).where(keys_table.c.key.in_(keys)))
    return len(keys)
