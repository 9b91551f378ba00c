"""Enqueue a registered job from the dashboard: the form, its checks, and the enqueue itself.

The form (and the JSON API's ``POST /jobs``) offers only jobs a person may start: not the
engine's own system jobs, nor jobs registered as internal.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tasks
from admin.dashboard.actions import acting_user
from tasks.api import REGISTRY, JobDefinition, UnknownTask
from tasks.audit import record_audit
from tasks.codec import ArgumentError

MAX_DELAY_SECONDS = 366 * 86400
SYSTEM_JOB_MODULE = "tasks.system"


def offered(definition: JobDefinition) -> bool:
    """True for a job a person may enqueue: not an engine system job, not registered as internal."""
    return definition.func.__module__ != SYSTEM_JOB_MODULE and not getattr(definition, "internal", False)


def enqueueable_tasks() -> list[JobDefinition]:
    """The registered jobs a person may enqueue, by name."""
    return sorted((d for d in REGISTRY.values() if offered(d)), key=lambda d: d.name)


def task_definition(name: str) -> JobDefinition:
    """The enqueueable job called ``name``; ``UnknownTask`` otherwise (``ValueError`` when blank)."""
    if not name:
        raise ValueError("Choose a task.")
    for definition in enqueueable_tasks():
        if definition.name == name:
            return definition
    raise UnknownTask(f"No job called “{name}” can be enqueued from the dashboard.")


@dataclass
class EnqueueForm:
    """The enqueue form's values (as typed) and, after ``validate``, its problems per field."""

    task: str = ""
    args: str = "[]"
    kwargs: str = "{}"
    queue: str = ""
    delay: str = "0"
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "EnqueueForm":
        """Values from a submitted form or a JSON body (lists and objects are accepted as they are)."""
        def text(name: str, default: str) -> str:
            """The field as typed; JSON text for values a JSON body sent as lists or objects."""
            value = data.get(name, default)
            if value is None:
                return default
            return value if isinstance(value, str) else json.dumps(value)

        return cls(task=text("task", "").strip(), args=text("args", "[]"), kwargs=text("kwargs", "{}"),
                   queue=text("queue", "").strip(), delay=text("delay", "0").strip())

    @property
    def error(self) -> str:
        """All problems on one line (for flash messages and JSON)."""
        return " ".join(self.errors.values())


def decode_json(text: str, expected: type, label: str, example: str) -> Any:
    """``text`` decoded as a JSON ``expected`` (list or object); ``ValueError`` naming ``label`` otherwise."""
    try:
        value = json.loads(text.strip() or ("[]" if expected is list else "{}"))
    except ValueError as exc:
        raise ValueError(f"{label}: not valid JSON ({exc}).") from None
    if not isinstance(value, expected):
        kind = "list" if expected is list else "object"
        raise ValueError(f"{label} must be a JSON {kind}, e.g. {example}.")
    return value


def delay_seconds(text: str) -> float | None:
    """The delay in seconds (None for none); ``ValueError`` when it isn't 0 to a year."""
    try:
        seconds = float(text or 0)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= MAX_DELAY_SECONDS or seconds != seconds:
        raise ValueError(f"Delay must be a number of seconds from 0 to {MAX_DELAY_SECONDS:,}.")
    return seconds or None


def checked_fields(form: EnqueueForm) -> dict[str, Any] | None:
    """The form's decoded values, or None after recording each field's problem in ``form.errors``."""
    values: dict[str, Any] = {}
    checks = {
        "task": lambda: task_definition(form.task),
        "args": lambda: decode_json(form.args, list, "Arguments", '[1, "two"]'),
        "kwargs": lambda: decode_json(form.kwargs, dict, "Keyword arguments", '{"name": "value"}'),
        "delay": lambda: delay_seconds(form.delay),
    }
    for name, check in checks.items():
        try:
            values[name] = check()
        except (ValueError, UnknownTask) as exc:
            form.errors[name] = str(exc)
    return None if form.errors else values


def submit_enqueue(form: EnqueueForm) -> str | None:
    """Validate and enqueue; returns the new job's id, or None with ``form.errors`` filled in."""
    values = checked_fields(form)
    if values is None:
        return None
    definition = values["task"]
    try:
        job_id = tasks.enqueue(definition.name, values["args"], values["kwargs"], queue=form.queue or None,
                               delay=values["delay"])
    except (ArgumentError, TypeError, UnknownTask, ValueError) as exc:
        form.errors["call"] = str(exc)
        return None
    record_audit(acting_user(), "enqueue", job_ids=[job_id], count=1)
    return job_id
