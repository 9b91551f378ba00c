"""Jobs in given states, read back fresh, and snapshots of what a dashboard action could change."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

import tasks
from app.extensions import db
from tasks import ledger, lifecycle
from tasks.codec import Delivery
from tasks.engine import outgoing
from tasks.audit import AuditEntry
from tasks.ledger import Job, NewJob, insert_jobs, new_job_id, utcnow
from tasks.lifecycle import Transition

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
WORKER = "test-host:4242:beef"


def fetch(app, model, key):
    """A fresh copy of the ``model`` row with primary key ``key`` (None if absent), usable outside the app
    context."""
    with app.app_context():
        row = db.session.get(model, key)
        if row is not None:
            db.session.expunge(row)
        return row


def load_job(app, job_id: str) -> Job | None:
    """A fresh, detached copy of ``job_id``'s ledger row."""
    return fetch(app, Job, job_id)


def job_state(app, job_id: str) -> str | None:
    """The ledger's current state of ``job_id`` (fresh read)."""
    job = fetch(app, Job, job_id)
    return job.state if job else None


def attempts(app, job_id: str) -> int:
    """The attempt number the ledger holds for ``job_id`` (0 when it never ran or is gone)."""
    job = fetch(app, Job, job_id)
    return job.attempt if job else 0


def transport_of(app):
    """The app's job transport."""
    return app.extensions["jobs"].transport


def enqueue(app, task: str = "demo.sleep", args=(0.01,), kwargs=None, **options) -> str:
    """Enqueue one job outside a request; returns its id."""
    with app.app_context():
        return tasks.enqueue(task, list(args), kwargs or {}, **options)


def fail(app, job_id: str, message: str = "boom", kind: str = "tasks.demo.DemoFailure",
         attempt: int = 1) -> None:
    """Move an Enqueued job through Processing to Failed in the ledger (and out of the transport)."""
    at, done = utcnow(), utcnow() + timedelta(milliseconds=30)
    trace = f"Traceback (most recent call last):\n  File \"job.py\"\n{kind}: {message}"
    failure = {"exception_type": kind, "exception_message": message, "exception_traceback": trace}
    with app.app_context():
        with db.engine.begin() as conn:
            ledger.apply_strict(conn, [
                Transition(job_id, lifecycle.PROCESSING, at, f"Attempt {attempt}",
                           fields={"started_at": at, "worker": WORKER, "attempt": attempt},
                           data={"worker": WORKER, "latency_ms": 7}),
                Transition(job_id, lifecycle.FAILED, done, f"Failed: {kind}: {message}",
                           fields={"finished_at": done, **failure},
                           data={**failure, "attempt": attempt, "worker": WORKER, "duration_ms": 30}),
            ])
        transport_of(app).remove([job_id])


def failed_job(app, task: str = "demo.sleep", args=(0.01,), message: str = "boom", **options) -> str:
    """A Failed job of ``task``."""
    job_id = enqueue(app, task, args, **options)
    fail(app, job_id, message)
    return job_id


def insert_failed_rows(app, count: int, task: str = "demo.noop", queue: str = "parked",
                       chunk: int = 10_000) -> None:
    """Seed ``count`` Failed jobs fast: bulk INSERTs into jobs, job_states and job_counters."""
    now = utcnow()
    with app.app_context():
        for start in range(0, count, chunk):
            size = min(chunk, count - start)
            rows = [failed_row(ledger.new_job_id(), task, queue, now) for _ in range(size)]
            with db.engine.begin() as conn:
                conn.execute(insert(ledger.jobs_table), rows)
                conn.execute(insert(ledger.states_table), [
                    {"job_id": r["id"], "state": lifecycle.FAILED, "reason": "seeded", "created_at": now,
                     "data": "{}"} for r in rows])
                ledger.add_counts(conn, {lifecycle.FAILED: len(rows)})


def failed_row(job_id: str, task: str, queue: str, now) -> dict:
    """A ``jobs`` row of a Failed job."""
    return {"id": job_id, "task": task, "display_name": task, "queue": queue, "priority": 0, "args": "[]",
            "kwargs": "{}", "state": lifecycle.FAILED, "state_reason": "seeded", "state_changed_at": now,
            "attempt": 1, "max_attempts": 1, "created_at": now, "enqueued_at": now, "scheduled_for": None,
            "started_at": now, "finished_at": now, "worker": None, "result": None, "exception_type": "Seeded",
            "exception_message": "seeded failure", "exception_traceback": None, "enqueued_by": None}


def snapshot(app) -> dict:
    """Everything a dashboard action could change: job states, audit size, paused queues, transport."""
    with app.app_context():
        states = dict(db.session.execute(select(Job.id, Job.state)).all())
        transport = transport_of(app)
        return {"states": states, "audit": db.session.query(AuditEntry).count(), "paused": transport.paused(),
                "held": transport.holds(sorted(states)), "queues": transport.queue_lengths()}


def insert_raw(app, task: str, payload: bytes | None = None) -> str:
    """A ledger row plus a transport message that a worker can't run as-is."""
    job_id = new_job_id()
    with app.app_context():
        with db.engine.begin() as conn:
            insert_jobs(conn, [NewJob(job_id, task, task, "default", 0, [], {}, lifecycle.ENQUEUED, 1)])
        message = outgoing(Delivery(job_id, task))
        if payload is not None:
            message.payload = payload
        transport_of(app).push([message])
    return job_id
