"""The actions a person takes on jobs: one registry that every caller reads.

The dashboard's buttons, its JSON API, the background bulk job and the audit log all
look actions up here instead of keeping their own lists: the action's name (in URLs,
the API and the audit log), the label of its button, the states it applies to, whether
it may run on everything a filter matches, its confirmation question and how it reads
in the audit log. :func:`perform` runs an action on given jobs and audits it;
:func:`start_bulk` hands it to the ``jobs.bulk_action`` job for everything a filter matches.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select

from app.extensions import db
from tasks import commands, ledger, lifecycle, queries, recurring
from tasks.api import enqueue
from tasks.audit import record_audit
from tasks.ledger import Job
from tasks.queries import JobFilter
from tasks.tenancy import current_scope, scope_clauses

BULK_TASK = "jobs.bulk_action"
#: audit names of bulk actions: ``retry`` started on everything matching is ``retry-matching``
MATCHING_SUFFIX = "-matching"
#: how far a bulk action counts the jobs it will touch before saying "N+"
BULK_ESTIMATE_CAP = 1_000_000


class UnknownAction(ValueError):
    """No action has that name (or it can't run on everything matching a filter)."""


class NothingMatches(ValueError):
    """A bulk action whose filter matches no job it applies to."""


@dataclass(frozen=True)
class JobAction:
    """One thing a person can do to jobs.

    ``states``: the states it applies to (jobs in other states are skipped, never an error);
    ``bulk``: offered on everything a filter matches (run by a background job);
    ``question``: the confirmation, ``{what}`` being "this job", "3 selected jobs", …;
    ``done``: the flash message's verb ("Retried 3 jobs."); ``did``: the audit log's
    phrase, ``{jobs}`` being "3 jobs" ("olivia retried 3 jobs");
    ``tone``: ``normal``, ``caution`` or ``destructive`` (how loudly the button is drawn);
    ``shown_in``: the states whose job pages offer it (default: every state it applies to);
    ``instead_of``: a more general action this one replaces on a job's page ("Retry" for "Requeue").
    """

    name: str
    label: str
    states: frozenset[str]
    command: Callable[..., list[str]]
    question: str
    done: str
    did: str
    bulk: bool = True
    tone: str = "normal"
    shown_in: frozenset[str] | None = None
    instead_of: str | None = None

    def applies_to(self, state: str) -> bool:
        """True when a job in ``state`` is one this action changes."""
        return state in self.states

    def confirm(self, what: str) -> str:
        """The confirmation question for applying this action to ``what``."""
        return self.question.format(what=what)

    def eligible(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` whose job is in a state this action applies to (in the given order)."""
        found: set[str] = set()
        for part in ledger.chunks(list(dict.fromkeys(job_ids)), 500):
            query = select(Job.id).where(Job.id.in_(part), Job.state.in_(self.states),
                                         *scope_clauses(Job.__table__.c))
            found.update(db.session.scalars(query))
        return [job_id for job_id in dict.fromkeys(job_ids) if job_id in found]

    def run(self, job_ids: Sequence[str], by: str | None = None) -> list[str]:
        """Apply the action to those of ``job_ids`` it applies to; returns the ids it changed."""
        eligible = self.eligible(job_ids)
        return self.command(eligible, by=by) if eligible else []


REQUEUEABLE = commands.REQUEUEABLE
WAITING_OR_RUNNING = frozenset({lifecycle.ENQUEUED, lifecycle.SCHEDULED, lifecycle.PROCESSING,
                                lifecycle.AWAITING})

JOB_ACTIONS: dict[str, JobAction] = {action.name: action for action in (
    JobAction("retry", "Retry", frozenset({lifecycle.FAILED}), commands.requeue,
              "Retry {what}? Failed jobs go back to their queue with a fresh set of attempts.",
              done="Retried", did="retried {jobs}", instead_of="requeue"),
    JobAction("requeue", "Requeue", REQUEUEABLE, commands.requeue,
              "Requeue {what}? They run again from the start.", done="Requeued", did="requeued {jobs}"),
    JobAction("trigger", "Run now", frozenset({lifecycle.SCHEDULED}), commands.trigger,
              "Run {what} now instead of at the scheduled time?", done="Enqueued",
              did="ran {jobs} now", instead_of="requeue"),
    JobAction("cancel", "Cancel", WAITING_OR_RUNNING, commands.cancel,
              "Cancel {what}? A running job stops at its next checkpoint; a waiting one is deleted.",
              done="Cancelled", did="cancelled {jobs}", bulk=False, tone="caution",
              shown_in=frozenset({lifecycle.PROCESSING})),  # a waiting job's page offers Delete
    JobAction("delete", "Delete", commands.DELETABLE, commands.delete,
              "Delete {what}? They won't run again; a running job is asked to stop.",
              done="Deleted", did="deleted {jobs}", tone="destructive"),
)}


def job_action(name: str, bulk: bool = False) -> JobAction:
    """The action called ``name``; ``UnknownAction`` for anything else (or one that can't run in bulk)."""
    action = JOB_ACTIONS.get(name)
    if action is None:
        raise UnknownAction(f"Unknown action {name!r}; one of {', '.join(JOB_ACTIONS)}.")
    if bulk and not action.bulk:
        raise UnknownAction(f"“{action.label}” applies to selected jobs only, "
                            "not to everything matching a filter.")
    return action


def actions_for(state: str) -> list[JobAction]:
    """The actions a job's page offers in ``state`` (the specific "Retry" rather than "Requeue")."""
    offered = [a for a in JOB_ACTIONS.values() if state in (a.shown_in or a.states)]
    replaced = {a.instead_of for a in offered}
    return [a for a in offered if a.name not in replaced]


def perform(name: str, job_ids: Sequence[str], by: str | None = None) -> list[str]:
    """Run action ``name`` on ``job_ids`` now and audit it; returns the ids it changed."""
    action = job_action(name)
    changed = action.run(job_ids, by=by)
    record_audit(by, action.name, job_ids=list(job_ids), count=len(changed))
    return changed


@dataclass(frozen=True)
class BulkStarted:
    """A bulk action handed to the background job: its id and how many jobs it will touch."""

    action: JobAction
    job_id: str
    estimate: int
    capped: bool


def narrowed_to(action: JobAction, job_filter: JobFilter) -> JobFilter:
    """``job_filter`` limited to the jobs ``action`` applies to."""
    states = tuple(s for s in lifecycle.STATES if action.applies_to(s) and (not job_filter.states
                                                                            or s in job_filter.states))
    return replace(job_filter, states=states)


def start_bulk(name: str, job_filter: JobFilter, by: str | None = None,
               cap: int = BULK_ESTIMATE_CAP) -> BulkStarted:
    """Run action ``name`` on every job matching ``job_filter`` in a background job, and audit it.

    Counts (up to ``cap``) the jobs it will touch first: ``NothingMatches`` when there are none.
    """
    action = job_action(name, bulk=True)
    narrowed = narrowed_to(action, job_filter)
    scope = current_scope()
    if scope is not None:  # the filter names the tenant itself, and the bulk job runs as that tenant
        narrowed = replace(narrowed, tenant=scope)
    estimate, capped = queries.count_jobs(narrowed, cap=cap)
    if not estimate:
        raise NothingMatches(f"No job matching this filter is in a state “{action.label}” applies to; "
                             "nothing to do.")
    job_id = enqueue(BULK_TASK, [action.name, narrowed.to_dict(), by], tenant=scope)
    record_audit(by, action.name + MATCHING_SUFFIX, job_ids=[job_id], job_filter=job_filter.to_dict(),
                 count=estimate)
    return BulkStarted(action, job_id, estimate, capped)


# --- recurring jobs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RecurringAction:
    """One thing a person can do to recurring jobs (trigger now, enable, disable, delete).

    ``question``: the confirmation, ``{what}`` naming the recurring jobs; ``done``: the flash
    message's verb; ``did``: the audit log's phrase (``{what}``: "nightly-digest", "3 recurring jobs").
    """

    name: str
    label: str
    question: str
    done: str
    did: str
    apply: Callable[[str, str | None], tuple[bool, str | None]]
    tone: str = "normal"

    def confirm(self, what: str) -> str:
        """The confirmation question for applying this action to ``what``."""
        return self.question.format(what=what)

    @property
    def audit_name(self) -> str:
        """The action's name in the audit log (``trigger-recurring``)."""
        return f"{self.name}-recurring"


def _trigger(recurring_id: str, by: str | None) -> tuple[bool, str | None]:
    job_id = recurring.trigger(recurring_id, by=by)
    return job_id is not None, job_id


RECURRING_ACTIONS: dict[str, RecurringAction] = {action.name: action for action in (
    RecurringAction("trigger", "Trigger now", "Run {what} now, outside the schedule? Each starts one job.",
                    "Triggered", "triggered {what}", _trigger),
    RecurringAction("enable", "Enable", "Enable {what}? Each runs again from its next scheduled time.",
                    "Enabled", "enabled {what}", lambda rid, by: (recurring.set_enabled(rid, True), None)),
    RecurringAction("disable", "Disable",
                    "Disable {what}? They keep their schedule but don't run until enabled.", "Disabled",
                    "disabled {what}", lambda rid, by: (recurring.set_enabled(rid, False), None),
                    tone="caution"),
    RecurringAction("delete", "Delete", "Delete {what}? A deploy that still declares one brings it back.",
                    "Deleted", "deleted {what}", lambda rid, by: (recurring.remove(rid), None),
                    tone="destructive"),
)}


def recurring_action(name: str) -> RecurringAction:
    """The recurring action called ``name``; ``UnknownAction`` for anything else."""
    if name not in RECURRING_ACTIONS:
        raise UnknownAction(f"Unknown action {name!r}; one of {', '.join(RECURRING_ACTIONS)}.")
    return RECURRING_ACTIONS[name]


def perform_recurring(name: str, recurring_ids: Sequence[str],
                      by: str | None = None) -> dict[str, str | None]:
    """Run recurring action ``name`` on each of ``recurring_ids`` and audit it once.

    Returns ``{recurring id: id of the run a trigger started, or None}`` for the ones that exist.
    """
    action = recurring_action(name)
    done: dict[str, str | None] = {}
    for recurring_id in dict.fromkeys(recurring_ids):
        found, job_id = action.apply(recurring_id, by)
        if found:
            done[recurring_id] = job_id
    if done:
        record_audit(by, action.audit_name, job_ids=[j for j in done.values() if j],
                     job_filter={"recurring_ids": list(done)}, count=len(done))
    return done
