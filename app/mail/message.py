"""Compose messages: a stable Message-ID from the message key, text body, file attachments.

Attachments are named by a path relative to the instance folder (job arguments are
JSON, so files travel by reference) and must resolve inside one of its
:data:`ATTACHABLE_FOLDERS`: an ``email.send`` enqueued by hand (dashboard, CLI) can't
attach the database or anything else in ``instance/``.
"""
from __future__ import annotations

import mimetypes
import os
import re
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
#: Folders of the instance folder whose files may be attached.
ATTACHABLE_FOLDERS = ("reports",)


class AttachmentMissing(LookupError):
    """An attachment's file is gone (expired or deleted): retrying won't bring it back."""


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


def attachment_path(instance_path: str, relative: str) -> str:
    """The absolute path of an attachment in an attachable folder; ValueError anywhere else."""
    if not isinstance(relative, str) or os.path.isabs(relative):
        raise ValueError(f"attachment path {relative!r} must be relative to the instance folder")
    path = os.path.realpath(os.path.join(instance_path, relative))
    for folder in ATTACHABLE_FOLDERS:
        root = os.path.realpath(os.path.join(instance_path, folder))
        if path != root and os.path.commonpath([root, path]) == root:
            return path
    raise ValueError(f"attachment path {relative!r} is outside {', '.join(ATTACHABLE_FOLDERS)}/")


def attach(message: EmailMessage, instance_path: str, attachment: dict) -> None:
    """Attach the file ``attachment["path"]`` as ``attachment["filename"]``."""
    path = attachment_path(instance_path, attachment["path"])
    if not os.path.isfile(path):
        raise AttachmentMissing(f"attachment {attachment['path']!r} no longer exists")
    filename = attachment.get("filename") or os.path.basename(path)
    guessed = mimetypes.guess_type(filename)[0]
    content_type = attachment.get("content_type") or guessed or "application/octet-stream"
    maintype, _, subtype = content_type.partition("/")
    with open(path, "rb") as fh:
        message.add_attachment(fh.read(), maintype=maintype, subtype=subtype, filename=filename)


def compose(message_key: str, sender: str, to: list[str], subject: str, body: str,
            attachments: list[dict], instance_path: str) -> EmailMessage:
    """The full message, with a Message-ID derived from ``message_key``."""
    message = EmailMessage()
    message["Message-ID"] = message_id(message_key, sender)
    message["Date"] = formatdate(usegmt=True)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    for attachment in attachments:
        attach(message, instance_path, attachment)
    return message
