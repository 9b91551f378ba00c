"""Maintenance run in-process: the leader's janitor (retention, counters, throughput)
and poison-proof duties."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from app.extensions import db
from tasks import commands, continuations, lifecycle, queries
from tasks.completer import Completer
from tasks.demo import noop
from tasks.ledger import Job, counters_table, throughput_table, utcnow
from tasks.recovery import LEADER_ROLE, Maintenance
from tests.helpers.ledger import failed_job, job_state, transport_of


def maintenance(app, worker_id: str = "janitor-test:1:0000") -> Maintenance:
    engine = app.extensions["jobs"]
    completer = Completer(db.engine, engine.transport, worker_id, engine.dispatch)
    return Maintenance(app, engine.transport, completer, worker_id, engine.settings)


def test_the_leader_janitor_expires_old_finished_jobs_and_compacts_counters(app):
    with app.app_context():
        succeeded_old, deleted_old, deleted_new = noop.enqueue_many([()] * 3)
        kept_failed = failed_job(app, message="kept until a person acts")
        commands.delete([deleted_old, deleted_new])
        at = utcnow()
        db.session.execute(update(Job).where(Job.id == succeeded_old).values(state=lifecycle.SUCCEEDED))
        old = utcnow() - timedelta(days=3)
        db.session.execute(update(Job).where(Job.id.in_([succeeded_old, deleted_old, kept_failed]))
                           .values(state_changed_at=old))
        db.session.execute(throughput_table.insert(), [{"bucket": at - timedelta(hours=3),
                                                        "state": "Succeeded", "count": 2}] * 3)
        db.session.commit()
        counts_before = queries.state_counts()
        rows_before = db.session.scalar(select(func.count()).select_from(counters_table))
        duties = maintenance(app)
        try:
            duties.tick()
            assert transport_of(app).holder(LEADER_ROLE) == duties.worker_id  # it led, so the janitor ran
        finally:
            duties.completer.stop(5)
        assert job_state(app, deleted_old) is None and job_state(app, deleted_new) == lifecycle.DELETED
        assert job_state(app, kept_failed) == lifecycle.FAILED
        rows_after = db.session.scalar(select(func.count()).select_from(counters_table))
        assert rows_after < rows_before
        counts = queries.state_counts()
        assert (counts["Deleted"] == counts_before["Deleted"] - 1
                and counts["Failed"] == counts_before["Failed"])
        old_buckets = db.session.execute(select(throughput_table.c.count)
                                         .where(throughput_table.c.bucket < at - timedelta(hours=1))).all()
        assert [tuple(r) for r in old_buckets] == [(6,)]  # three 5-second rows rolled up into their hour


def test_a_second_worker_does_not_lead_while_the_leader_lives(app):
    with app.app_context():
        first, second = maintenance(app, "a:1:0001"), maintenance(app, "b:2:0002")
        try:
            assert first.leads() and not second.leads()
            assert first.leads()  # renewing keeps it
        finally:
            first.completer.stop(5)
            second.completer.stop(5)


def test_a_continuation_with_a_corrupt_row_fails_and_its_siblings_are_released(app):
    with app.app_context():
        parent = noop.enqueue()
        children = [commands.current_engine().enqueue_many(noop.definition, [((), {})], after=parent)[0]
                    for _ in range(3)]
        db.session.execute(update(Job).where(Job.id == children[1]).values(kwargs="{broken"))
        db.session.commit()
        with db.engine.begin() as conn:
            messages = continuations.resolve(conn, {parent: lifecycle.SUCCEEDED})
    assert sorted(m.id for m in messages) == sorted([children[0], children[2]])
    assert job_state(app, children[1]) == lifecycle.FAILED
    with app.app_context():
        reason = db.session.get(Job, children[1]).exception_message
    assert "not valid JSON" in reason
