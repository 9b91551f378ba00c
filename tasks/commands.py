"""Write side for people: requeue, delete and trigger jobs (dashboard, CLI, API).

Each command is a ledger transition plus the matching transport change, ledger
first: if the process dies in between, the reconciler finishes the job.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from app.extensions import db, write_transaction
from tasks import ledger, lifecycle
from tasks.codec import Delivery, PoisonMessage, delivery_from_row
from tasks.engine import current_engine
from tasks.ledger import Job
from tasks.audit import record_audit  # noqa: F401  (part of the command API)
from tasks.lifecycle import Transition
from tasks.progress import request_cancel
from tasks.tenancy import scope_clauses

log = logging.getLogger(__name__)

REQUEUEABLE = frozenset({lifecycle.FAILED, lifecycle.SUCCEEDED, lifecycle.DELETED, lifecycle.SCHEDULED})
DELETABLE = frozenset({lifecycle.ENQUEUED, lifecycle.SCHEDULED, lifecycle.PROCESSING, lifecycle.FAILED,
                       lifecycle.AWAITING})


def delivery_for(job: Job, eta: float | None = None) -> Delivery:
    """A fresh first-attempt message for a ledger row (``PoisonMessage`` if its arguments can't be sent)."""
    return delivery_from_row(job, 1, eta)


def _load(job_ids: Sequence[str]) -> list[Job]:
    jobs: list[Job] = []
    for part in ledger.chunks(list(dict.fromkeys(job_ids)), 500):
        jobs.extend(db.session.scalars(select(Job).where(Job.id.in_(part), *scope_clauses(Job.__table__.c))))
    return jobs


def _apply(transitions: list[Transition]) -> set[str]:
    with write_transaction() as conn:
        outcomes = ledger.apply(conn, transitions)
    return {o.transition.job_id for o in outcomes if o.applied}


def requeue(job_ids: Sequence[str], by: str | None = None) -> list[str]:
    """Enqueue jobs again now (retry a Failed one, re-run a Succeeded one, trigger a Scheduled one).

    Returns the ids that were requeued; others (e.g. still Processing) are skipped.
    A person's requeue gives the job a fresh attempt budget.
    """
    at = ledger.utcnow()
    candidates = [j for j in _load(job_ids) if j.state in REQUEUEABLE]
    messages = sendable(candidates)
    jobs = [j for j in candidates if j.id in messages]
    reason = f"Requeued by {by}" if by else "Requeued"
    fresh = {"enqueued_at": at, "attempt": 0, "progress": None, "progress_message": None,
             "cancel_requested_at": None, "cancel_reason": None}
    done = _apply([Transition(j.id, lifecycle.ENQUEUED, at, reason, expected=REQUEUEABLE, fields=fresh,
                              data={"by": by, "queue": j.queue}) for j in jobs])
    engine = current_engine()
    engine.dispatch([messages[j.id] for j in jobs if j.id in done])
    db.session.expire_all()
    return [j.id for j in jobs if j.id in done]


def sendable(jobs: list[Job]) -> dict[str, Delivery]:
    """Messages for the rows that can become one; a poison row can't be requeued (it stays as it is)."""
    messages = {}
    for job in jobs:
        try:
            messages[job.id] = delivery_for(job)
        except PoisonMessage:
            continue
    return messages


def trigger(job_ids: Sequence[str], by: str | None = None) -> list[str]:
    """Run Scheduled jobs now (Scheduled → Enqueued)."""
    scheduled = [j.id for j in _load(job_ids) if j.state == lifecycle.SCHEDULED]
    return requeue(scheduled, by)


def delete(job_ids: Sequence[str], by: str | None = None) -> list[str]:
    """Delete jobs that haven't finished (and Failed ones); they won't run (again).

    A Processing job is also asked to stop (it sees that at its next checkpoint).
    """
    at = ledger.utcnow()
    jobs = [j for j in _load(job_ids) if j.state in DELETABLE]
    reason = f"Deleted by {by}" if by else "Deleted"
    request_cancel([j.id for j in jobs if j.state == lifecycle.PROCESSING], reason)
    done = _apply([Transition(j.id, lifecycle.DELETED, at, reason, expected=DELETABLE,
                              fields={"finished_at": at}, data={"by": by}) for j in jobs])
    try:
        current_engine().transport.remove([j for j in done])
    except Exception:  # noqa: BLE001 - the ledger says Deleted: a worker that fetches the message skips it
        log.warning("transport unavailable: %d deleted job(s) stay in it until fetched and skipped",
                    len(done))
    db.session.expire_all()
    return [j.id for j in jobs if j.id in done]


def cancel(job_ids: Sequence[str], by: str | None = None) -> list[str]:
    """Stop jobs: a running one is asked to stop and ends Deleted; a waiting one is deleted now.

    Returns the ids that were cancelled or asked to stop.
    """
    jobs = _load(job_ids)
    running = [j.id for j in jobs if j.state == lifecycle.PROCESSING]
    request_cancel(running, f"Cancelled by {by}" if by else "Cancelled")
    waiting = [j.id for j in jobs if j.state in (lifecycle.ENQUEUED, lifecycle.SCHEDULED, lifecycle.AWAITING)]
    return running + delete(waiting, by)


def pause_queue(name: str, by: str | None = None) -> None:
    """Stop workers fetching from queue ``name`` (its jobs wait)."""
    current_engine().transport.pause(name)


def resume_queue(name: str, by: str | None = None) -> None:
    """Let workers fetch from queue ``name`` again."""
    current_engine().transport.resume(name)
