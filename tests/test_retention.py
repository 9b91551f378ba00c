"""Retention: expired finished jobs leave in short batches (their history with them, counters kept),
nothing else goes, and on SQLite the freed pages go back to the file system."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, insert, select, text

from app.extensions import db
from tasks import ledger, lifecycle, queries, retention
from tests.helpers.ledger import failed_row

STATES = (lifecycle.SUCCEEDED, lifecycle.DELETED, lifecycle.FAILED, lifecycle.ENQUEUED)


def seed(app, count: int, age: timedelta, payload: int = 0) -> list[dict]:
    """``count`` jobs cycling through ``STATES``, changed ``age`` ago, each with one history row and
    ``payload`` characters of arguments."""
    at = ledger.utcnow() - age
    rows = []
    for i in range(count):
        row = failed_row(ledger.new_job_id(), "demo.noop", "default", at)
        row.update(state=STATES[i % len(STATES)], args=json.dumps([i, "x" * payload]))
        rows.append(row)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(ledger.jobs_table), rows)
        conn.execute(insert(ledger.states_table), [
            {"job_id": r["id"], "state": r["state"], "reason": "", "created_at": at, "data": "{}"}
            for r in rows])
        ledger.add_counts(conn, {state: sum(r["state"] == state for r in rows) for state in STATES})
    return rows


def test_prune_removes_expired_finished_jobs_in_batches_and_nothing_else(app, monkeypatch):
    monkeypatch.setattr(retention, "MIN_BATCH", 30)
    monkeypatch.setattr(retention, "MAX_BATCH", 30)
    old = seed(app, 400, timedelta(days=3))
    recent = seed(app, 40, timedelta(hours=1))
    with app.app_context():
        report = retention.prune(ledger.utcnow() - timedelta(days=1), batch=30)
        expired = {r["id"] for r in old if r["state"] in lifecycle.EXPIRING_STATES}
        assert report.removed == len(expired) == 200
        assert report.batch_sizes == [30] * 8  # 100 Succeeded and 100 Deleted: 30 + 30 + 30 + 10 each
        left = set(db.session.scalars(select(ledger.Job.id)))
        assert left == {r["id"] for r in old + recent} - expired
        history = set(db.session.scalars(select(ledger.JobState.job_id).distinct()))
        assert history == left
        counts = queries.state_counts()
        assert counts[lifecycle.SUCCEEDED] == counts[lifecycle.DELETED] == 10
        assert counts[lifecycle.FAILED] == counts[lifecycle.ENQUEUED] == 110
        assert retention.prune(ledger.utcnow() - timedelta(days=1)).removed == 0


def test_a_budget_stops_pruning_and_the_next_run_goes_on(app):
    seed(app, 200, timedelta(days=3))
    with app.app_context():
        assert retention.expire_finished(timedelta(days=1), batch=20, budget=0.0) == 0
        assert retention.expire_finished(timedelta(days=1), batch=20, budget=None) == 100


def test_batch_size_follows_the_time_a_batch_takes():
    target = retention.BATCH_SECONDS
    assert retention.next_batch(400, target / 10) == 800  # at most doubled
    assert retention.next_batch(400, target * 10) == 200  # at most halved
    assert retention.next_batch(400, target) == 400
    assert retention.next_batch(retention.MAX_BATCH, 0) == retention.MAX_BATCH
    assert retention.next_batch(retention.MIN_BATCH, 10.0) == retention.MIN_BATCH


def test_sqlite_gives_freed_pages_back(app):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA auto_vacuum")).scalar() == 2  # INCREMENTAL, set at creation
    seed(app, 600, timedelta(days=3), payload=3000)
    with app.app_context():
        with db.engine.connect() as conn:
            pages = conn.execute(text("PRAGMA page_count")).scalar()
        retention.prune(ledger.utcnow() - timedelta(days=1), batch=50)
        with db.engine.connect() as conn:
            free = conn.execute(text("PRAGMA freelist_count")).scalar()
            after = conn.execute(text("PRAGMA page_count")).scalar()
            jobs = conn.execute(select(func.count()).select_from(ledger.jobs_table)).scalar()
        assert jobs == 300
        assert after < pages - 250  # about half of 600 rows of 3 kB each went back
        assert free < retention.VACUUM_PAGES
