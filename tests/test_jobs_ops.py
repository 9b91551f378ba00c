"""Operations the dashboard builds on: pause, throughput, bulk, audit, retention, idempotency, reconciler."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.extensions import db
from tasks import actions, commands, lifecycle, once, queries
from tasks.demo import noop
from tasks.ledger import Job, fold_throughput, throughput_table, utcnow
from tasks.queries import JobFilter
from tasks.recovery import expire_finished, reconcile
from tests.helpers.ledger import job_state
from tests.jobs import always_fails, whoami
from tests.workers import wait_for


def test_paused_queue_is_not_fetched_until_resumed(app, start_worker):
    with app.app_context():
        commands.pause_queue("alpha", by="ops")
        held = noop.enqueue_many([()] * 2, queue="alpha")
        free = noop.enqueue()
    start_worker(queues="alpha,default")
    wait_for(lambda: job_state(app, free) == lifecycle.SUCCEEDED)
    with app.app_context():
        later = noop.enqueue()  # enqueued after the held ones: the worker has moved on past them
    wait_for(lambda: job_state(app, later) == lifecycle.SUCCEEDED)
    assert {job_state(app, i) for i in held} == {lifecycle.ENQUEUED}
    with app.app_context():
        overview = {q["name"]: q for q in queries.queue_overview()}
        assert overview["alpha"]["paused"] and overview["alpha"]["length"] == 2
        assert overview["alpha"]["oldest_age_seconds"] >= 0
        commands.resume_queue("alpha", by="ops")
    for job_id in held:
        wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED)


def test_workers_overview_and_throughput(app, start_worker):
    with app.app_context():
        ids = noop.enqueue_many([()] * 5) + [always_fails.enqueue()]
    start_worker(concurrency=3)
    for job_id in ids[:5]:
        wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED)
    with app.app_context():
        workers = queries.workers_overview()
        assert len(workers) == 1 and workers[0]["alive"] and workers[0]["concurrency"] == 3
        assert workers[0]["queues"] == ["default"]
        series = queries.throughput(utcnow() - timedelta(minutes=5), 5)
        assert sum(b["succeeded"] for b in series) == 5
        assert len(series) >= 60 and all(b["failed"] == 0 for b in series)


def test_fold_throughput_keeps_totals(app):
    with app.app_context():
        old = utcnow() - timedelta(hours=3)
        with db.engine.begin() as conn:
            conn.execute(throughput_table.insert(), [
                {"bucket": old, "state": "Succeeded", "count": 2},
                {"bucket": old + timedelta(seconds=5), "state": "Succeeded", "count": 3},
                {"bucket": old, "state": "Failed", "count": 1},
            ])
            fold_throughput(conn, utcnow() - timedelta(minutes=1), utcnow() - timedelta(hours=1))
        hourly = queries.throughput(utcnow() - timedelta(hours=4), 3600)
        assert sum(b["succeeded"] for b in hourly) == 5 and sum(b["failed"] for b in hourly) == 1
        assert db.session.scalar(db.select(db.func.count()).select_from(throughput_table)) == 2


def test_count_jobs_is_capped(app):
    with app.app_context():
        noop.enqueue_many([()] * 12)
        assert queries.count_jobs(JobFilter(state="Enqueued")) == (12, False)
        assert queries.count_jobs(JobFilter(state="Enqueued"), cap=10) == (10, True)


def test_retrying_filter_and_filter_round_trip(app):
    with app.app_context():
        job_id = noop.schedule(delay=600)
        assert queries.list_jobs(JobFilter(retrying=True)).jobs == []
        db.session.execute(update(Job).where(Job.id == job_id).values(attempt=1))
        db.session.commit()
        assert [j.id for j in queries.list_jobs(JobFilter(retrying=True)).jobs] == [job_id]
    original = JobFilter(state="Failed", text="x", since=utcnow(), retrying=True)
    assert JobFilter.from_dict(original.to_dict()) == original


def test_bulk_requeue_of_everything_matching_runs_in_a_job(app, start_worker):
    with app.app_context():
        failed = always_fails.enqueue_many([("a",)] * 3)
        other = noop.enqueue()
        commands.delete(failed + [other])
        deleted = JobFilter(state="Deleted", task="tests.always_fails")
        bulk_id = actions.start_bulk("requeue", deleted, by="ops").job_id
        entries, _ = queries.audit_log()  # written by start_bulk itself
        assert (entries[0].user, entries[0].action, entries[0].count, entries[0].ids) == (
            "ops", "requeue-matching", 3, [bulk_id])
        assert entries[0].filter == {"state": "Deleted", "task": "tests.always_fails"}
        with pytest.raises(actions.UnknownAction, match="Unknown action 'explode'"):
            actions.start_bulk("explode", JobFilter())
        with pytest.raises(actions.NothingMatches):
            actions.start_bulk("retry", JobFilter(state="Deleted"))  # Retry applies to Failed jobs only
    start_worker()
    wait_for(lambda: job_state(app, bulk_id) == lifecycle.SUCCEEDED)
    assert {job_state(app, i) for i in failed} - {lifecycle.ENQUEUED, lifecycle.PROCESSING,
                                                  lifecycle.SCHEDULED, lifecycle.FAILED} == set()
    assert job_state(app, other) == lifecycle.DELETED


def test_retention_expires_old_finished_jobs_only(app):
    with app.app_context():
        ids = noop.enqueue_many([()] * 4)
        commands.delete(ids[:3])
        old = utcnow() - timedelta(days=2)
        db.session.execute(update(Job).where(Job.id.in_(ids[:2])).values(state_changed_at=old))
        db.session.commit()
        assert expire_finished(timedelta(days=1), batch=1) == 2
        assert queries.state_counts()["Deleted"] == 1 and queries.state_counts()["Enqueued"] == 1
    assert job_state(app, ids[0]) is None and job_state(app, ids[2]) == lifecycle.DELETED


def test_once_runs_a_side_effect_once_per_key(app):
    calls = []
    with app.app_context():
        assert once("mail:42", lambda: calls.append(1) or "sent") == "sent"
        assert once("mail:42", lambda: calls.append(1) or "again") == "sent"
        with pytest.raises(ValueError):
            once("", lambda: None)
    assert calls == [1]


@pytest.fixture
def embedded_config(app_config):
    app_config["REDIS_URL"] = None
    app_config["JOBS_RECONCILE_GRACE"] = 0
    return app_config


def test_reconciler_redispatches_what_the_embedded_transport_lost(embedded_config, app):
    with app.app_context():
        lost = whoami.enqueue()
        kept = noop.enqueue()
        scheduled = noop.schedule(delay=60)
        transport = app.extensions["jobs"].transport
        transport.flush_all()
        transport.push([])  # no-op
        changed = max(queries.get_job(job_id).state_changed_at for job_id in (lost, kept, scheduled))
        wait_for(lambda: utcnow() > changed, message="the clock past their last change")
        assert set(reconcile(transport, grace=0)) == {lost, kept, scheduled}
        assert transport.holds([lost, kept, scheduled]) == {lost, kept, scheduled}
        assert reconcile(transport, grace=0) == []
