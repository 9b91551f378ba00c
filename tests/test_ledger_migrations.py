"""The ledger's search and index migrations (0014, 0015) go down and up again on a database holding
jobs: the SQLite text index is rebuilt from the rows already there and answers searches."""
from __future__ import annotations

from datetime import timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, inspect, text

from app import create_app
from app.extensions import db
from tasks import ledger, search
from tasks.queries import JobFilter, list_jobs
from tests.conftest import base_config
from tests.helpers.ledger import failed_row
from tests.services import database_url

BEFORE = "0011_declared_queues"


def test_search_and_index_migrations_go_down_and_up_with_jobs_in_place(tmp_path, monkeypatch):
    url, drop = database_url(str(tmp_path))
    app = create_app(base_config(url, None, str(tmp_path / "instance")))
    try:
        with app.app_context():
            upgrade(revision=BEFORE)
            hour_ago = ledger.utcnow() - timedelta(hours=1)
            row = failed_row(ledger.new_job_id(), "demo.noop", "default", hour_ago)
            row.update(args='["old-needle"]', parent_id="p" * 32)
            with db.engine.begin() as conn:
                conn.execute(insert(ledger.jobs_table), [row])
            upgrade()
            indexes = {index["name"]: index for index in inspect(db.engine).get_indexes("jobs")}
            assert {"ix_jobs_parent_id", "ix_jobs_recurring_id"} <= set(indexes)
            monkeypatch.setattr(search, "WINDOW_ROWS", 1)
            monkeypatch.setattr(search, "COMMON_HITS", 10)  # the index answers, not the first window
            assert [job.id for job in list_jobs(JobFilter(text="old-needle")).jobs] == [row["id"]]
            db.session.remove()
            downgrade(revision=BEFORE)
            tables = set(inspect(db.engine).get_table_names())
            assert "jobs_search" not in tables
            with db.engine.connect() as conn:  # without the triggers, writes to jobs still work
                conn.execute(text("UPDATE jobs SET args = '[]'"))
                conn.commit()
            upgrade()
            assert list_jobs(JobFilter(text="old-needle")).jobs == []
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
