"""The "your report is ready" email: the report attached, or a download link when it is large.

The email job's arguments name the attachment as ``{"report": <id>}``; :func:`report_attachment`
finds the file at send time and refuses a report any recipient may not see.
"""
from __future__ import annotations

import os

from flask import current_app, render_template
from sqlalchemy import func, select

from app.extensions import db
from app.mail import send_later
from app.mail.attachments import Attachment, AttachmentMissing, AttachmentRefused, attachment_kind
from app.models import User
from app.permissions import REPORTS_ALL
from app.reports import storage
from app.reports.models import READY, Report


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


def attachable(report: Report) -> bool:
    """True unless the report exceeds ``REPORTS_ATTACH_MAX_BYTES`` (then the email links to it)."""
    return (report.size_bytes or 0) <= current_app.config["REPORTS_ATTACH_MAX_BYTES"]


def attachments(report: Report) -> list[dict]:
    """The report as an attachment (named by its id), unless it is too large to attach."""
    return [{"report": report.id}] if attachable(report) else []


def may_receive(address: str, report: Report) -> bool:
    """True when the active user with email ``address`` owns the report or sees everyone's (of the
    owner's tenant)."""
    user = db.session.scalar(select(User).where(func.lower(User.email) == address.strip().lower()))
    if user is None or not user.is_active or user.tenant_id != report.user.tenant_id:
        return False
    return user.id == report.user_id or user.has_permission(REPORTS_ALL)


@attachment_kind("report")
def report_attachment(report_id, recipients: list[str]) -> Attachment:
    """The file of report ``report_id``, if it is ready, small enough and every recipient may see it."""
    if not isinstance(report_id, int) or isinstance(report_id, bool) or not 0 < report_id < 2**31:
        raise AttachmentRefused(f"a report attachment is named by its id, got {report_id!r}")
    report = db.session.get(Report, report_id)
    if report is None or report.state != READY:
        raise AttachmentMissing(f"report #{report_id} is not ready or no longer exists")
    refused = [address for address in recipients
               if not isinstance(address, str) or not may_receive(address, report)]
    if refused:
        raise AttachmentRefused(f"report #{report_id} may not be sent to {', '.join(map(str, refused))}")
    if not attachable(report):
        raise AttachmentRefused(f"report #{report_id} is larger than REPORTS_ATTACH_MAX_BYTES")
    path = storage.file_path(report.user_id, report.token, report.format)
    if not os.path.isfile(path):
        raise AttachmentMissing(f"the file of report #{report_id} no longer exists")
    return Attachment(path=path, filename=download_name(report),
                      content_type=storage.FORMATS[report.format][1])


def send_ready_email(report: Report) -> str:
    """Enqueue the email for a finished report (joins the caller's transaction); returns the job id."""
    files = attachments(report)
    body = render_template("mail/report_ready.txt", report=report, link=download_link(report),
                           attached=bool(files), filename=download_name(report),
                           retention_days=current_app.config["REPORTS_RETENTION_DAYS"])
    return send_later(message_key(report), [report.user.email], f"Your report is ready: {report.title}", body,
                      files)
