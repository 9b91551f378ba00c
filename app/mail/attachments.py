"""Attachments are named by what they are (``{"report": 7}``), never by a file path.

``email.send`` receives its attachments as JSON job arguments, which anyone able to enqueue
a job could write. So an attachment names a *kind* and an id; the feature owning that kind
registers a resolver that finds the file, checks that every recipient may see it, and
says how to name it. Nothing else can be attached.

    @attachment_kind("report")
    def report_attachment(report_id, recipients) -> Attachment: ...
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class AttachmentError(ValueError):
    """An attachment that can't be sent; retrying the email won't change that."""


class AttachmentMissing(AttachmentError, LookupError):
    """The thing to attach is gone (expired or deleted)."""


class AttachmentRefused(AttachmentError):
    """The attachment is malformed, unknown, too large, or a recipient may not see it."""


@dataclass(frozen=True)
class Attachment:
    """A file to attach: where it is, and how the recipient sees it."""

    path: str
    filename: str
    content_type: str


Resolver = Callable[[Any, list[str]], Attachment]
KINDS: dict[str, Resolver] = {}


def attachment_kind(name: str) -> Callable[[Resolver], Resolver]:
    """Register ``resolver(ref, recipients) -> Attachment`` for attachments ``{name: ref}``."""

    def register(resolver: Resolver) -> Resolver:
        KINDS[name] = resolver
        return resolver

    return register


def resolve(spec: Any, recipients: list[str]) -> Attachment:
    """The file ``spec`` (``{"<kind>": <id>}``) names, authorized for every recipient."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise AttachmentRefused(f'an attachment is one {{"<kind>": <id>}} pair, e.g. {{"report": 7}}; '
                                f'got {spec!r}')
    [(kind, ref)] = spec.items()
    resolver = KINDS.get(kind)
    if resolver is None:
        known = ", ".join(sorted(KINDS)) or "none"
        raise AttachmentRefused(f"unknown attachment kind {kind!r} (known: {known})")
    return resolver(ref, list(recipients))
