"""Outgoing mail: the ``email.send`` job, SMTP from ``MAIL_URL`` or the development outbox.

    from app.mail import send_later
    send_later("report-7-ready", ["ann@example.com"], "Your report is ready", body,
               attachments=[{"report": 7}])

``init_app(app)`` checks ``MAIL_URL`` (a malformed URL fails at start, not at the first
message) and registers the job, so web and worker processes both know it.
"""
from __future__ import annotations

from flask import Flask

from app.mail import jobs  # noqa: F401  (register the email.send job)
from app.mail.jobs import send_later
from app.mail.transport import parse_mail_url

__all__ = ["init_app", "send_later"]


def init_app(app: Flask) -> None:
    """Validate the mail configuration of ``app``."""
    if app.config.get("MAIL_URL"):
        parse_mail_url(app.config["MAIL_URL"])
