"""The dashboard's write side: every action a person takes, validated and audited.

The HTML pages and the JSON API both call these functions; each records one audit
entry (``tasks.commands.record_audit``) naming the user, the action and its jobs or filter.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_login import current_user

import tasks
from tasks import commands, queries, recurring
from tasks.api import REGISTRY, JobDefinition, UnknownTask
from tasks.codec import ArgumentError
from tasks.queries import JobFilter

COMMANDS: dict[str, Callable[..., list[str]]] = {
    "requeue": commands.requeue, "trigger": commands.trigger, "delete": commands.delete,
    "cancel": commands.cancel,
}
DONE = {"requeue": "Requeued", "trigger": "Enqueued", "delete": "Deleted", "cancel": "Cancelled"}
#: actions that apply to selected jobs only (no background job runs them on a whole filter)
SELECTED_ONLY = frozenset({"cancel"})
#: how far a bulk action's "N jobs will be processed" estimate counts before saying "N+"
BULK_ESTIMATE_CAP = 1_000_000
MAX_DELAY_SECONDS = 366 * 86400
SYSTEM_JOB_MODULE = "tasks.system"


class ActionError(ValueError):
    """An action the dashboard refuses (unknown action, nothing selected, nothing matches)."""


def acting_user() -> str | None:
    """The signed-in user's name (None when a custom filter let an anonymous caller in)."""
    return current_user.username if getattr(current_user, "is_authenticated", False) else None


def command_for(action: str) -> Callable[..., list[str]]:
    """The engine command called ``action``; ``ActionError`` for anything else."""
    if action not in COMMANDS:
        raise ActionError(f"Unknown action {action!r}; one of {', '.join(COMMANDS)}.")
    return COMMANDS[action]


# --- on selected jobs ------------------------------------------------------------------------

@dataclass
class ActionOutcome:
    """What an action on selected jobs did."""

    action: str
    requested: list[str]
    changed: list[str]

    def message(self) -> str:
        """``Requeued 2 of 3 jobs; 1 was not in a state this action applies to.``"""
        done, asked = len(self.changed), len(self.requested)
        noun = "job" if asked == 1 else "jobs"
        text = f"{DONE[self.action]} {done} of {asked} {noun}." if done != asked else \
            f"{DONE[self.action]} {done} {noun}."
        skipped = asked - done
        if skipped:
            text += f" {skipped} {'was' if skipped == 1 else 'were'} not in a state this action applies to."
        return text

    def as_json(self) -> dict:
        """The JSON API's answer."""
        return {"action": self.action, "requested": self.requested, "changed": self.changed,
                "message": self.message()}


def act_on_jobs(action: str, job_ids: Sequence[str]) -> ActionOutcome:
    """Run ``action`` on the given jobs now and audit it."""
    command = command_for(action)
    ids = list(dict.fromkeys(str(job_id)[:64] for job_id in job_ids if job_id))
    if not ids:
        raise ActionError("Select at least one job.")
    changed = command(ids, by=acting_user())
    commands.record_audit(acting_user(), action, job_ids=ids, count=len(changed))
    return ActionOutcome(action, ids, changed)


# --- on everything a filter matches ----------------------------------------------------------

@dataclass
class BulkStarted:
    """A bulk action handed to a background job."""

    action: str
    job_id: str
    estimate: int
    capped: bool

    def message(self) -> str:
        """``Started: 100,000 jobs will be processed in the background (job …).``"""
        count = f"{self.estimate:,}{'+' if self.capped else ''}"
        noun = "job" if self.estimate == 1 and not self.capped else "jobs"
        return (f"Started: {count} {noun} will be processed in the background "
                f"({self.action}, bulk job {self.job_id}).")

    def as_json(self) -> dict:
        """The JSON API's answer."""
        return {"action": self.action, "bulk_job_id": self.job_id, "estimate": self.estimate,
                "estimate_capped": self.capped, "message": self.message()}


