"""What a report's page and its JSON status endpoint show: the row, completed by the job ledger.

While a report is queued or running, its job's ledger row knows more (live progress,
a retry being scheduled, a failure the job couldn't record itself, e.g. a poison message
or a cancellation before it started); once ready or failed, the report row is the truth.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from flask import url_for

from app.openapi.registry import BOOLEAN, INTEGER, NUMBER, STRING, enum, nullable, obj
from app.reports.models import FAILED, QUEUED, READY, RUNNING, STATES, Report
from app.reports.storage import FORMATS
from tasks import lifecycle
from tasks.queries import get_job

LABELS = {QUEUED: "Queued", RUNNING: "Running", READY: "Ready", FAILED: "Failed"}
#: the schema of :func:`status_json`
REPORT_STATUS = obj(
    id=INTEGER, title=STRING, format=enum(FORMATS), state=enum(STATES), label=STRING,
    progress={"type": "integer", "minimum": 0, "maximum": 100}, message=STRING, error=nullable(STRING),
    final=BOOLEAN, job_id=nullable(STRING), rows=nullable(INTEGER), size_bytes=nullable(INTEGER),
    wait_seconds=nullable(NUMBER), build_seconds=nullable(NUMBER), download_url=nullable(STRING),
)


@dataclass
class ReportStatus:
    """The effective state of a report."""

    state: str
    label: str
    progress: int
    message: str = ""
    error: str | None = None

    @property
    def final(self) -> bool:
        """True when nothing will change without someone acting."""
        return self.state in (READY, FAILED)


def from_job(report: Report) -> ReportStatus:
    """The status of a queued or running report, read from its job."""
    job = get_job(report.job_id) if report.job_id else None
    if job is None:
        return ReportStatus(report.state, LABELS[report.state], 0, "Waiting for a worker")
    if job.state in (lifecycle.FAILED, lifecycle.DELETED):
        return ReportStatus(FAILED, "Failed", 0, error=job.state_reason or job.exception_message or job.state)
    if job.state == lifecycle.SCHEDULED and job.attempt >= 1:
        message = (f"Attempt {job.attempt} failed ({job.exception_message}); "
                   f"retrying (attempt {job.attempt + 1} of {job.max_attempts})")
        return ReportStatus(RUNNING, "Retrying", 0, message)
    if job.state == lifecycle.PROCESSING:
        return ReportStatus(RUNNING, "Running", job.progress or 0, job.progress_message or "Starting")
    if job.state == lifecycle.SUCCEEDED:  # the row is about to say ready (or the report was skipped)
        return ReportStatus(report.state, LABELS[report.state], 100 if report.state == READY else 0)
    return ReportStatus(QUEUED, "Queued", 0, "Waiting for a worker")


def status_of(report: Report) -> ReportStatus:
    """The effective status of ``report``."""
    if report.state == READY:
        return ReportStatus(READY, "Ready", 100)
    if report.state == FAILED:
        return ReportStatus(FAILED, "Failed", 0, error=report.error)
    return from_job(report)


def status_json(report: Report, download_endpoint: str = "reports.download") -> dict:
    """The JSON body of ``GET /reports/<id>/status`` (``download_url`` leads to ``download_endpoint``)."""
    status = status_of(report)
    ready = status.state == READY
    return {
        "id": report.id, "title": report.title, "format": report.format, **asdict(status),
        "final": status.final, "job_id": report.job_id, "rows": report.rows if ready else None,
        "size_bytes": report.size_bytes if ready else None,
        "wait_seconds": report.wait_seconds, "build_seconds": report.build_seconds if ready else None,
        "download_url": url_for(download_endpoint, report_id=report.id) if ready else None,
    }
