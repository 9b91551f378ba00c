"""Huey messages as JSON: the serializer of every engine Huey instance (nothing is pickled).

A message on the wire is one JSON object holding Huey's ``Message`` fields by name plus the
engine's envelope (``queue``, ``attempt``, ``created``) and a format version::

    {"v": 2, "id": "...", "name": "demo.sleep", "eta": null, "retries": 9, "retry_delay": 0,
     "priority": 0, "args": [2], "kwargs": {}, ..., "queue": "default", "attempt": 1, "created": 1764.5}

``args`` and ``kwargs`` are plain JSON (the engine refuses anything else at enqueue). Other values
Huey puts in a message are tagged: ``{"$datetime": iso}`` (naive UTC, as Huey keeps them),
``{"$timedelta": seconds}``, ``{"$tuple": [...]}``, ``{"$message": {...}}`` (a nested message, e.g.
``on_complete``) and ``{"$error": {...}}`` (Huey's ``Error`` result).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer
from huey.utils import Error

#: Version of the wire format written now (1 was the engine's own format before Huey carried messages).
VERSION = 2

#: Keys of the envelope the engine adds beside Huey's fields (``traceparent`` and ``tenant`` only when set).
ENVELOPE = ("queue", "attempt", "created", "traceparent", "tenant")

_WIRE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def tag(value: Any) -> Any:
    """``value`` with Huey's non-JSON types (datetimes, tuples, messages) tagged as JSON objects."""
    if isinstance(value, Message):
        return {"$message": message_fields(value)}
    if isinstance(value, Error):
        return {"$error": tag(value.metadata)}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, tuple):
        return {"$tuple": [tag(item) for item in value]}
    if isinstance(value, list):
        return [tag(item) for item in value]
    if isinstance(value, dict):
        return {key: tag(item) for key, item in value.items()}
    return value


def untag(value: Any) -> Any:
    """The inverse of ``tag``."""
    if isinstance(value, list):
        return [untag(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, inner), = value.items()
        if key == "$message":
            return message_from(inner)
        if key == "$error":
            return Error(untag(inner))
        if key == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if key == "$timedelta":
            return dt.timedelta(seconds=inner)
        if key == "$tuple":
            return tuple(untag(item) for item in inner)
    return {key: untag(item) for key, item in value.items()}


def message_fields(message: Message) -> dict:
    """A ``Message`` as a JSON object: ``args``/``kwargs`` plain, every other field tagged."""
    fields = {"v": VERSION}
    for name, value in zip(Message._fields, message):
        fields[name] = (list(value) if value is not None else []) if name == "args" else \
            (value or {}) if name == "kwargs" else tag(value)
    return fields


def message_from(fields: dict) -> Message:
    """The ``Message`` a JSON object holds (fields it lacks are None, as Huey's defaults)."""
    values = {name: untag(fields.get(name)) for name in Message._fields if name not in ("args", "kwargs")}
    return Message(args=tuple(fields.get("args") or ()), kwargs=dict(fields.get("kwargs") or {}), **values)


def pack(message: Message, **envelope: Any) -> bytes:
    """Wire bytes of ``message`` with the engine's ``envelope`` (``queue``, ``attempt``, ``created``)."""
    fields = message_fields(message)
    fields.update(envelope)
    return _WIRE.encode(fields).encode()


def pack_job(job_id: str, name: str, eta: float | None, retries: int, priority: int, args: list,
             kwargs: dict, queue: str, attempt: int, created: float | None, **optional) -> bytes:
    """``pack`` of a plain job message (no callbacks, expiry or chord), without building the ``Message``.

    Written directly (enqueue encodes every message, so this is on its hot path) and without the
    fields a plain job leaves empty (``on_complete`` ... ``retry_backoff``): like Huey, ``message_from``
    reads a missing field as None, so it deserializes to the same ``Message`` as ``pack`` would give.
    ``optional`` envelope fields (``traceparent``, ``tenant``) are written only when they are not None.
    """
    return _WIRE.encode({
        "v": VERSION, "id": job_id, "name": name, "eta": None if eta is None else tag(eta_datetime(eta)),
        "retries": retries, "retry_delay": 0, "priority": priority, "args": args, "kwargs": kwargs,
        "queue": queue, "attempt": attempt, "created": created,
        **{key: value for key, value in optional.items() if value is not None}}).encode()


def unpack(raw: bytes | str) -> tuple[Message, dict]:
    """The ``Message`` and the envelope in wire bytes; ``ValueError`` unless they hold a version-2 message."""
    return unpack_body(json.loads(raw))


def unpack_body(body: Any) -> tuple[Message, dict]:
    """``unpack`` for a message already parsed from JSON."""
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    if body.get("v") != VERSION:
        raise ValueError(f"unsupported message version {body.get('v')!r}")
    return message_from(body), {key: body.get(key) for key in ENVELOPE}


def eta_datetime(epoch: float | None) -> dt.datetime | None:
    """An epoch time as Huey keeps an eta: a naive UTC datetime."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(tzinfo=None)


def eta_epoch(eta: dt.datetime | None) -> float | None:
    """A Huey eta (naive UTC, or aware) as epoch seconds."""
    if eta is None:
        return None
    return (eta if eta.tzinfo else eta.replace(tzinfo=dt.timezone.utc)).timestamp()


class JsonSerializer(Serializer):
    """Huey's serializer with JSON instead of pickle: round-trips ``Message`` and ``Error``."""

    def _serialize(self, data: Any) -> bytes:
        if isinstance(data, Message):
            return pack(data)
        return _WIRE.encode(tag(data)).encode()

    def _deserialize(self, data: bytes) -> Any:
        body = json.loads(data)
        if isinstance(body, dict) and body.get("v") == VERSION and "name" in body:
            return message_from(body)
        return untag(body)
