"""Unique jobs: one pending job per uniqueness key (placeholder model; logic lands with issue 6)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class UniqueKey(db.Model):
    """The job currently holding a uniqueness key, until it finishes or the window ends."""

    __tablename__ = "job_unique_keys"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime]
