"""Declared queues: a job can only be sent to a queue some worker may listen to.

Known queues are ``JOBS_QUEUES``, every job definition's own queue, and the names
declared at run time (``flask --app wsgi jobs queues declare NAME``), kept here in
the ledger so that every process sees them.
"""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import String, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks.ledger import utcnow

NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class DeclaredQueue(db.Model):
    """A queue declared at run time."""

    __tablename__ = "job_queues"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    declared_at: Mapped[datetime]


queues_table = DeclaredQueue.__table__


def check_name(name: str) -> str:
    """``name`` if it is a valid queue name, else ``ValueError`` saying what is allowed."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"invalid queue name {name!r}: 1 to 64 letters, digits, '_', '.', ':' or '-'")
    return name


def declare(name: str) -> bool:
    """Declare queue ``name``; False when it was already declared."""
    check_name(name)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(queues_table).values(name=name, declared_at=utcnow()))
        return True
    except IntegrityError:
        return False


def declared() -> list[str]:
    """Names declared at run time."""
    with db.engine.connect() as conn:
        return list(conn.scalars(select(queues_table.c.name).order_by(queues_table.c.name)))
