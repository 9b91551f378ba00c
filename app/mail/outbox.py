"""The development outbox: messages written as ``.eml`` files to ``instance/outbox/``.

Used when ``MAIL_URL`` is unset. A message's file is named after its Message-ID, so
sending the same message twice rewrites one file instead of adding a second. The
admin "Outbox" page lists and shows these files; every name it receives is checked
against :data:`NAME_RE` and must resolve inside the folder (no path traversal).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.eml$")
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
LIST_LIMIT = 500


def file_name(message: EmailMessage) -> str:
    """``<message-id local part>.eml``, reduced to safe characters."""
    message_id = str(message.get("Message-ID") or "").strip("<> ")
    stem = UNSAFE.sub("-", message_id.split("@")[0]).strip("-.")[:140]
    if not stem:
        stem = datetime.now(timezone.utc).strftime("message-%Y%m%dT%H%M%S%f")
    return f"{stem}.eml"


def resolve(directory: str, name: str) -> str | None:
    """The path of outbox file ``name``, or None when the name is not a plain ``.eml`` name in it."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return None
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.dirname(path) != root:
        return None
    return path


class OutboxTransport:
    """Write messages to a folder instead of sending them."""

    def __init__(self, directory: str):
        self.directory = directory

    def send(self, message: EmailMessage) -> dict:
        """Write ``message`` atomically as an ``.eml`` file; returns its name."""
        os.makedirs(self.directory, exist_ok=True)
        name = file_name(message)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(message.as_bytes(policy=policy.SMTP))
            os.replace(temporary, os.path.join(self.directory, name))
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return {"transport": "outbox", "file": name}


@dataclass(frozen=True)
class OutboxEntry:
    """One message in the outbox listing."""

    name: str
    subject: str
    to: str
    sender: str
    size: int
    written_at: datetime


@dataclass(frozen=True)
class Attachment:
    """An attachment of a shown message (never served, only described)."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ShownMessage:
    """What the admin page shows of one message: headers, text parts, attachments."""

    name: str
    headers: list[tuple[str, str]]
    bodies: list[tuple[str, str]]
    attachments: list[Attachment]

    @property
    def subject(self) -> str:
        """The Subject header, or an empty string."""
        return next((value for name, value in self.headers if name.lower() == "subject"), "")


def parse(path: str) -> EmailMessage:
    """The message stored at ``path``."""
    with open(path, "rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def entry(directory: str, name: str) -> OutboxEntry | None:
    """The listing row of file ``name``, or None when it vanished or isn't a message."""
    path = resolve(directory, name)
    if path is None or not os.path.isfile(path):
        return None
    stat = os.stat(path)
    message = parse(path)
    return OutboxEntry(name, str(message.get("Subject", "")), str(message.get("To", "")),
                       str(message.get("From", "")), stat.st_size,
                       datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None))


def list_messages(directory: str, limit: int = LIST_LIMIT) -> list[OutboxEntry]:
    """The newest ``limit`` messages, newest first."""
    if not os.path.isdir(directory):
        return []
    names = [n for n in os.listdir(directory) if NAME_RE.match(n)]
    names.sort(key=lambda n: os.path.getmtime(os.path.join(directory, n)), reverse=True)
    return [e for e in (entry(directory, n) for n in names[:limit]) if e is not None]


def show(directory: str, name: str) -> ShownMessage | None:
    """Headers, text bodies and attachment list of message ``name``; None if there is no such file."""
    path = resolve(directory, name)
    if path is None or not os.path.isfile(path):
        return None
    message = parse(path)
    bodies, attachments = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment" or part.get_content_maintype() not in ("text",):
            payload = part.get_payload(decode=True) or b""
            attachments.append(Attachment(part.get_filename() or "(unnamed)", part.get_content_type(),
                                          len(payload)))
        else:
            bodies.append((part.get_content_type(), part.get_content()))
    return ShownMessage(name, [(k, str(v)) for k, v in message.items()], bodies, attachments)
