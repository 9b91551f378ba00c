"""Text search at any size: every step of ``tasks.search`` gives the list's exact answer (newest first,
paged, counted), the SQLite text index follows the ledger, and on PostgreSQL the rare-term step
uses the trigram index even where the planner, left to itself, walks the table newest-first."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import insert, text, update

from app.extensions import db
from tasks import ledger, lifecycle, queries, search
from tasks.queries import JobFilter
from tests.helpers.ledger import failed_row

STATES = (lifecycle.SUCCEEDED, lifecycle.FAILED, lifecycle.DELETED)


def job_rows(count: int, term_every: dict[str, int], start: int = 0) -> list[dict]:
    """``count`` finished jobs, one a second apart (newest last); job ``i`` carries ``term`` in its
    arguments when ``i % every == 0`` for each ``term_every`` entry, Failed ones an error text."""
    now, rows = ledger.utcnow(), []
    for i in range(start, start + count):
        state = STATES[i % len(STATES)]
        terms = [term for term, every in term_every.items() if i % every == 0]
        row = failed_row(ledger.new_job_id(), "demo.noop", "default", now - timedelta(seconds=100_000 - i))
        row.update(state=state, args=json.dumps([i, *terms]), kwargs=json.dumps({"n": i}),
                   exception_message=f"error {i} in batch" if state == lifecycle.FAILED else None,
                   exception_type="ValueError" if state == lifecycle.FAILED else None)
        rows.append(row)
    return rows


def seed(app, rows: list[dict]) -> None:
    """Insert ``rows`` into the ledger."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(ledger.jobs_table), rows)


def expected(rows: list[dict], needle: str, state: str | None = None) -> list[str]:
    """The ids a search for ``needle`` must list, newest first (computed here, not by the database)."""
    columns = ("args", "kwargs", "exception_message", "exception_type")
    hits = [r for r in rows if (state is None or r["state"] == state)
            and any(needle in (r[c] or "") for c in columns)]
    return [r["id"] for r in sorted(hits, key=lambda r: (r["state_changed_at"], r["id"]), reverse=True)]


def every_page(job_filter: JobFilter, limit: int) -> list[str]:
    """Ids of every page of a list, following its cursors."""
    ids, cursor = [], None
    while True:
        page = queries.list_jobs(job_filter, limit=limit, cursor=cursor)
        ids += [job.id for job in page.jobs]
        if not page.next_cursor:
            return ids
        cursor = page.next_cursor


@pytest.fixture
def ledger_rows(app):
    """600 jobs: "rare-term" in 3, "mid-term" in 1 of 20, "all-term" in every one."""
    rows = job_rows(600, {"rare-term": 250, "mid-term": 20, "all-term": 1})
    seed(app, rows)
    return rows


# small windows and cap, so that 600 rows take every step that 10 million would
# (SMALL_LIST 0: no list is small; COUNT_CHUNK 7: the count takes the text index's candidates in chunks)
STEPS = {
    "window": {"WINDOW_ROWS": 10_000},
    "text index": {"WINDOW_ROWS": 5, "CANDIDATE_CAP": 1000, "COMMON_HITS": 10_000},
    "small list": {"WINDOW_ROWS": 5, "CANDIDATE_CAP": 2, "SMALL_LIST": 1000, "COUNT_CHUNK": 7},
    "wider windows": {"WINDOW_ROWS": 5, "CANDIDATE_CAP": 2, "MAX_WINDOW_ROWS": 10_000, "SMALL_LIST": 0,
                      "COUNT_CHUNK": 7},
    "plain query": {"WINDOW_ROWS": 5, "CANDIDATE_CAP": 2, "MAX_WINDOW_ROWS": 6, "SMALL_LIST": 0},
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_lists_exactly_the_matches_newest_first(app, ledger_rows, monkeypatch, step):
    for name, value in STEPS[step].items():
        monkeypatch.setattr(search, name, value)
    with app.app_context():
        for needle in ("rare-term", "mid-term", "all-term", "error 3", "nowhere-at-all", "ValueError"):
            for state in (None, lifecycle.FAILED):
                want = expected(ledger_rows, needle, state)
                assert every_page(JobFilter(state=state, text=needle), limit=7) == want, (needle, state)
                total, capped = queries.count_jobs(JobFilter(state=state, text=needle), cap=50)
                assert (total, capped) == (min(len(want), 50), len(want) > 50), (needle, state)


def test_short_and_odd_terms_are_found_without_the_index(app, ledger_rows, monkeypatch):
    monkeypatch.setattr(search, "WINDOW_ROWS", 5)
    with app.app_context():
        for needle in ('"n": 12', "9]", "_", "%", '"', "\\"):
            assert every_page(JobFilter(text=needle), limit=50) == expected(ledger_rows, needle), needle


def test_the_text_index_follows_updates_and_deletes(app, monkeypatch):
    monkeypatch.setattr(search, "WINDOW_ROWS", 1)  # nothing is found in the first window: the index answers
    rows = job_rows(40, {"kept-term": 4})
    seed(app, rows)
    c = ledger.jobs_table.c
    with app.app_context():
        changed, removed = rows[8]["id"], rows[12]["id"]
        with db.engine.begin() as conn:
            conn.execute(update(ledger.jobs_table).where(c.id == changed)
                         .values(exception_message="now mentions fresh-term", args="[]"))
            conn.execute(ledger.jobs_table.delete().where(c.id == removed))
        assert every_page(JobFilter(text="fresh-term"), 10) == [changed]
        kept = [r["id"] for r in reversed(rows)
                if "kept-term" in r["args"] and r["id"] not in (changed, removed)]
        assert every_page(JobFilter(text="kept-term"), 3) == kept
        if db.engine.dialect.name == "sqlite":
            with db.engine.begin() as conn:  # raises when the index and the table disagree
                conn.execute(text("INSERT INTO jobs_search (jobs_search, rank) "
                                  "VALUES ('integrity-check', 1)"))


@pytest.mark.postgres
def test_a_rare_term_takes_the_trigram_index_where_the_planner_would_walk_the_table(app):
    """Statistics taken while a term was everywhere make the planner expect it on every row: left to
    itself it walks the jobs newest-first; the search's index step still asks the trigram index."""
    rows = job_rows(20_000, {"shifting-term": 1})
    seed(app, rows)
    c = ledger.jobs_table.c
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE jobs SET (autovacuum_enabled = false)"))
            conn.execute(text("ANALYZE jobs"))
            conn.execute(update(ledger.jobs_table).where(c.id.notin_([r["id"] for r in rows[:3]]))
                         .values(args="[]"))
        plain = (queries.select(c.id).where(search.text_condition("shifting-term", c))
                 .order_by(*queries.sort_columns("changed", c)).limit(51))
        with db.engine.connect() as conn:
            assert "ix_jobs_changed" in explain(conn, plain)
        with db.engine.connect() as conn, search.forced_plan(conn):
            plan = explain(conn, search.candidates_query("shifting-term", search.CANDIDATE_CAP + 1))
        assert "Bitmap Index Scan on ix_jobs_args_trgm" in plan and "Seq Scan" not in plan
        assert every_page(JobFilter(text="shifting-term"), 50) == expected(rows[:3], "shifting-term")
        assert every_page(JobFilter(state=lifecycle.FAILED, text="shifting-term"), 50) == expected(
            rows[:3], "shifting-term", lifecycle.FAILED)


def explain(conn, statement) -> str:
    """PostgreSQL's plan for ``statement`` as text."""
    compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
    return "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
