"""Export a filtered job list as CSV or JSON, streamed in keyset batches.

Every matching row is exported (not just the page on screen), ``EXPORT_BATCH`` at a
time, so memory stays flat at any size. CSV cells that a spreadsheet would run as a
formula (starting with ``= + - @``, tab or carriage return) are prefixed with a quote.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from flask import Response, stream_with_context

from app.extensions import db
from tasks import queries
from tasks.ledger import Job, utcnow
from tasks.queries import JobFilter

EXPORT_BATCH = 1000
COLUMNS = ("id", "task", "display_name", "state", "queue", "priority", "attempt", "max_attempts",
           "created_at", "enqueued_at", "scheduled_for", "started_at", "finished_at", "state_changed_at",
           "worker", "enqueued_by", "reason", "exception_type", "exception_message", "args", "kwargs")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def iter_jobs(job_filter: JobFilter, order: str = "changed", batch: int | None = None) -> Iterator[Job]:
    """Every job matching ``job_filter`` in the list's ``order``, read ``batch`` rows at a time."""
    cursor = None
    while True:
        page = queries.list_jobs(job_filter, limit=batch or EXPORT_BATCH, cursor=cursor, order=order)
        yield from page.jobs
        for job in page.jobs:  # keep memory flat: rows already written are not needed again
            db.session.expunge(job)
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def export_record(job: Job) -> dict:
    """One job as an export record (the list summary plus its arguments)."""
    arguments = {"args": json.loads(job.args or "[]"), "kwargs": json.loads(job.kwargs or "{}")}
    return queries.job_summary(job) | arguments


def csv_cell(value) -> str:
    """A CSV cell: JSON for lists and objects, and a quote before anything a spreadsheet would evaluate."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_line(cells) -> str:
    """One CSV line."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue()


def csv_stream(job_filter: JobFilter, order: str) -> Iterator[str]:
    """The header, then one CSV line per matching job."""
    yield csv_line(COLUMNS)
    for job in iter_jobs(job_filter, order):
        record = export_record(job)
        yield csv_line(csv_cell(record.get(column)) for column in COLUMNS)


def json_stream(job_filter: JobFilter, order: str) -> Iterator[str]:
    """A JSON array of every matching job, one record a line."""
    yield "["
    separator = "\n"
    for job in iter_jobs(job_filter, order):
        yield separator + json.dumps(export_record(job), ensure_ascii=False, default=str)
        separator = ",\n"
    yield "\n]\n"


def export_response(job_filter: JobFilter, fmt: str, name: str, order: str = "changed") -> Response:
    """A streamed download of every job matching ``job_filter`` as ``fmt`` (csv or json), in ``order``."""
    stream = csv_stream if fmt == "csv" else json_stream
    filename = f"jobs-{name}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
    response = Response(stream_with_context(stream(job_filter, order)), mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
