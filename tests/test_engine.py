"""The job engine end to end: real worker processes, a real redis-server, the real ledger."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Role
from tasks import ArgumentError, UnknownTask, enqueue, enqueue_many
from tasks.demo import noop, sleep
from tasks.ledger import Job
from tasks.queries import history
from tests.helpers.ledger import insert_raw, job_state, load_job, transport_of
from tests.jobs import always_fails, no_retry_on_permanent, whoami
from tests.workers import wait_for


def states(app, job_id: str) -> list[str]:
    with app.app_context():
        return [h.state for h in history(job_id)]


def wait_state(app, job_id: str, state: str, timeout: float = 20) -> Job:
    wait_for(lambda: job_state(app, job_id) == state, timeout, message=f"{job_id} to be {state}")
    return load_job(app, job_id)


def test_enqueue_runs_to_succeeded_with_timings(app, start_worker):
    with app.app_context():
        job_id = whoami.enqueue()
    start_worker()
    job = wait_state(app, job_id, "Succeeded")
    assert job.created_at <= job.enqueued_at <= job.started_at <= job.finished_at
    assert job.attempt == 1 and job.worker
    assert json.loads(job.result) == {"job_id": job_id, "attempt": 1, "queue": "default"}
    assert states(app, job_id) == ["Enqueued", "Processing", "Succeeded"]
    with app.app_context():
        succeeded = history(job_id)[-1].details
    assert succeeded["duration_ms"] >= 0


def test_failure_retries_with_policy_delays_then_failed(app, start_worker):
    with app.app_context():
        job_id = always_fails.enqueue("kaput")
    start_worker()
    job = wait_state(app, job_id, "Failed", timeout=30)
    assert job.attempt == 3 and job.max_attempts == 3
    assert job.exception_type == "tests.jobs.Boom" and job.exception_message == "kaput"
    assert "raise Boom(message)" in job.exception_traceback
    with app.app_context():
        rows = history(job_id)
    # "Due" (Scheduled → Enqueued) may be skipped when a worker claims the job first: both are legal
    assert [r.state for r in rows if r.state != "Enqueued"] == ["Processing", "Scheduled", "Processing",
                                                                "Scheduled", "Processing", "Failed"]
    retries = [r for r in rows if r.state == "Scheduled"]
    assert [r.details["retry_in_s"] for r in retries] == [1, 1]
    assert all(r.details["exception_message"] == "kaput" for r in retries)
    processing = [r.created_at for r in rows if r.state == "Processing"]
    assert all(b - a >= timedelta(seconds=0.9) for a, b in zip(processing, processing[1:]))


def test_except_on_fails_without_retry(app, start_worker):
    with app.app_context():
        job_id = no_retry_on_permanent.enqueue()
    start_worker()
    job = wait_state(app, job_id, "Failed")
    assert job.attempt == 1 and job.exception_type == "tests.jobs.Permanent"


def test_delay_and_eta(app, start_worker):
    with app.app_context():
        delayed = noop.schedule(delay=1.5)
        from datetime import datetime, timezone

        at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
        eta = noop.schedule(eta=at)
        assert job_state(app, delayed) == "Scheduled"
    start_worker()
    for job_id in (delayed, eta):  # never started before it was due: started_at is the evidence
        job = wait_state(app, job_id, "Succeeded")
        assert job.started_at >= job.scheduled_for - timedelta(milliseconds=5)
        assert states(app, job_id) in (["Scheduled", "Enqueued", "Processing", "Succeeded"],
                                       ["Scheduled", "Processing", "Succeeded"])


def started_order(app, ids):
    jobs = [load_job(app, i) for i in ids]
    return [j.id for j in sorted(jobs, key=lambda j: (j.started_at, j.id))]


def test_queues_are_fetched_in_the_listed_order(app, start_worker):
    with app.app_context():
        low = enqueue_many(noop, [((), {})] * 3)
        high = enqueue_many(noop, [((), {})] * 3, queue="alpha")
    start_worker(queues="alpha,default", concurrency=1)
    for job_id in low + high:
        wait_state(app, job_id, "Succeeded")
    assert started_order(app, low + high) == high + low


def test_priority_orders_jobs_within_a_queue(app, start_worker):
    with app.app_context():
        normal = [noop.enqueue() for _ in range(3)]
        urgent = enqueue_many(noop, [((), {})] * 2, priority=10)
    start_worker(concurrency=1)
    for job_id in normal + urgent:
        wait_state(app, job_id, "Succeeded")
    assert started_order(app, normal + urgent) == urgent + normal


def test_transactional_enqueue_dispatches_after_commit(app):
    with app.test_request_context():
        db.session.add(Role(name="reporters"))
        job_id = noop.enqueue()
        assert transport_of(app).holds([job_id]) == set()  # not pushed before commit
        db.session.commit()
    assert transport_of(app).holds([job_id]) == {job_id}
    assert job_state(app, job_id) == "Enqueued"


def test_statement_writes_make_enqueue_transactional(app):
    with app.test_request_context():
        db.session.execute(db.update(Role).values(description="x"))
        job_id = noop.enqueue()
        assert transport_of(app).holds([job_id]) == set()
        db.session.commit()
    assert transport_of(app).holds([job_id]) == {job_id}


def test_transactional_enqueue_rolls_back_with_the_request(app):
    with app.test_request_context():
        db.session.add(Role(name="reporters"))
        db.session.flush()
        job_id = noop.enqueue()
        db.session.rollback()
    assert job_state(app, job_id) is None
    assert transport_of(app).holds([job_id]) == set()


def test_enqueue_outside_a_transaction_is_immediate(app):
    with app.test_request_context():
        db.session.get(Role, 1)  # a read doesn't make the enqueue wait for a commit
        job_id = noop.enqueue()
        assert transport_of(app).holds([job_id]) == {job_id}
    assert job_state(app, job_id) == "Enqueued"


def test_bad_arguments_raise_at_enqueue_naming_the_argument(app):
    with app.app_context():
        with pytest.raises(ArgumentError, match="'seconds'"):
            sleep.enqueue(object())
        with pytest.raises(ArgumentError, match="options"):
            enqueue("tests.whoami", kwargs={"options": {1: 2}})
        with pytest.raises(ArgumentError, match=r"args\[0\]\[1\]"):
            enqueue("tests.whoami", args=[[1, {1, 2}]])
        with pytest.raises(TypeError, match="missing a required argument: 'seconds'"):
            sleep.enqueue()
        with pytest.raises(UnknownTask, match="no job registered as 'nope'"):
            enqueue("nope")
        with pytest.raises(ValueError, match="delay"):
            noop.schedule(delay=-1)
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0


def test_unknown_task_becomes_failed_and_worker_lives(app, start_worker):
    unknown = insert_raw(app, "reports.removed_last_release")
    worker = start_worker()
    job = wait_state(app, unknown, "Failed")
    assert "unknown task 'reports.removed_last_release'" in job.exception_message
    with app.app_context():
        after = noop.enqueue()
    wait_state(app, after, "Succeeded")
    assert worker.alive()
    wait_for(lambda: transport_of(app).holds([unknown]) == set(), timeout=5)


def test_undecodable_message_becomes_failed_and_worker_lives(app, start_worker):
    poison = insert_raw(app, "demo.noop", payload=b"\x80\x04not json at all")
    worker = start_worker()
    job = wait_state(app, poison, "Failed")
    assert job.exception_type == "PoisonMessage" and "undecodable message" in job.exception_message
    with app.app_context():
        after = noop.enqueue()
    wait_state(app, after, "Succeeded")
    assert worker.alive()


@pytest.fixture
def embedded_config(app_config):
    """The embedded default: no Redis, Huey's SQLite storage in the instance folder."""
    app_config["REDIS_URL"] = None
    return app_config


def test_embedded_sqlite_transport_end_to_end(embedded_config, app, start_worker):
    from tasks.transport.sqlite import SqliteTransport

    assert isinstance(transport_of(app), SqliteTransport)
    with app.app_context():
        ok = whoami.enqueue()
        later = noop.schedule(delay=1)
        failing = always_fails.enqueue()
        alpha = noop.enqueue_many([()] * 2, queue="alpha")
    start_worker(queues="alpha,default")
    assert wait_state(app, ok, "Succeeded").attempt == 1
    wait_state(app, later, "Succeeded")
    assert wait_state(app, failing, "Failed", timeout=30).attempt == 3
    for job_id in alpha:
        wait_state(app, job_id, "Succeeded")
    # messages are acknowledged right after their final state commits
    wait_for(lambda: transport_of(app).holds([ok, later, failing, *alpha]) == set(), timeout=5)