def act_on_filter(action: str, job_filter: JobFilter) -> BulkStarted:
    """Start ``action`` on every job matching ``job_filter`` as a background job, and audit it."""
    command_for(action)
    if action in SELECTED_ONLY:
        raise ActionError(f"“{action}” applies to selected jobs only, not to everything matching a filter.")
    estimate, capped = queries.count_jobs(job_filter, cap=BULK_ESTIMATE_CAP)
    if not estimate:
        raise ActionError("No job matches this filter; nothing to do.")
    job_id = commands.start_bulk(action, job_filter, by=acting_user())
    commands.record_audit(acting_user(), f"{action} all matching", job_ids=[job_id],
                          job_filter=job_filter.to_dict(), count=estimate)
    return BulkStarted(action, job_id, estimate, capped)


# --- recurring jobs --------------------------------------------------------------------------

RECURRING_ACTIONS = ("trigger", "enable", "disable", "delete")
RECURRING_DONE = {"trigger": "Triggered", "enable": "Enabled", "disable": "Disabled", "delete": "Deleted"}
MAX_RECURRING_ID = 100


class UnknownRecurring(LookupError):
    """No recurring job has the id an action named."""


@dataclass
class RecurringOutcome:
    """What an action on a recurring job did (``job_id``: the run a trigger enqueued)."""

    action: str
    recurring_id: str
    job_id: str | None = None

    def message(self) -> str:
        """``Triggered recurring job “nightly” (job …).``"""
        text = f"{RECURRING_DONE[self.action]} recurring job “{self.recurring_id}”"
        return text + (f" (job {self.job_id})." if self.job_id else ".")

    def as_json(self) -> dict:
        """The JSON API's answer."""
        return {"action": self.action, "id": self.recurring_id, "job_id": self.job_id,
                "message": self.message()}


def apply_recurring(action: str, recurring_id: str) -> tuple[bool, str | None]:
    """Run ``action`` on the recurring job; (found, id of the run a trigger enqueued)."""
    if action == "trigger":
        job_id = recurring.trigger(recurring_id, by=acting_user())
        return job_id is not None, job_id
    if action == "delete":
        return recurring.remove(recurring_id), None
    return recurring.set_enabled(recurring_id, action == "enable"), None


def act_on_recurring(action: str, recurring_id: str) -> RecurringOutcome:
    """Trigger, enable, disable or delete a recurring job, and audit it.

    ``ActionError`` for an unknown action, ``UnknownRecurring`` for an unknown id.
    """
    if action not in RECURRING_ACTIONS:
        raise ActionError(f"Unknown action {action!r}; one of {', '.join(RECURRING_ACTIONS)}.")
    recurring_id = str(recurring_id)[:MAX_RECURRING_ID]
    found, job_id = apply_recurring(action, recurring_id)
    if not found:
        raise UnknownRecurring(f"No recurring job is called “{recurring_id}”.")
    commands.record_audit(acting_user(), f"recurring-{action}", job_ids=[job_id] if job_id else [],
                          job_filter={"recurring_id": recurring_id}, count=1 if job_id else 0)
    return RecurringOutcome(action, recurring_id, job_id)


# --- queues ----------------------------------------------------------------------------------

def set_queue_paused(name: str, paused: bool) -> str:
    """Pause or resume queue ``name``, audit it, and return a message for the person."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ActionError("A queue name has 1 to 64 characters.")
    (commands.pause_queue if paused else commands.resume_queue)(name, by=acting_user())
    action = "pause queue" if paused else "resume queue"
    commands.record_audit(acting_user(), action, job_filter={"queue": name}, count=0)
    return f"Queue “{name}” {'paused: workers stop fetching from it' if paused else 'resumed'}."


# --- enqueue a new job -----------------------------------------------------------------------

def enqueueable_tasks() -> list[JobDefinition]:
    """The registered jobs a person may enqueue (the engine's own system jobs are left out)."""
    offered = (d for d in REGISTRY.values() if d.func.__module__ != SYSTEM_JOB_MODULE)
    return sorted(offered, key=lambda d: d.name)


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
    commands.record_audit(acting_user(), "enqueue", job_ids=[job_id], count=1)
    return job_id
