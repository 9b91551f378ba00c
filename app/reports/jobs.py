"""``reports.build``: write a report file chunk by chunk, then email it (queue ``reports``).

Safe to run more than once (at-least-once delivery): a build writes to a ``.part`` file
and renames it into place, marks the report ready and enqueues its email in one commit,
and a re-run finds the report ready and stops. A report whose last attempt fails is
marked failed with the reason; the user can retry it from /reports.
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

from flask import current_app

from app.extensions import db
from app.reports import storage
from app.reports.catalog import KINDS
from app.reports.models import FAILED, READY, RUNNING, Report
from app.reports.notify import send_ready_email
from app.reports.writers import open_writer
from tasks import JobCancelled, JobContext, job
from tasks.ledger import clip, utcnow

ERROR_LIMIT = 2000


def retention() -> timedelta:
    """How long finished reports are kept (``REPORTS_RETENTION_DAYS``)."""
    return timedelta(days=float(current_app.config["REPORTS_RETENTION_DAYS"]))


def pace() -> None:
    """Pause ``REPORTS_CHUNK_DELAY`` seconds between chunks (demos and crash tests; default 0)."""
    delay = float(current_app.config.get("REPORTS_CHUNK_DELAY") or 0)
    if delay > 0:
        time.sleep(delay)


def is_built(report: Report) -> bool:
    """True when the report is ready and its file is in place."""
    if report.state != READY:
        return False
    return os.path.isfile(storage.file_path(report.user_id, report.token, report.format))


def mark_running(report: Report, context: JobContext) -> None:
    """Record that this attempt started building."""
    report.state, report.job_id, report.error = RUNNING, context.job_id, None
    report.started_at, report.finished_at = utcnow(), None
    db.session.commit()
    context.logger.info("building report #%s (%s, %s), attempt %s of %s", report.id, report.kind,
                        report.format, context.attempt, context.max_attempts)


def write_file(report: Report, context: JobContext) -> tuple[int, int]:
    """Write the report to its ``.part`` file chunk by chunk, then publish it; returns (rows, bytes)."""
    kind, params = KINDS[report.kind], report.parameters
    chunks = kind.plan(params)
    final = storage.file_path(report.user_id, report.token, report.format)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    partial = storage.partial_path(final)
    writer = open_writer(report.format, partial, kind.columns, kind.title)
    try:
        rows = 0
        for index, chunk in enumerate(chunks, 1):
            written = writer.write_rows(kind.rows(params, chunk))
            rows += written
            db.session.commit()  # end the read transaction between chunks
            label = kind.chunk_label(chunk)
            context.logger.info("chunk %d/%d (%s): %d rows", index, len(chunks), label, written)
            context.progress(min(99, 100 * index // len(chunks)), f"{label} ({index}/{len(chunks)})")
            pace()
        writer.close()
        size = storage.publish(partial, final)
    except BaseException:
        writer.abandon()
        storage.discard(partial)
        raise
    context.progress(100, f"{rows} rows written")
    return rows, size


def finish(report_id: int, rows: int, size: int, context: JobContext) -> None:
    """Mark the report ready and enqueue its email, in one commit."""
    report = db.session.get(Report, report_id)
    if report is None:  # expired and deleted while it was being built
        context.logger.warning("report #%s was deleted while being built; its file is left to the "
                               "stray-file sweep", report_id)
        return
    now = utcnow()
    report.state, report.rows, report.size_bytes, report.error = READY, rows, size, None
    report.finished_at, report.expires_at = now, now + retention()
    report.email_job_id = send_ready_email(report)
    db.session.commit()
    context.logger.info("report #%s ready: %d rows, %d bytes; email job %s", report_id, rows, size,
                        report.email_job_id)


def record_failure(report_id: int, error: BaseException, context: JobContext) -> None:
    """Mark the report failed with the reason when no attempt is left (or it was cancelled)."""
    db.session.rollback()
    final = context.is_last_attempt or isinstance(error, JobCancelled)
    context.logger.warning("attempt %s failed%s: %s", context.attempt, "" if final else " (will retry)",
                           error)
    if not final:
        return
    report = db.session.get(Report, report_id)
    if report is not None:
        cancelled = isinstance(error, JobCancelled)
        reason = f"Cancelled: {error}" if cancelled else f"{type(error).__name__}: {error}"
        report.state, report.error, report.finished_at = FAILED, clip(reason, ERROR_LIMIT), utcnow()
        db.session.commit()


@job(name="reports.build", queue="reports", retries=2, backoff=[10, 60], timeout=3600,
     display_name="Report #{0}", internal=True)
def build_report(report_id: int, context: JobContext) -> dict:
    """Build report ``report_id`` in chunks (with progress), store it, then email its owner."""
    report = db.session.get(Report, report_id)
    if report is None:
        context.logger.info("report #%s no longer exists (expired or deleted); nothing to do", report_id)
        return {"report": report_id, "skipped": "report no longer exists"}
    if is_built(report):
        context.logger.info("report #%s is already built; not building or emailing it again", report_id)
        return {"report": report_id, "skipped": "already built"}
    mark_running(report, context)
    try:
        rows, size = write_file(report, context)
        finish(report_id, rows, size, context)
    except Exception as error:
        record_failure(report_id, error, context)
        raise
    return {"report": report_id, "rows": rows, "bytes": size}
