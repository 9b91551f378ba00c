"""Ledger commands: delete, requeue, trigger, refused transitions, and the completer's batch writes."""
from __future__ import annotations

import pytest

from app.extensions import db
from tasks import commands, lifecycle, queries
from tasks.demo import noop
from tasks.ledger import apply_strict
from tasks.lifecycle import IllegalTransition, Transition
from tests.helpers.ledger import job_state, transport_of


def test_delete_removes_from_ledger_flow_and_transport_of(app):
    with app.app_context():
        job_id = noop.enqueue()
        assert commands.delete([job_id], by="alice") == [job_id]
        assert commands.delete([job_id]) == []  # already deleted
    assert job_state(app, job_id) == "Deleted"
    assert transport_of(app).holds([job_id]) == set()


def test_requeue_failed_and_trigger_scheduled(app):
    with app.app_context():
        failed = noop.enqueue()
        scheduled = noop.schedule(delay=3600)
        with db.engine.begin() as conn:  # pretend a worker ran and failed it
            apply_strict(conn, [Transition(failed, lifecycle.PROCESSING, queries.ledger.utcnow()),
                                Transition(failed, lifecycle.FAILED, queries.ledger.utcnow(), "boom")])
        transport_of(app).remove([failed])
        assert commands.requeue([failed], by="bob") == [failed]
        assert commands.trigger([scheduled]) == [scheduled]
        assert commands.trigger([scheduled]) == []  # no longer Scheduled
        job = queries.get_job(failed)
        assert job.state == "Enqueued" and job.state_reason == "Requeued by bob"
    assert transport_of(app).holds([failed, scheduled]) == {failed, scheduled}
    assert transport_of(app).queue_lengths()["default"] == 2


def test_illegal_transition_raises_and_writes_nothing(app):
    with app.app_context():
        job_id = noop.enqueue()
        with pytest.raises(IllegalTransition, match="Enqueued → Succeeded"):
            with db.engine.begin() as conn:
                apply_strict(conn, [Transition(job_id, lifecycle.SUCCEEDED, queries.ledger.utcnow())])
    assert job_state(app, job_id) == "Enqueued"


def test_completer_drops_only_the_transition_the_database_rejects(app):
    from tasks.completer import Completer, Pending

    with app.app_context():
        good, bad = noop.enqueue_many([()] * 2)
        engine = app.extensions["jobs"]
        writer = Completer(db.engine, engine.transport, "test-completer", engine.dispatch)
        now = queries.ledger.utcnow()
        rejected = Pending(Transition(bad, lifecycle.PROCESSING, now, fields={"worker": "w" * 500}))
        accepted = Pending(Transition(good, lifecycle.PROCESSING, now, fields={"worker": "w1"}))
        writer.submit(rejected)
        writer.submit(accepted)
        assert writer.flush(10)
        writer.stop(5)
    assert job_state(app, good) == "Processing"
    expected = "Enqueued" if "postgres" in app.config["SQLALCHEMY_DATABASE_URI"] else "Processing"
    assert job_state(app, bad) == expected  # SQLite doesn't enforce VARCHAR lengths
