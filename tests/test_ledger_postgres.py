"""The ledger under concurrency on PostgreSQL: two connections claiming one job.

Deterministic: the second claim is observed waiting on the first one's row lock
(``pg_stat_activity``) before the first commits, so the test doesn't depend on timing.
"""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from app.extensions import db, write_transaction
from tasks import lifecycle
from tasks.ledger import NewJob, apply, insert_jobs, new_job_id, utcnow
from tasks.lifecycle import Transition
from tests.workers import wait_for

pytestmark = pytest.mark.postgres


def claim(job_id: str, worker: str) -> Transition:
    """A worker's claim of a job that must still be waiting (Enqueued)."""
    at = utcnow()
    return Transition(job_id, lifecycle.PROCESSING, at, "Attempt 1 of 1",
                      expected=frozenset({lifecycle.ENQUEUED}),
                      fields={"started_at": at, "worker": worker, "attempt": 1})


def test_two_concurrent_claims_serialize_and_only_one_wins(app):
    with app.app_context():
        job_id = new_job_id()
        with write_transaction() as conn:
            insert_jobs(conn, [NewJob(job_id, "demo.noop", "noop", "default", 0, [], {},
                                      lifecycle.ENQUEUED, 1)])
        engine = db.engine
        second_outcome: list = []

        first = engine.connect()
        first_tx = first.begin()
        assert apply(first, [claim(job_id, "worker-a")])[0].applied
        first_pid = first.exec_driver_sql("select pg_backend_pid()").scalar()

        def second_claim():
            with write_transaction(engine) as conn:
                second_outcome.extend(apply(conn, [claim(job_id, "worker-b")]))

        thread = threading.Thread(target=second_claim)
        thread.start()

        def second_is_blocked() -> bool:
            # a fresh transaction per look: pg_stat_activity is a snapshot taken once per transaction
            with engine.connect() as watcher:
                waiting = text("select 1 from pg_stat_activity where :pid = any(pg_blocking_pids(pid))")
                return watcher.execute(waiting, {"pid": first_pid}).first() is not None

        wait_for(second_is_blocked, timeout=30, message="the second claim to wait on the first one's lock")
        assert not second_outcome, "the second claim finished while the first held the row"
        first_tx.commit()
        first.close()
        thread.join(30)
        assert not thread.is_alive()

        outcome = second_outcome[0]
        assert not outcome.applied and outcome.previous == lifecycle.PROCESSING
        with engine.connect() as conn:
            row = conn.execute(text("select state, worker from jobs where id = :id"), {"id": job_id}).one()
        assert tuple(row) == (lifecycle.PROCESSING, "worker-a")
        with engine.connect() as conn:
            history = conn.execute(text("select count(*) from job_states "
                                        "where job_id = :id and state = 'Processing'"),
                                   {"id": job_id}).scalar()
        assert history == 1
