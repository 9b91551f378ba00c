"""What a running job tells the world: progress, log lines, and whether it should stop.

    @job(queue="reports", timeout=600)
    def build(report_id, context):
        for i, chunk in enumerate(chunks):
            context.progress(100 * i // len(chunks), f"chunk {i}")   # also a cancellation checkpoint
            context.logger.info("wrote %d rows", len(chunk))

Progress is written at most twice a second per job (and always at 100 %); log lines are
buffered and kept up to ``LOG_LIMIT`` per job. Cancellation and thread-worker timeouts are
cooperative: ``progress()`` and ``check()`` raise ``JobCancelled`` / ``JobTimeout``.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, func, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks.ledger import clip, jobs_table, utcnow

LOG_LIMIT = 1000  # lines kept per job
PROGRESS_INTERVAL = 0.5  # seconds between progress writes
CANCEL_POLL_INTERVAL = 1.0  # seconds between cancellation checks


class JobCancelled(Exception):
    """Raised inside a job that was asked to stop (dashboard Cancel, delete)."""


class JobTimeout(Exception):
    """Raised inside a job that ran past its ``timeout``."""


class JobLog(db.Model):
    """One log line written by a job."""

    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


logs_table = JobLog.__table__


class JobLogHandler(logging.Handler):
    """Buffers a job's log records and writes them to ``job_logs`` (bounded per job)."""

    def __init__(self, job_id: str, engine):
        super().__init__(logging.DEBUG)
        self.job_id, self.engine = job_id, engine
        self.buffer: list[dict] = []
        self.written: int | None = None  # counted on the first line (most jobs never log)
        self.last_flush = time.monotonic()
        self.buffer_lock = threading.Lock()

    def _existing(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(logs_table)
                               .where(logs_table.c.job_id == self.job_id))

    def emit(self, record: logging.LogRecord) -> None:
        if self.written is None:
            self.written = self._existing()  # lines of earlier attempts count towards the limit
        with self.buffer_lock:
            if self.written + len(self.buffer) >= LOG_LIMIT:
                return
            message = clip(self.format(record), 4000) or ""
            if self.written + len(self.buffer) == LOG_LIMIT - 1:
                message = f"[log limit of {LOG_LIMIT} lines reached; later lines are dropped]"
            self.buffer.append({"job_id": self.job_id, "at": utcnow(), "level": record.levelname,
                                "message": message})
        if time.monotonic() - self.last_flush >= PROGRESS_INTERVAL:
            self.flush()

    def flush(self) -> None:
        with self.buffer_lock:
            rows, self.buffer = self.buffer, []
        self.last_flush = time.monotonic()
        if rows:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(logs_table), rows)
                self.written = (self.written or 0) + len(rows)
            except Exception:  # noqa: BLE001 - logs are best effort; never fail the job for them
                logging.getLogger("tasks.progress").warning("could not store %d log line(s) of job %s",
                                                            len(rows), self.job_id)


class Reporter:
    """The progress, log and stop-signal side of one running attempt."""

    def __init__(self, job_id: str, engine, deadline: float | None = None):
        self.job_id, self.engine, self.deadline = job_id, engine, deadline
        self.handler: JobLogHandler | None = None
        self._last_progress = 0.0
        self._last_poll = 0.0
        self._cancel_reason: str | None = None

    @property
    def logger(self) -> logging.Logger:
        """The job's logger, created on first use (most jobs never log)."""
        logger = logging.getLogger(f"jobs.{self.job_id}")
        if self.handler is None:
            self.handler = JobLogHandler(self.job_id, self.engine)
            self.handler.setFormatter(logging.Formatter("%(message)s"))
            logger.propagate = False
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self.handler)
        return logger

    def progress(self, percent: float, message: str = "") -> None:
        """Record progress (0–100) and a short message; raises if the job should stop."""
        percent = max(0, min(100, int(percent)))
        now = time.monotonic()
        if percent == 100 or now - self._last_progress >= PROGRESS_INTERVAL:
            self._last_progress = now
            with self.engine.begin() as conn:
                conn.execute(update(jobs_table).where(jobs_table.c.id == self.job_id)
                             .values(progress=percent, progress_message=clip(message, 250)))
        self.check()

    def cancel_reason(self) -> str | None:
        """Why the job was asked to stop, or None (polled at most once a second)."""
        now = time.monotonic()
        if self._cancel_reason is None and now - self._last_poll >= CANCEL_POLL_INTERVAL:
            self._last_poll = now
            with self.engine.connect() as conn:
                row = conn.execute(select(jobs_table.c.cancel_requested_at, jobs_table.c.cancel_reason)
                                   .where(jobs_table.c.id == self.job_id)).first()
            if row is not None and row.cancel_requested_at is not None:
                self._cancel_reason = row.cancel_reason or "Cancelled"
        return self._cancel_reason

    def check(self) -> None:
        """Raise ``JobCancelled`` or ``JobTimeout`` when the job should stop now."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobTimeout("timed out")
        reason = self.cancel_reason()
        if reason:
            raise JobCancelled(reason)

    def close(self) -> None:
        """Flush buffered log lines and detach the logger."""
        if self.handler is not None:
            self.handler.flush()
            self.logger.removeHandler(self.handler)
            logging.Logger.manager.loggerDict.pop(f"jobs.{self.job_id}", None)


def request_cancel(job_ids: list[str], reason: str) -> None:
    """Ask running jobs to stop (they see it at their next checkpoint)."""
    if job_ids:
        with db.engine.begin() as conn:
            conn.execute(update(jobs_table).where(jobs_table.c.id.in_(job_ids))
                         .values(cancel_requested_at=utcnow(), cancel_reason=clip(reason, 250)))


def job_logs(job_id: str, after_id: int = 0, limit: int = LOG_LIMIT) -> list[JobLog]:
    """A job's log lines after ``after_id``, oldest first (for live tails)."""
    query = (select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after_id)
             .order_by(JobLog.id).limit(limit))
    return list(db.session.scalars(query))
