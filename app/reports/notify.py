"""The "your report is ready" email: the file attached, or a download link when it is large."""
from __future__ import annotations

from flask import current_app, render_template

from app.mail import send_later
from app.reports import storage
from app.reports.models import Report


def download_name(report: Report) -> str:
    """The file name users see: ``job-activity-12-20261122-1015.csv``."""
    return f"{report.kind}-{report.id}-{report.created_at:%Y%m%d-%H%M}.{report.format}"


def message_key(report: Report) -> str:
    """The email's idempotency key (and Message-ID local part): stable for this report."""
    return f"report-{report.id}-{report.token[:16]}-ready"


def download_link(report: Report) -> str:
    """Absolute download URL: ``PUBLIC_URL`` if set, else the site the report was requested on."""
    base = (current_app.config.get("PUBLIC_URL") or report.origin or "").rstrip("/")
    return f"{base}/reports/{report.id}/download"


def attachments(report: Report) -> list[dict]:
    """The report file as an attachment, unless it exceeds ``REPORTS_ATTACH_MAX_BYTES``."""
    if (report.size_bytes or 0) > current_app.config["REPORTS_ATTACH_MAX_BYTES"]:
        return []
    return [{"path": storage.relative_path(report.user_id, report.token, report.format),
             "filename": download_name(report), "content_type": storage.FORMATS[report.format][1]}]


def send_ready_email(report: Report) -> str:
    """Enqueue the email for a finished report (joins the caller's transaction); returns the job id."""
    files = attachments(report)
    body = render_template("mail/report_ready.txt", report=report, link=download_link(report),
                           attached=bool(files), filename=download_name(report),
                           retention_days=current_app.config["REPORTS_RETENTION_DAYS"])
    return send_later(message_key(report), [report.user.email], f"Your report is ready: {report.title}", body,
                      files)
