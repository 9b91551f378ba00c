"""JSON on the wire: job messages and argument validation.

Nothing crosses a process as pickle. A message is a Huey ``Message`` serialized as JSON by the
engine's Huey serializer (``tasks.transport.serializer``), with the engine's envelope beside
Huey's fields; Huey's ``retries`` is the attempts left after this one::

    {"v": 2, "id": "...", "name": "demo.sleep", "eta": null, "retries": 9, "priority": 0,
     "args": [...], "kwargs": {...}, ..., "queue": "default", "attempt": 1, "created": 1764...,
     "traceparent": "00-<trace id>-<span id>-01", "tenant": "acme"}

``traceparent`` (W3C trace context of the enqueue, see :mod:`tasks.tracing`) and ``tenant`` (the
tenant the job runs for) are optional: written only when set; a malformed ``traceparent`` is ignored.

Messages in the engine's earlier format (``"v": 1``) are still read, so a deploy doesn't strand
what a transport holds; anything else is a ``PoisonMessage`` the worker records as Failed.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.transport import serializer

LEGACY_VERSION = 1  # the engine's own format before messages were Huey's
TRACEPARENT_MAX = 512


class ArgumentError(TypeError):
    """An argument given at enqueue time can't be stored as JSON."""


class PoisonMessage(ValueError):
    """A message that can't be decoded into a job delivery."""

    def __init__(self, reason: str, job_id: str | None = None, raw: bytes | str | None = None):
        super().__init__(reason)
        self.reason, self.job_id, self.raw = reason, job_id, raw


def check_json(value: Any, name: str, allow_nul: bool = True) -> None:
    """Raise ``ArgumentError`` naming ``name`` unless ``value`` is plain JSON data that survives the trip.

    Plain JSON means None, bool, int, finite float, str, lists and dicts with
    string keys; tuples are accepted as lists. Strings must encode as UTF-8 (no lone
    surrogates) and, where the database refuses it (``allow_nul=False``), hold no NUL.
    Anything else would not reach a worker unchanged.
    """
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, str):
        check_text(value, name, allow_nul)
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ArgumentError(f"argument {name!r} is not JSON-serializable: {value!r} is not finite")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{name}[{index}]", allow_nul)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(f"argument {name!r} is not JSON-serializable: "
                                    f"key {key!r} is not a string")
            check_text(key, f"{name} key {key!r:.40}", allow_nul)
            check_json(item, f"{name}[{key!r}]", allow_nul)
        return
    raise ArgumentError(
        f"argument {name!r} is not JSON-serializable: {type(value).__name__} {value!r:.80}"
    )


def check_text(text: str, name: str, allow_nul: bool = True) -> None:
    """Raise ``ArgumentError`` unless ``text`` encodes as UTF-8 (and holds no NUL when refused)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(f"argument {name!r} can't be encoded as UTF-8: {exc.reason} at position "
                            f"{exc.start} ({text[exc.start:exc.end]!r})") from None
    if not allow_nul and "\x00" in text:
        raise ArgumentError(f"argument {name!r} holds a NUL character (\\x00), which the database refuses")


def check_arguments(args: tuple | list, kwargs: dict, parameter_names: list[str] | None = None,
                    allow_nul: bool = True) -> None:
    """Validate every positional and keyword argument, naming the bad one."""
    names = parameter_names or []
    for index, value in enumerate(args):
        check_json(value, names[index] if index < len(names) else f"args[{index}]", allow_nul)
    for key, value in kwargs.items():
        if not isinstance(key, str):
            raise ArgumentError(f"keyword argument names must be strings, got {key!r:.40}")
        check_text(key, f"keyword {key!r:.40}", allow_nul)
        check_json(value, key, allow_nul)


def encode_arguments(args: list, kwargs: dict, max_bytes: int) -> tuple[str, str]:
    """``args`` and ``kwargs`` as JSON text; ``ArgumentError`` naming the limit when larger than
    ``max_bytes``."""
    encoded = json.dumps(args), json.dumps(kwargs)
    size = len(encoded[0]) + len(encoded[1])
    if size > max_bytes:
        raise ArgumentError(f"arguments are {size:,} bytes as JSON, over the limit of {max_bytes:,} bytes "
                            f"(JOBS_MAX_ARGS_BYTES)")
    return encoded


@dataclass
class Delivery:
    """One job message as a worker receives it."""

    id: str
    task: str
    queue: str = "default"
    priority: int = 0
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    attempt: int = 1
    max_attempts: int = 10
    eta: float | None = None  # epoch seconds, or None when due now
    created: float | None = None  # epoch seconds when (re)queued, for latency
    traceparent: str | None = None  # W3C trace context of the enqueue (only while tracing)
    tenant: str | None = None  # the tenant the job runs for (None: the host)

    def encode(self) -> bytes:
        """The wire form of this message: a Huey ``Message`` as JSON, with the engine's envelope."""
        retries = self.max_attempts - self.attempt
        return serializer.pack_job(self.id, self.task, self.eta, retries if retries > 0 else 0, self.priority,
                                   self.args, self.kwargs, self.queue, self.attempt, self.created,
                                   traceparent=self.traceparent or None, tenant=self.tenant)

    def next_attempt(self, eta: float | None = None) -> "Delivery":
        """The same job, one attempt later, due at ``eta``."""
        return Delivery(**{**asdict(self), "attempt": self.attempt + 1, "eta": eta, "created": time.time()})


