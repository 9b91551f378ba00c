"""Queries, commands, CLI, retry policies and the lifecycle, against the real ledger and Redis."""
from __future__ import annotations

import json
import random

import pytest

from app.extensions import db
from tasks import commands, lifecycle, queries
from tasks.demo import noop, sleep
from tasks.ledger import apply_strict, counts
from tasks.lifecycle import IllegalTransition, Transition
from tasks.queries import BadCursor, JobFilter
from tasks.retry import RetryPolicy, hangfire_backoff, policy
from tests.helpers.ledger import job_state
from tests.jobs import always_fails


def transport(app):
    return app.extensions["jobs"].transport


# -- queries ----------------------------------------------------------------------
def test_keyset_pagination_is_stable_while_jobs_arrive(app):
    with app.app_context():
        original = noop.enqueue_many([()] * 30)
        seen = []
        page = queries.list_jobs(JobFilter(state="Enqueued"), limit=10)
        seen += [j.id for j in page.jobs]
        noop.enqueue_many([()] * 5)  # arrive between page views
        while page.next_cursor:
            page = queries.list_jobs(JobFilter(state="Enqueued"), limit=10, cursor=page.next_cursor)
            seen += [j.id for j in page.jobs]
        assert len(seen) == len(set(seen)) == 30
        assert set(seen) == set(original)


def test_filters_by_task_queue_text_and_who(app):
    with app.app_context():
        sleep.enqueue(0.25)
        noop.enqueue_many([()] * 2, queue="alpha")
        always_fails.enqueue("needle <script>")
        assert len(queries.list_jobs(JobFilter(task="demo.noop")).jobs) == 2
        assert len(queries.list_jobs(JobFilter(queue="alpha")).jobs) == 2
        found = queries.list_jobs(JobFilter(text="needle <script>")).jobs
        assert [j.task for j in found] == ["tests.always_fails"]
        assert queries.list_jobs(JobFilter(text="100%")).jobs == []
        assert queries.list_jobs(JobFilter(enqueued_by="nobody")).jobs == []
        with pytest.raises(ValueError, match="unknown state"):
            JobFilter(state="Exploded")
        with pytest.raises(BadCursor):
            queries.list_jobs(cursor="not-a-cursor")


def test_counts_follow_transitions_and_survive_compaction(app):
    with app.app_context():
        ids = noop.enqueue_many([()] * 4)
        commands.delete(ids[:1])
        assert queries.state_counts()["Enqueued"] == 3 and queries.state_counts()["Deleted"] == 1
        from tasks.ledger import compact_counts

        with db.engine.begin() as conn:
            assert compact_counts(conn) >= 2
        with db.engine.connect() as conn:
            assert counts(conn)["Enqueued"] == 3 and counts(conn)["Deleted"] == 1


def test_job_detail_has_history_and_arguments(app):
    with app.app_context():
        job_id = sleep.enqueue(0.5)
        detail = queries.job_detail(queries.get_job(job_id))
    assert detail["args"] == [0.5] and detail["display_name"] == "Sleep 0.5s"
    assert [h["state"] for h in detail["history"]] == ["Enqueued"]


# -- commands ---------------------------------------------------------------------
def test_delete_removes_from_ledger_flow_and_transport(app):
    with app.app_context():
        job_id = noop.enqueue()
        assert commands.delete([job_id], by="alice") == [job_id]
        assert commands.delete([job_id]) == []  # already deleted
    assert job_state(app, job_id) == "Deleted"
    assert transport(app).holds([job_id]) == set()


def test_requeue_failed_and_trigger_scheduled(app):
    with app.app_context():
        failed = noop.enqueue()
        scheduled = noop.schedule(delay=3600)
        with db.engine.begin() as conn:  # pretend a worker ran and failed it
            apply_strict(conn, [Transition(failed, lifecycle.PROCESSING, queries.ledger.utcnow()),
                                Transition(failed, lifecycle.FAILED, queries.ledger.utcnow(), "boom")])
        transport(app).remove([failed])
        assert commands.requeue([failed], by="bob") == [failed]
        assert commands.trigger([scheduled]) == [scheduled]
        assert commands.trigger([scheduled]) == []  # no longer Scheduled
        job = queries.get_job(failed)
        assert job.state == "Enqueued" and job.state_reason == "Requeued by bob"
    assert transport(app).holds([failed, scheduled]) == {failed, scheduled}
    assert transport(app).queue_lengths()["default"] == 2


