"""JSON on the wire: job messages, argument validation and Huey's serializer.

Nothing crosses a process as pickle. A message is a small JSON object::

    {"v": 1, "id": "...", "task": "demo.sleep", "queue": "default", "priority": 0,
     "args": [...], "kwargs": {...}, "attempt": 1, "max_attempts": 10, "eta": null}
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from huey.serializer import Serializer

VERSION = 1


class ArgumentError(TypeError):
    """An argument given at enqueue time can't be stored as JSON."""


class PoisonMessage(ValueError):
    """A message that can't be decoded into a job delivery."""

    def __init__(self, reason: str, job_id: str | None = None, raw: bytes | str | None = None):
        super().__init__(reason)
        self.reason, self.job_id, self.raw = reason, job_id, raw


def check_json(value: Any, name: str) -> None:
    """Raise ``ArgumentError`` naming ``name`` unless ``value`` is plain JSON data.

    Plain JSON means None, bool, int, finite float, str, lists and dicts with
    string keys; tuples are accepted as lists. Anything else would not survive
    the trip to a worker unchanged.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ArgumentError(f"argument {name!r} is not JSON-serializable: {value!r} is not finite")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{name}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(f"argument {name!r} is not JSON-serializable: key {key!r} is not a string")
            check_json(item, f"{name}[{key!r}]")
        return
    raise ArgumentError(
        f"argument {name!r} is not JSON-serializable: {type(value).__name__} {value!r:.80}"
    )


def check_arguments(args: tuple | list, kwargs: dict, parameter_names: list[str] | None = None) -> None:
    """Validate every positional and keyword argument, naming the bad one."""
    names = parameter_names or []
    for index, value in enumerate(args):
        check_json(value, names[index] if index < len(names) else f"args[{index}]")
    for key, value in kwargs.items():
        check_json(value, key)


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

    def encode(self) -> bytes:
        """The wire form of this message."""
        return dumps({"v": VERSION, "id": self.id, "task": self.task, "queue": self.queue,
                      "priority": self.priority, "args": self.args, "kwargs": self.kwargs,
                      "attempt": self.attempt, "max_attempts": self.max_attempts, "eta": self.eta,
                      "created": self.created})

    def next_attempt(self, eta: float | None = None) -> "Delivery":
        """The same job, one attempt later, due at ``eta``."""
        return Delivery(**{**asdict(self), "attempt": self.attempt + 1, "eta": eta, "created": time.time()})


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(raw: bytes | str, job_id: str | None = None) -> Delivery:
    """Parse a wire message; raise ``PoisonMessage`` with a clear reason if it is bad."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"undecodable message: {exc}", job_id, raw) from None
    if not isinstance(body, dict):
        raise PoisonMessage("undecodable message: not a JSON object", job_id, raw)
    job_id = body.get("id") if isinstance(body.get("id"), str) else job_id
    if body.get("v") != VERSION:
        raise PoisonMessage(f"unsupported message version {body.get('v')!r}", job_id, raw)
    try:
        delivery = Delivery(**{k: v for k, v in body.items() if k != "v"})
    except TypeError as exc:
        raise PoisonMessage(f"malformed message: {exc}", job_id, raw) from None
    if not (isinstance(delivery.task, str) and isinstance(delivery.args, list)
            and isinstance(delivery.kwargs, dict) and isinstance(delivery.attempt, int)):
        raise PoisonMessage("malformed message: wrong field types", job_id, raw)
    return delivery


class JsonSerializer(Serializer):
    """Huey's serializer with tagged JSON instead of pickle.

    Round-trips what Huey stores (its Message namedtuple, tuples, datetimes and
    error dicts) so that no Huey code path ever falls back to pickle.
    """

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(self._tag(data), separators=(",", ":")).encode()

    def _deserialize(self, data: bytes) -> Any:
        return self._untag(json.loads(data))

    def _tag(self, value: Any) -> Any:
        from huey.registry import Message

        if isinstance(value, Message):
            return {"__message__": [self._tag(v) for v in value]}
        if isinstance(value, tuple):
            return {"__tuple__": [self._tag(v) for v in value]}
        if isinstance(value, list):
            return [self._tag(v) for v in value]
        if isinstance(value, dict):
            return {"__dict__": [[self._tag(k), self._tag(v)] for k, v in value.items()]}
        if isinstance(value, dt.datetime):
            return {"__datetime__": value.isoformat()}
        return value

    def _untag(self, value: Any) -> Any:
        from huey.registry import Message

        if isinstance(value, list):
            return [self._untag(v) for v in value]
        if isinstance(value, dict):
            if "__message__" in value:
                return Message(*[self._untag(v) for v in value["__message__"]])
            if "__tuple__" in value:
                return tuple(self._untag(v) for v in value["__tuple__"])
            if "__datetime__" in value:
                return dt.datetime.fromisoformat(value["__datetime__"])
            if "__dict__" in value:
                return {self._untag(k): self._untag(v) for k, v in value["__dict__"]}
        return value
