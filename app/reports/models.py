"""A report a user asked for: what, in which format, its state, and where its file is.

The file lives at ``instance/reports/<user_id>/<token>.<format>`` (see
:mod:`app.reports.storage`); URLs name reports by id only. While a report is queued or
running, the job ledger (``job_id``) holds its live progress.
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models import User
from tasks.ledger import utcnow

QUEUED = "queued"
RUNNING = "running"
READY = "ready"
FAILED = "failed"
STATES = (QUEUED, RUNNING, READY, FAILED)
ACTIVE_STATES = frozenset({QUEUED, RUNNING})


def new_token() -> str:
    """32 hex digits naming the report's file and its email (never reused)."""
    return secrets.token_hex(16)


class Report(db.Model):
    """One requested report and its outcome."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_user_created", "user_id", "created_at"),
        Index("ix_reports_expires", "expires_at"),
        {"sqlite_autoincrement": True},  # ids are never reused after retention deletes rows
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(8))
    params: Mapped[str] = mapped_column(Text, default="{}")
    title: Mapped[str] = mapped_column(String(200), default="")
    token: Mapped[str] = mapped_column(String(32), unique=True, default=new_token)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32))
    email_job_id: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(255), default="")
    rows: Mapped[int | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    user: Mapped[User] = relationship()

    @property
    def parameters(self) -> dict:
        """Decoded ``params``."""
        return json.loads(self.params or "{}")

    @property
    def is_active(self) -> bool:
        """True while the report is queued or being built (as far as the row knows)."""
        return self.state in ACTIVE_STATES

    @property
    def wait_seconds(self) -> float | None:
        """Seconds between the request and the start of the (last) build."""
        return (self.started_at - self.created_at).total_seconds() if self.started_at else None

    @property
    def build_seconds(self) -> float | None:
        """Seconds the last build took."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