def test_illegal_transition_raises_and_writes_nothing(app):
    with app.app_context():
        job_id = noop.enqueue()
        with pytest.raises(IllegalTransition, match="Enqueued → Succeeded"):
            with db.engine.begin() as conn:
                apply_strict(conn, [Transition(job_id, lifecycle.SUCCEEDED, queries.ledger.utcnow())])
    assert job_state(app, job_id) == "Enqueued"


# -- CLI --------------------------------------------------------------------------
def test_cli_enqueue_list_show_retry_delete_stats(app, runner):
    result = runner.invoke(args=["jobs", "enqueue", "demo.sleep", "--args", "[1]", "--count", "3"])
    assert result.exit_code == 0, result.output
    ids = result.output.split()
    assert len(ids) == 3
    listed = json.loads(runner.invoke(args=["jobs", "list", "--state", "enqueued", "--json"]).output)
    assert {row["id"] for row in listed} == set(ids)
    assert {"id", "task", "state", "attempt", "created_at", "reason"} <= set(listed[0])
    shown = json.loads(runner.invoke(args=["jobs", "show", ids[0], "--json"]).output)
    assert shown["args"] == [1] and shown["history"][0]["state"] == "Enqueued"
    assert runner.invoke(args=["jobs", "delete", ids[0]]).exit_code == 0
    assert runner.invoke(args=["jobs", "retry", ids[0]]).exit_code == 0
    again = runner.invoke(args=["jobs", "retry", ids[0]])
    assert again.exit_code == 1 and "can't be requeued" in again.output
    stats = json.loads(runner.invoke(args=["jobs", "stats", "--json"]).output)
    assert stats["Enqueued"] == 3 and stats["Deleted"] == 0
    missing = runner.invoke(args=["jobs", "show", "doesnotexist"])
    assert missing.exit_code == 1 and "no job doesnotexist" in missing.output


@pytest.mark.parametrize("arguments, message", [
    (["--args", "{oops"], "not valid JSON"),
    (["--args", '{"a": 1}'], "must be a JSON list"),
    (["--kwargs", "[1]"], "must be a JSON dict"),
])
def test_cli_enqueue_rejects_bad_json(runner, arguments, message):
    result = runner.invoke(args=["jobs", "enqueue", "demo.noop", *arguments])
    assert result.exit_code == 2 and message in result.output


def test_cli_enqueue_unknown_task_and_bad_arguments(runner):
    unknown = runner.invoke(args=["jobs", "enqueue", "nope"])
    assert unknown.exit_code == 1 and "no job registered as 'nope'" in unknown.output
    missing = runner.invoke(args=["jobs", "enqueue", "demo.sleep"])
    assert missing.exit_code == 1 and "'seconds'" in missing.output


# -- retry policy -----------------------------------------------------------------
def test_hangfire_backoff_matches_the_formula():
    random.seed(7)
    for attempt in range(1, 11):
        delay = hangfire_backoff(attempt)
        base = (attempt - 1) ** 4 + 15
        assert base <= delay <= base + 29 * attempt


def test_policy_options():
    assert policy().attempts == 10 and policy(retries=0).attempts == 1
    fixed = RetryPolicy(4, [5, 30])
    assert [fixed.delay(n) for n in (1, 2, 3)] == [5, 30, 30]
    assert RetryPolicy(3, lambda n: n * 7).delay(2) == 14
    assert RetryPolicy(3, None).delay(1) == 0
    only = policy(retries=2, only_on=TimeoutError)
    assert only.should_retry(1, TimeoutError()) and not only.should_retry(1, ValueError())
    assert not only.should_retry(3, TimeoutError())
    with pytest.raises(ValueError):
        RetryPolicy(0)
    with pytest.raises(ValueError):
        RetryPolicy(3, [-1])


def test_a_transition_refuses_columns_its_state_does_not_record():
    with pytest.raises(ValueError, match=r"Succeeded doesn't record \['worker'\]"):
        Transition("j", lifecycle.SUCCEEDED, queries.ledger.utcnow(), fields={"worker": "w1"})


def test_lifecycle_table():
    assert lifecycle.can_move(None, lifecycle.ENQUEUED)
    assert not lifecycle.can_move(lifecycle.SUCCEEDED, lifecycle.PROCESSING)
    assert lifecycle.sources(lifecycle.SUCCEEDED) == {lifecycle.PROCESSING}
    for state in lifecycle.FINAL_STATES:
        assert lifecycle.PROCESSING not in lifecycle.TRANSITIONS[state]


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
