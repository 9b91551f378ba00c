"""Enqueue a registered job from the dashboard: the form, its checks, and the enqueue itself.

The form shows one field per parameter of the chosen job (typed from its annotations, with its
help as plain text); the JSON API's ``POST /jobs`` sends ``args``/``kwargs``. Either way every
value is checked against the job's annotations and each problem is named by its field. Jobs
registered as internal (``@job(internal=True)``: the engine's own jobs, email, report builds) are
neither offered nor accepted.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tasks
from admin.dashboard.actions import acting_user
from admin.dashboard.parameters import Parameter, parameters, type_problems
from tasks.registry import REGISTRY, JobDefinition, UnknownTask
from tasks.audit import record_audit
from tasks.codec import ArgumentError

MAX_DELAY_SECONDS = 366 * 86400
#: form fields holding one parameter each are named ``arg.<parameter>``; errors use the same keys
FIELD_PREFIX = "arg."
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def offered(definition: JobDefinition) -> bool:
    """True for a job a person may enqueue from the dashboard: one not registered as internal."""
    return not definition.internal


def enqueueable_tasks() -> list[JobDefinition]:
    """The registered jobs a person may enqueue, by name."""
    return sorted((d for d in REGISTRY.values() if offered(d)), key=lambda d: d.name)


def task_definition(name: str) -> JobDefinition:
    """The enqueueable job called ``name``; ``UnknownTask`` otherwise (``ValueError`` when blank)."""
    if not name:
        raise ValueError("Choose a task.")
    definition = REGISTRY.get(name)
    if definition is None or not offered(definition):
        raise UnknownTask(f"No job called “{name}” can be enqueued from the dashboard.")
    return definition


@dataclass
class EnqueueForm:
    """The enqueue form's values (as typed) and, after ``submit_enqueue``, its problems per field.

    ``fields`` holds one text per parameter when the per-parameter form was posted; otherwise
    ``args``/``kwargs`` are JSON (the API, or a client posting them).
    """

    task: str = ""
    args: str = "[]"
    kwargs: str = "{}"
    queue: str = ""
    delay: str = "0"
    fields: dict[str, str] | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "EnqueueForm":
        """Values from a submitted form or a JSON body (lists and objects are accepted as they are).

        ``TypeError`` names a field a JSON body sent with the wrong type.
        """
        def text(name: str, default: str) -> str:
            """The field as typed; JSON text for values a JSON body sent as lists or objects."""
            value = data.get(name, default)
            if value is None:
                return default
            if name in ("task", "queue") and not isinstance(value, str):
                raise TypeError(f"“{name}” must be a string")
            return value if isinstance(value, str) else json.dumps(value)

        fields = {key[len(FIELD_PREFIX):]: str(value) for key, value in data.items()
                  if isinstance(key, str) and key.startswith(FIELD_PREFIX)}
        return cls(task=text("task", "").strip(), args=text("args", "[]"), kwargs=text("kwargs", "{}"),
                   queue=text("queue", "").strip(), delay=text("delay", "0").strip(),
                   fields=fields if data.get("mode") == "fields" else None)

    @property
    def error(self) -> str:
        """All problems on one line (for flash messages and JSON)."""
        return " ".join(f"{key[len(FIELD_PREFIX):]}: {message}" if key.startswith(FIELD_PREFIX) else message
                        for key, message in self.errors.items())

    def value(self, name: str) -> str:
        """What was typed for parameter ``name``."""
        return (self.fields or {}).get(name, "")


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


def field_value(parameter: Parameter, text: str) -> Any:
    """What one field's text means for ``parameter``: the text itself for a ``str``, else JSON
    (``2.5``, ``true``, ``[1, 2]``, ``{"a": 1}``, ``null``); ``ValueError`` with a message otherwise."""
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        return decode_json(text, list, "Extra arguments", "[1, 2]")
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return decode_json(text, dict, "Extra keyword arguments", '{"name": "value"}')
    if parameter.takes_text:
        return text
    if text.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[text.strip().lower()]
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"write a value such as 2.5, true, [1, 2], {{\"key\": 1}} or \"text\" "
                         f"(got {text[:40]!r})") from None


def arguments_from_fields(definition: JobDefinition, form: EnqueueForm) -> tuple[list, dict] | None:
    """``(args, kwargs)`` from the per-parameter fields, or None after noting each field's problem."""
    args: list = []
    kwargs: dict = {}
    for parameter in parameters(definition):
        text = form.value(parameter.name)
        key = FIELD_PREFIX + parameter.name
        if not text.strip() and not parameter.variadic:
            if parameter.required:
                form.errors[key] = "required"
            continue  # its default applies
        try:
            value = field_value(parameter, text)
        except ValueError as exc:
            form.errors[key] = str(exc)
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            args += value
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(value)
        else:
            kwargs[parameter.name] = value
    return None if form.errors else (args, kwargs)


def checked_call(form: EnqueueForm) -> tuple[JobDefinition, list, dict, float | None] | None:
    """The job, its arguments and delay, or None after recording each field's problem in ``form.errors``."""
    definition = arguments = delay = None
    try:
        definition = task_definition(form.task)
    except (ValueError, UnknownTask) as exc:
        form.errors["task"] = str(exc)
    try:
        delay = delay_seconds(form.delay)
    except ValueError as exc:
        form.errors["delay"] = str(exc)
    if definition is not None and form.fields is not None:
        arguments = arguments_from_fields(definition, form)
    elif definition is not None or form.fields is None:
        arguments = json_arguments(form)
    if definition is None or arguments is None or form.errors:
        return None
    for name, problem in type_problems(definition, *arguments).items():
        form.errors[FIELD_PREFIX + name] = problem
    return None if form.errors else (definition, *arguments, delay)


def json_arguments(form: EnqueueForm) -> tuple[list, dict] | None:
    """``(args, kwargs)`` from the JSON ``args``/``kwargs`` fields, or None after noting their problems."""
    values = {}
    for name, label, kind, example in (("args", "Arguments", list, '[1, "two"]'),
                                       ("kwargs", "Keyword arguments", dict, '{"name": "value"}')):
        try:
            values[name] = decode_json(getattr(form, name), kind, label, example)
        except ValueError as exc:
            form.errors[name] = str(exc)
    return (values["args"], values["kwargs"]) if len(values) == 2 else None


def submit_enqueue(form: EnqueueForm) -> str | None:
    """Validate and enqueue; returns the new job's id, or None with ``form.errors`` filled in."""
    call = checked_call(form)
    if call is None:
        return None
    definition, args, kwargs, delay = call
    try:
        job_id = tasks.enqueue(definition.name, args, kwargs, queue=form.queue or None, delay=delay)
    except (ArgumentError, TypeError, UnknownTask, ValueError) as exc:
        form.errors["call"] = str(exc)
        return None
    record_audit(acting_user(), "enqueue", job_ids=[job_id], count=1)
    return job_id
