"""Retention: expired reports (rows and files) are deleted, and so are stray files.

A report expires ``REPORTS_RETENTION_DAYS`` after it was built (or requested, until it
is built). ``cleanup()`` deletes expired rows with their files, ``.part`` files left by
builds that were killed, and files whose report row is gone (e.g. its owner was deleted).
It runs as the recurring job ``reports-cleanup`` (``reports.cleanup`` at minute 17 of every
hour, on the workers' scheduler) and on demand as ``flask reports cleanup``.
"""
from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.reports import storage
from app.reports.models import Report
from tasks import job
from tasks.ledger import utcnow
from tasks.recurring import recurring

BATCH = 500
STRAY_GRACE_SECONDS = 3600.0  # a .part file or an unknown file younger than this may belong to a live build

reports_cli = AppGroup("reports", help="Reports: retention.")


def delete_expired(now: datetime) -> tuple[int, int]:
    """Delete expired reports and their files, in batches; returns (rows, files) deleted."""
    rows = files = 0
    while True:
        batch = list(db.session.scalars(select(Report).where(Report.expires_at < now).limit(BATCH)))
        if not batch:
            return rows, files
        for report in batch:
            files += storage.discard(storage.file_path(report.user_id, report.token, report.format))
            db.session.delete(report)
        db.session.commit()
        rows += len(batch)


def stray_files(grace_seconds: float) -> list[str]:
    """Paths of ``.part`` files and files without a report row, older than ``grace_seconds``."""
    candidates = [(path, storage.FILE_RE.match(name)) for _, name, path, mtime in storage.stored_files()
                  if storage.age_seconds(mtime) > grace_seconds]
    tokens = {m.group("token") for _, m in candidates if m}
    known = set(db.session.scalars(select(Report.token).where(Report.token.in_(tokens)))) if tokens else set()
    return [path for path, m in candidates if m is None or m.group("token") not in known]


def cleanup(now: datetime | None = None, grace_seconds: float = STRAY_GRACE_SECONDS) -> dict:
    """Apply retention now; returns what was deleted."""
    rows, files = delete_expired(now or utcnow())
    strays = sum(storage.discard(path) for path in stray_files(grace_seconds))
    return {"reports": rows, "files": files, "stray_files": strays}


@recurring("reports-cleanup", cron="17 * * * *")
@job(name="reports.cleanup", queue="reports", retries=2, backoff=[60, 600], unique=True, unique_window=3600,
     internal=True)
def cleanup_job() -> dict:
    """Delete expired reports, their files and stray files."""
    return cleanup()


@reports_cli.command("cleanup")
@click.option("--grace", default=STRAY_GRACE_SECONDS, show_default=True, type=click.FloatRange(0),
              help="Leave stray files younger than this many seconds.")
def cleanup_command(grace: float) -> None:
    """Delete expired reports (rows and files) and stray files now."""
    done = cleanup(grace_seconds=grace)
    click.echo("deleted {reports} expired report(s), {files} file(s), {stray_files} stray file(s)"
               .format(**done))
