"""Ledger queries: keyset pages, filters, counts (through compaction) and a job's detail."""
from __future__ import annotations

import pytest

from app.extensions import db
from tasks import commands, queries
from tasks.demo import noop, sleep
from tasks.ledger import counts
from tasks.queries import BadCursor, JobFilter
from tests.jobs import always_fails


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
