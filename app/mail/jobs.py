"""The ``email.send`` job: compose and deliver one message, once per message key.

Delivery is retried with the default policy (10 attempts, Hangfire backoff) until the
SMTP server accepts it. A re-run of a job that already sent (redelivery after a lost
worker, a requeue from the dashboard) is skipped by ``once(f"email:{key}")``; if a crash
falls between the SMTP ``250 OK`` and that record, the re-sent copy carries the same
Message-ID, so mail clients show one message.
"""
from __future__ import annotations

import os
import smtplib

from flask import current_app
from sqlalchemy import func, select

from app.extensions import db
from app.mail.attachments import AttachmentError, resolve
from app.mail.message import check_key, compose
from app.mail.transport import transport_for
from app.models import Tenant, User
from tasks import JobContext, PermanentError, job, once


def outbox_dir() -> str:
    """Where the outbox transport writes (``instance/outbox``)."""
    return os.path.join(current_app.instance_path, "outbox")


class MessageRefused(PermanentError):
    """An attachment or address that can't ever be sent: the job fails at once, without retries."""


@job(name="email.send", queue="email", display_name="Email {0}", internal=True)
def send_email(message_key: str, to: list[str], subject: str, body: str,
               attachments: list[dict] | None = None, context: JobContext | None = None) -> dict:
    """Send one message to ``to`` (retried until accepted; sent once per ``message_key``).

    ``attachments`` name what to attach (``{"report": 7}``), checked against every recipient.
    """
    check_key(message_key)
    check_recipients(list(to), context.tenant if context is not None else None)
    config = current_app.config
    try:
        files = [resolve(spec, list(to)) for spec in attachments or []]
    except AttachmentError as exc:  # a refused or missing attachment won't come back
        raise MessageRefused(str(exc)) from exc
    message = compose(message_key, config["MAIL_FROM"], list(to), subject, body, files)
    transport = transport_for(config.get("MAIL_URL"), outbox_dir())

    def deliver() -> dict:
        """Hand the message to the transport and describe the delivery."""
        try:
            outcome = transport.send(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            if permanent_refusal(exc):  # 5xx: the address is refused for good; 4xx is retried
                raise MessageRefused(f"the mail server refused the message: {exc}") from exc
            raise
        if context is not None:
            context.logger.info("delivered %s to %s via %s", message["Message-ID"], ", ".join(to),
                                outcome["transport"])
        return {**outcome, "message_id": message["Message-ID"]}

    return once(f"email:{message_key}", deliver)


def check_recipients(to: list, tenant: str | None) -> None:
    """A tenant's email goes only to that tenant's active users: ``MessageRefused`` (permanent) naming
    any other address. The host's email may go anywhere."""
    if tenant is None:
        return
    addresses = [address.strip().lower() for address in to if isinstance(address, str)]
    known = set(db.session.scalars(
        select(func.lower(User.email)).join(Tenant, User.tenant_id == Tenant.id)
        .where(Tenant.name == tenant, Tenant.active.is_(True), User.active.is_(True),
               func.lower(User.email).in_(addresses))))
    strangers = [address for address in to
                 if not isinstance(address, str) or address.strip().lower() not in known]
    if strangers:
        raise MessageRefused(f"tenant {tenant}'s email goes only to its own users, not to "
                             f"{', '.join(map(str, strangers))}")


def permanent_refusal(exc: smtplib.SMTPException) -> bool:
    """True when every refusal in ``exc`` is permanent (an SMTP 5xx code)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return getattr(exc, "smtp_code", 0) >= 500


def send_later(message_key: str, to: list[str], subject: str, body: str,
               attachments: list[dict] | None = None) -> str:
    """Enqueue ``email.send`` (after the current transaction commits, if it has writes); returns its id."""
    return send_email.enqueue(check_key(message_key), list(to), subject, body, attachments or [])
