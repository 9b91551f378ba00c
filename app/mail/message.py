"""Compose messages: a stable Message-ID from the message key, text body, file attachments.

Attachments arrive resolved (:mod:`app.mail.attachments`): job arguments name what to
attach (``{"report": 7}``), never a path.
"""
from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from app.mail.attachments import Attachment, AttachmentMissing

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")


def check_key(message_key: str) -> str:
    """``message_key`` when it is a safe token (letters, digits, ``._-``); ValueError otherwise."""
    if not isinstance(message_key, str) or not KEY_RE.match(message_key):
        raise ValueError(f"message key must be 1-151 characters of letters, digits, '.', '_' or '-': "
                         f"{message_key!r}")
    return message_key


def mail_domain(sender: str) -> str:
    """The domain of ``sender`` (``jobs@example.com`` → ``example.com``), ``localhost`` if none."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return re.sub(r"[^A-Za-z0-9.-]", "", domain) or "localhost"


def message_id(message_key: str, sender: str) -> str:
    """``<message_key@domain>``: the same for every attempt at sending the same message."""
    return f"<{check_key(message_key)}@{mail_domain(sender)}>"


def attach(message: EmailMessage, attachment: Attachment) -> None:
    """Attach the file of ``attachment`` under its name."""
    maintype, _, subtype = attachment.content_type.partition("/")
    try:
        with open(attachment.path, "rb") as fh:
            content = fh.read()
    except FileNotFoundError:
        raise AttachmentMissing(f"{attachment.filename} no longer exists") from None
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=attachment.filename)


def compose(message_key: str, sender: str, to: list[str], subject: str, body: str,
            attachments: list[Attachment]) -> EmailMessage:
    """The full message, with a Message-ID derived from ``message_key``."""
    message = EmailMessage()
    message["Message-ID"] = message_id(message_key, sender)
    message["Date"] = formatdate(usegmt=True)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    for attachment in attachments:
        attach(message, attachment)
    return message
