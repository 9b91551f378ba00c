"""Recurring jobs declared in code (placeholder models; the scheduler lands with issue 6)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class RecurringJob(db.Model):
    """A job run on a cron schedule, synced from code at start."""

    __tablename__ = "recurring_jobs"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    queue: Mapped[str] = mapped_column(String(64), default="default")
    args: Mapped[str] = mapped_column(Text, default="[]")
    kwargs: Mapped[str] = mapped_column(Text, default="{}")
    misfire: Mapped[str] = mapped_column(String(16), default="relaxed")
    enabled: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_job_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