def decode(raw: bytes | str, job_id: str | None = None) -> Delivery:
    """Parse a wire message; raise ``PoisonMessage`` with a clear reason if it is bad."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"undecodable message: {exc}", job_id, raw) from None
    if not isinstance(body, dict):
        raise PoisonMessage("undecodable message: not a JSON object", job_id, raw)
    job_id = body.get("id") if isinstance(body.get("id"), str) else job_id
    if body.get("v") == LEGACY_VERSION:
        delivery = legacy_delivery(body, job_id, raw)
    else:
        delivery = huey_delivery(body, job_id, raw)
    if not (isinstance(delivery.task, str) and isinstance(delivery.args, list)
            and isinstance(delivery.kwargs, dict) and isinstance(delivery.attempt, int)
            and isinstance(delivery.tenant, (str, type(None)))):
        raise PoisonMessage("malformed message: wrong field types", job_id, raw)
    if not (isinstance(delivery.traceparent, str) and len(delivery.traceparent) <= TRACEPARENT_MAX):
        delivery.traceparent = None  # tracing context is a hint: a bad one never fails the job
    return delivery


def huey_delivery(body: dict, job_id: str | None, raw: bytes | str) -> Delivery:
    """The delivery a Huey message (wire version 2, parsed as ``body``) carries; ``PoisonMessage`` if none."""
    if not (isinstance(body.get("args", []), list) and isinstance(body.get("kwargs", {}), dict)
            and isinstance(body.get("retries") or 0, int) and isinstance(body.get("attempt") or 1, int)):
        raise PoisonMessage("malformed message: wrong field types", job_id, raw)
    try:  # read the fields straight from the JSON: every fetched job goes through here
        attempt = body.get("attempt") or 1
        eta = body.get("eta")
        return Delivery(body["id"], body["name"], body.get("queue") or "default", body.get("priority") or 0,
                        body.get("args", []), body.get("kwargs", {}), attempt,
                        attempt + (body.get("retries") or 0),
                        None if eta is None else serializer.eta_epoch(serializer.untag(eta)),
                        body.get("created"), body.get("traceparent"), body.get("tenant"))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise PoisonMessage(f"malformed message: {exc}", job_id, raw) from None


def legacy_delivery(body: dict, job_id: str | None, raw: bytes | str) -> Delivery:
    """The delivery in a message of the engine's earlier format (``"v": 1``)."""
    try:
        return Delivery(**{k: v for k, v in body.items() if k != "v"})
    except TypeError as exc:
        raise PoisonMessage(f"malformed message: {exc}", job_id, raw) from None


def delivery_from_row(row, attempt: int, eta: float | None) -> Delivery:
    """A message for a ledger row (id, task, queue, priority, args, kwargs, max_attempts).

    Raises ``PoisonMessage`` when the row's arguments aren't JSON of the right shape or
    can't be encoded (e.g. written by hand, or before enqueue refused them): the caller
    records that job as Failed and carries on with the others.
    """
    try:
        args, kwargs = json.loads(row.args), json.loads(row.kwargs)
    except (TypeError, ValueError) as exc:
        raise PoisonMessage(f"arguments in the ledger are not valid JSON: {exc}", row.id) from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise PoisonMessage("arguments in the ledger are not a JSON list and object", row.id)
    delivery = Delivery(row.id, row.task, row.queue, row.priority, args, kwargs, attempt,
                        max(row.max_attempts, attempt), eta, time.time(), getattr(row, "tenant", None))
    try:
        check_arguments(args, kwargs)  # what enqueue would refuse can't be sent either
    except ArgumentError as exc:
        raise PoisonMessage(f"arguments in the ledger can't be sent: {exc}", row.id) from None
    return delivery
