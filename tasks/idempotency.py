"""Run a side effect once per key, across re-runs of a job (at-least-once delivery).

    from tasks import once

    @job(queue="email")
    def send_welcome(user_id, context):
        once(f"welcome-mail:{user_id}", lambda: mailer.send(...))

The key is recorded after the action succeeds, in its own transaction, so a re-run
(retry, redelivery after a lost worker) skips it and gets the recorded result. A
crash between the action and the record can still repeat it: pair ``once`` with a
natural idempotency key downstream (e.g. a stable Message-ID) where that matters.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import String, Text, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks.context import current_job
from tasks.ledger import utcnow

T = TypeVar("T")


class IdempotencyKey(db.Model):
    """A side effect that has happened, keyed by the job author's key."""

    __tablename__ = "job_idempotency_keys"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    result: Mapped[str | None] = mapped_column(Text)


def once(key: str, action: Callable[[], T]) -> T | Any:
    """Run ``action`` unless ``key`` was already recorded; return its (recorded) result."""
    if not key or len(key) > 255:
        raise ValueError("an idempotency key must be 1 to 255 characters")
    table = IdempotencyKey.__table__
    with db.engine.connect() as conn:
        done = conn.execute(select(table.c.result).where(table.c.key == key)).first()
    if done is not None:
        return json.loads(done.result) if done.result else None
    result = action()
    try:
        job_id = current_job().job_id
    except RuntimeError:
        job_id = None
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(table).values(key=key, job_id=job_id, created_at=utcnow(),
                                              result=json.dumps(result, default=str)))
    except IntegrityError:
        pass  # a concurrent run recorded it first; both ran, which ``once`` can't prevent
    return result


def forget_before(cutoff: datetime, limit: int = 1000) -> int:
    """Delete keys recorded before ``cutoff`` (at most ``limit``); returns how many."""
    table = IdempotencyKey.__table__
    with db.engine.begin() as conn:
        keys = [r.key for r in conn.execute(select(table.c.key).where(table.c.created_at < cutoff)
                                            .limit(limit))]
        if keys:
            conn.execute(delete(table).where(table.c.key.in_(keys)))
    return len(keys)
