"""The dashboard's write side: every action a person takes, validated and audited.

The HTML pages and the JSON API both call these functions; each records one audit
entry (``tasks.audit.record_audit``) naming the user, the action and its jobs or filter.
Job actions come from the engine's registry (``tasks.actions``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import current_app
from flask_login import current_user

from admin.dashboard.formats import plural
from admin.dashboard.lists import is_job_id
from tasks import actions, commands, transport_error
from tasks.actions import JobAction, RecurringAction
from tasks.audit import record_audit
from tasks.queries import JobFilter
from tasks.tenancy import current_scope


class ActionError(ValueError):
    """An action the dashboard refuses (unknown action, nothing selected, nothing matches)."""


def acting_user() -> str | None:
    """The signed-in user's name (None when a custom filter let an anonymous caller in)."""
    return current_user.username if getattr(current_user, "is_authenticated", False) else None


# --- on selected jobs ------------------------------------------------------------------------

@dataclass
class ActionOutcome:
    """What an action on selected jobs did."""

    action: JobAction
    requested: list[str]
    changed: list[str]

    def message(self) -> str:
        """``Retried 2 of 3 jobs. 1 was not in a state this action applies to.``"""
        done, asked = len(self.changed), len(self.requested)
        text = f"{self.action.done} {done} of {plural(asked)}." if done != asked else \
            f"{self.action.done} {plural(done)}."
        skipped = asked - done
        if skipped:
            text += f" {skipped} {'was' if skipped == 1 else 'were'} not in a state this action applies to."
        return text

    def as_json(self) -> dict:
        """The JSON API's answer."""
        return {"action": self.action.name, "requested": self.requested, "changed": self.changed,
                "message": self.message()}


def known_action(name: str, bulk: bool = False) -> JobAction:
    """The registry's action called ``name``; ``ActionError`` for anything else."""
    try:
        return actions.job_action(name, bulk=bulk)
    except actions.UnknownAction as exc:
        raise ActionError(str(exc)) from None


def act_on_jobs(name: str, job_ids: Sequence[str]) -> ActionOutcome:
    """Run action ``name`` on the given jobs now (audited)."""
    action = known_action(name)
    ids = list(dict.fromkeys(job_id for job_id in map(str, job_ids) if is_job_id(job_id)))
    if not ids:
        raise ActionError("Select at least one job.")
    return ActionOutcome(action, ids, actions.perform(action.name, ids, by=acting_user()))


# --- on everything a filter matches ----------------------------------------------------------

def bulk_message(started: actions.BulkStarted) -> str:
    """``Started: 100,000 jobs will be retried in the background (bulk job …).``"""
    return (f"Started “{started.action.label}” on {plural(started.estimate, capped=started.capped)} "
            f"in the background (bulk job {started.job_id}).")


def bulk_json(started: actions.BulkStarted) -> dict:
    """The JSON API's answer to a bulk action."""
    return {"action": started.action.name, "bulk_job_id": started.job_id, "estimate": started.estimate,
            "estimate_capped": started.capped, "message": bulk_message(started)}


def act_on_filter(name: str, job_filter: JobFilter) -> actions.BulkStarted:
    """Start action ``name`` on every job matching ``job_filter`` in a background job (audited)."""
    action = known_action(name, bulk=True)
    try:
        return actions.start_bulk(action.name, job_filter, by=acting_user())
    except actions.NothingMatches as exc:
        raise ActionError(str(exc)) from None


# --- recurring jobs --------------------------------------------------------------------------

MAX_RECURRING_ID = 100


class UnknownRecurring(LookupError):
    """No recurring job has the id an action named."""


@dataclass
class RecurringOutcome:
    """What an action on recurring jobs did (``done``: id → the run a trigger started, or None)."""

    action: RecurringAction
    requested: list[str]
    done: dict[str, str | None]

    def message(self) -> str:
        """``Triggered recurring job “nightly” (job …).`` or ``Disabled 3 recurring jobs.``"""
        if len(self.requested) == 1 and self.done:
            [(recurring_id, job_id)] = self.done.items()
            text = f"{self.action.done} recurring job “{recurring_id}”"
            return text + (f" (job {job_id})." if job_id else ".")
        text = f"{self.action.done} {plural(len(self.done), 'recurring job')}."
        missing = len(self.requested) - len(self.done)
        if missing:
            text += f" {missing} no longer {'exists' if missing == 1 else 'exist'}."
        return text

    def as_json(self) -> dict:
        """The JSON API's answer (``id``/``job_id`` for one recurring job)."""
        answer = {"action": self.action.name, "requested": self.requested, "done": self.done,
                  "message": self.message()}
        if len(self.requested) == 1:
            answer |= {"id": self.requested[0], "job_id": self.done.get(self.requested[0])}
        return answer


def act_on_recurring(name: str, recurring_ids: Sequence[str]) -> RecurringOutcome:
    """Trigger, enable, disable or delete recurring jobs (audited).

    ``ActionError`` for an unknown action or an empty selection; ``UnknownRecurring`` when none exists.
    """
    try:
        action = actions.recurring_action(name)
    except actions.UnknownAction as exc:
        raise ActionError(str(exc)) from None
    ids = list(dict.fromkeys(str(rid)[:MAX_RECURRING_ID] for rid in recurring_ids if rid))
    if not ids:
        raise ActionError("Select at least one recurring job.")
    done = actions.perform_recurring(action.name, ids, by=acting_user())
    if not done:
        raise UnknownRecurring(f"No recurring job is called “{ids[0]}”." if len(ids) == 1
                               else "None of the selected recurring jobs exists any more.")
    return RecurringOutcome(action, ids, done)


# --- queues ----------------------------------------------------------------------------------

def set_queue_paused(name: str, paused: bool) -> str:
    """Pause or resume queue ``name``, audit it, and return a message for the person."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ActionError("A queue name has 1 to 64 characters.")
    if current_scope() is not None:
        raise ActionError("Queues are shared by every tenant: only the host pauses and resumes them.")
    try:
        (commands.pause_queue if paused else commands.resume_queue)(name, by=acting_user())
    except Exception as exc:  # noqa: BLE001 - only the transport knows paused queues
        if transport_error(current_app) is None:
            raise
        raise ActionError("The job transport is unavailable, so queues can't be paused or resumed now.") \
            from exc
    record_audit(acting_user(), "pause-queue" if paused else "resume-queue", job_filter={"queue": name},
                 count=0)
    return f"Queue “{name}” {'paused: workers stop fetching from it' if paused else 'resumed'}."
