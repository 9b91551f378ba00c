"""The worker pipeline's invariants, each shown with real worker processes and the real ledger.

* a job deleted or finished in the ledger before a worker takes it never runs;
* a job leaves the transport only after its final state is committed;
* a worker never sits on jobs another could start: long jobs aren't prefetched, and a
  claimed job not started within the hold limit is handed back;
* the dashboard's Processing means a thread has the job (within the hold limit).
"""
from __future__ import annotations

import os

from sqlalchemy import func, select

from app.extensions import db
from tasks import enqueue_many, lifecycle
from tasks.ledger import Job, apply_strict, utcnow
from tasks.lifecycle import Transition
from tasks.queries import history
from tests.helpers.ledger import job_state, load_job, transport_of
from tests.jobs import gate, nap, tally
from tests.helpers.faults import DatabaseOutage, completed_runs, lines
from tests.workers import wait_for


def states(app, ids) -> dict[str, int]:
    with app.app_context():
        return dict(db.session.execute(select(Job.state, func.count()).where(Job.id.in_(ids))
                                       .group_by(Job.state)).all())


def settle_in_ledger(app, job_id: str, state: str) -> None:
    """Move a job to a final state in the ledger only (its message stays in the transport)."""
    at = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        if state == lifecycle.SUCCEEDED:
            apply_strict(conn, [Transition(job_id, lifecycle.PROCESSING, at, "elsewhere",
                                           fields={"worker": "elsewhere", "attempt": 1}),
                                Transition(job_id, lifecycle.SUCCEEDED, at, "elsewhere",
                                           fields={"finished_at": at})])
        else:
            apply_strict(conn, [Transition(job_id, lifecycle.DELETED, at, "deleted",
                                           fields={"finished_at": at})])


def test_a_job_deleted_or_finished_before_a_worker_takes_it_never_runs(app, start_worker):
    with app.app_context():
        ids = enqueue_many(tally, [((0.0,), {})] * 20)
    deleted, finished, good = ids[:5], ids[5:10], ids[10:]
    for job_id in deleted:
        settle_in_ledger(app, job_id, lifecycle.DELETED)
    for job_id in finished:
        settle_in_ledger(app, job_id, lifecycle.SUCCEEDED)
    assert transport_of(app).holds(ids) == set(ids)  # the messages are still there
    start_worker(concurrency=2)
    wait_for(lambda: states(app, good).get(lifecycle.SUCCEEDED) == len(good), message="the good jobs ran")
    # positive signal
    wait_for(lambda: transport_of(app).holds(ids) == set(), message="every message settled")
    runs = completed_runs(app)
    assert not any(runs.get(job_id) for job_id in deleted + finished)
    assert all(runs[job_id] == 1 for job_id in good)
    assert states(app, deleted) == {lifecycle.DELETED: 5}


def test_a_job_leaves_the_transport_only_after_its_final_state_is_committed(app, start_worker):
    with app.app_context():
        job_id = gate.enqueue("held")
    worker = start_worker(concurrency=1)
    started = os.path.join(app.instance_path, "held.started")
    wait_for(lambda: os.path.exists(started), message="the job running")
    with app.app_context():
        outage = DatabaseOutage(db.engine)
    outage.begin()
    try:
        open(os.path.join(app.instance_path, "held.open"), "w").close()
        wait_for(lambda: os.path.exists(os.path.join(app.instance_path, "held.done")),
                 message="the job finished")
        wait_for(lambda: "ledger write failed" in worker.output(), timeout=90,
                 message="the completer meeting the outage")
        assert transport_of(app).holds([job_id]) == {job_id}, "acknowledged before the commit"
    finally:
        outage.end()
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=60, message="committed after")
    wait_for(lambda: transport_of(app).holds([job_id]) == set(), message="acknowledged after the commit")


def test_long_jobs_are_not_prefetched_another_worker_starts_them(app, start_worker):
    with app.app_context():
        first, second = nap.enqueue(30.0), nap.enqueue(30.0)
    busy = start_worker(concurrency=1)
    wait_for(lambda: job_state(app, first) == lifecycle.PROCESSING, message="the first job running")
    helper = start_worker(concurrency=1)
    wait_for(lambda: job_state(app, second) == lifecycle.PROCESSING, timeout=60,
             message="the second worker starting the second job")
    workers = {load_job(app, first).worker, load_job(app, second).worker}
    assert len(workers) == 2 and any(f":{busy.pid}:" in w for w in workers)
    assert any(f":{helper.pid}:" in w for w in workers)


def test_processing_means_a_thread_has_the_job(app, start_worker):
    with app.app_context():
        ids = enqueue_many(gate, [(("slow",), {})] * 6)
    start_worker(concurrency=2)
    started = os.path.join(app.instance_path, "slow.started")
    wait_for(lambda: len(lines(app, "slow.started")) == 2, message="two jobs running")
    running = set(lines(app, "slow.started"))
    assert states(app, ids) == {lifecycle.PROCESSING: 2, lifecycle.ENQUEUED: 4}
    with app.app_context():
        processing = set(db.session.scalars(select(Job.id).where(Job.state == lifecycle.PROCESSING)))
    assert processing == running
    assert transport_of(app).queue_lengths().get("default") == 4
    open(os.path.join(app.instance_path, "slow.open"), "w").close()
    wait_for(lambda: states(app, ids) == {lifecycle.SUCCEEDED: 6}, message="all ran")
    assert os.path.exists(started)


def test_a_claimed_job_not_started_within_the_hold_limit_is_handed_back(app, start_worker):
    with app.app_context():
        warmup = nap.enqueue_many([(0.0,)] * 30)
    holder = start_worker(concurrency=1, JOBS_HOLD_LIMIT="0.3")
    wait_for(lambda: states(app, warmup).get(lifecycle.SUCCEEDED) == 30, message="evidence: nap runs short")
    with app.app_context():
        long_one = gate.enqueue("hold")
        wait_for(lambda: job_state(app, long_one) == lifecycle.PROCESSING, message="the long job running")
        short = nap.enqueue_many([(0.0,)] * 5)  # held ahead as short jobs, then no thread frees
    wait_for(lambda: all(handed_back(app, job_id) for job_id in short), timeout=30,
             message="the claimed, unstarted jobs handed back")
    start_worker(concurrency=1)
    wait_for(lambda: states(app, short).get(lifecycle.SUCCEEDED) == 5, timeout=60,
             message="another worker ran them")
    assert job_state(app, long_one) == lifecycle.PROCESSING  # the holder is still busy
    assert not any(f":{holder.pid}:" in load_job(app, job_id).worker for job_id in short)
    open(os.path.join(app.instance_path, "hold.open"), "w").close()


def handed_back(app, job_id: str) -> bool:
    with app.app_context():
        return any("handed back" in h.reason for h in history(job_id))
