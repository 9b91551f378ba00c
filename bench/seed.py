"""Seed a large ledger with set-based SQL: millions of jobs in a few minutes per database.

Rows are made by the database itself (PostgreSQL: ``INSERT ... SELECT`` over ``generate_series``;
SQLite: a recursive CTE), a million per statement, with the secondary indexes dropped during the
load and built again afterwards (as a restore does), foreign-key checks off during the load, and on
SQLite no journal. What the rows hold follows ``bench.dashboard``'s description: a week of jobs in
every state (``MIX``), arguments naming one of 5,000 customers (a common term) or, for ``NEEDLES``
jobs, a unique ``needle-<n>`` (a rare one), Failed jobs (and half the Scheduled: retries) with an
error naming the customer. Each job gets one history row (its current state). With ``tenants`` > 0
the jobs are spread round-robin over tenants ``tenant-0`` … ``tenant-<tenants - 1>``.
"""
from __future__ import annotations

import sqlite3
import time
from datetime import datetime

from sqlalchemy import text

#: share of seeded jobs per state (Scheduled: half of them are retries, attempt >= 1)
MIX = (("Succeeded", 0.70), ("Failed", 0.10), ("Deleted", 0.06), ("Enqueued", 0.06), ("Scheduled", 0.06),
       ("Processing", 0.02))
TASKS = ("demo.sleep", "demo.noop", "reports.build", "email.send", "demo.fail")
QUEUES = ("default", "email", "reports")
CUSTOMERS = 5000
NEEDLES = 7  # jobs carrying a rare "needle-<n>" argument, for the search
STEP = 1_000_000  # rows per INSERT statement
#: a deterministic scatter of the index over [0, 4294967291) (multiplicative hash by a prime modulus):
#: the same rows on both databases, and no volatile function a query flattener could evaluate twice
SPREAD = "(i * 2654435761) % 4294967291"
US_PER_STEP = 140  # SPREAD * this: up to a week ago, in microseconds
START_US = "10000 + (i * 40503) % 65521 * 76"  # started 10 ms to 5 s before the last change
SEEDED_TABLES = ("jobs", "job_states")


def pick(values: tuple[str, ...], index: str) -> str:
    """SQL choosing ``values[index % len(values)]``."""
    cases = " ".join(f"WHEN {n} THEN '{v}'" for n, v in enumerate(values))
    return f"CASE ({index}) % {len(values)} {cases} END"


def state_case(index: str, rows: int) -> str:
    """SQL for the state of the ``index``-th job, following ``MIX`` (contiguous runs of ids)."""
    cases, edge = [], 0.0
    for state, share in MIX:
        edge += share
        cases.append(f"WHEN {index} < {int(edge * rows)} THEN '{state}'")
    return f"CASE {' '.join(cases)} ELSE '{MIX[0][0]}' END"


def needle_rule(rows: int) -> tuple[int, int]:
    """(every how many rows, at which remainder) a job carries a needle instead of a customer."""
    return max(1, rows // NEEDLES), 3


TENANT_PREFIX = "tenant-"


def tenant_name(n: int) -> str:
    """The name of the ``n``-th seeded tenant."""
    return f"{TENANT_PREFIX}{n}"


def job_columns(dialect: str, rows: int, tenants: int = 0) -> dict[str, str]:
    """SQL expression per ``jobs`` column, over ``i`` (the index), ``state``, ``changed``, ``started``."""
    every, at = needle_rule(rows)
    cat = "||"
    term = (f"CASE WHEN i % {every} = {at} THEN 'needle-' {cat} i "
            f"ELSE 'customer-' {cat} (i % {CUSTOMERS}) END")
    failed = "(state = 'Failed' OR (state = 'Scheduled' AND i % 2 = 1))"
    finished = "state IN ('Succeeded', 'Failed', 'Deleted')"
    later = "changed + interval '1 hour'" if dialect == "postgresql" else "datetime(changed, '+1 hour')"
    return {
        "id": "job_id", "task": pick(TASKS, "i"), "display_name": f"'Job ' {cat} i",
        "queue": pick(QUEUES, "i"), "priority": "0",
        "args": f"'[' {cat} i {cat} ', \"' {cat} {term} {cat} '\"]'",
        "kwargs": (f"'{{\"attempt_note\": \"' {cat} substr('{'x' * 40}', 1, CAST(i % 40 AS INTEGER)) "
                   f"{cat} '\"}}'"),
        "state": "state", "state_reason": "state", "state_changed_at": "changed",
        "attempt": f"CASE WHEN {failed} THEN 1 ELSE 0 END", "max_attempts": "10",
        "created_at": "started", "enqueued_at": "started",
        "scheduled_for": f"CASE WHEN state = 'Scheduled' THEN {later} END",
        "started_at": "CASE WHEN state <> 'Enqueued' THEN started END",
        "finished_at": f"CASE WHEN {finished} THEN changed END", "worker": "'bench-host:1:cafe'",
        "result": "CASE WHEN state = 'Succeeded' THEN '42' END",
        "exception_type": f"CASE WHEN {failed} THEN 'ValueError' END",
        "exception_message": (f"CASE WHEN {failed} THEN 'could not reach customer-' {cat} "
                              f"(i % {CUSTOMERS}) END"),
        "exception_traceback": (f"CASE WHEN {failed} THEN 'Traceback (most recent call last):' {cat} "
                                "char(10) || '  ...' || char(10) || 'ValueError' END"),
        "enqueued_by": "CASE i % 3 WHEN 0 THEN 'alice' WHEN 1 THEN 'bob' END",
        "tenant": f"'{TENANT_PREFIX}' {cat} (i % {tenants})" if tenants else "NULL",
    }


def postgres_rows(rows: int, start: int, stop: int, tenants: int = 0) -> str:
    """``INSERT INTO jobs ... SELECT`` for indexes ``start`` to ``stop - 1`` (PostgreSQL)."""
    columns = job_columns("postgresql", rows, tenants)
    columns["exception_traceback"] = columns["exception_traceback"].replace("char(10)", "chr(10)")
    source = f"""
        SELECT i, state, changed, changed - ({START_US}) * interval '1 microsecond' AS started,
               lpad(to_hex((extract(epoch FROM changed) * 1000)::bigint), 12, '0')
               || lpad(to_hex(i % 65536), 4, '0') || lpad(to_hex(i), 8, '0')
               || lpad(to_hex({SPREAD}), 8, '0') AS job_id
        FROM (SELECT i, {state_case('i', rows)} AS state,
                     CAST(:now AS timestamp)
                         - ({SPREAD} * {US_PER_STEP}) * interval '1 microsecond' AS changed
              FROM generate_series({start}::bigint, {stop - 1}::bigint) AS i) s"""
    return (f"INSERT INTO jobs ({', '.join(columns)}) SELECT {', '.join(columns.values())} "
            f"FROM ({source}) seeded")


def sqlite_stamp(micros: str) -> str:
    """SQL turning integer epoch microseconds into SQLAlchemy's SQLite text (YYYY-MM-DD HH:MM:SS.ffffff)."""
    return (f"strftime('%Y-%m-%d %H:%M:%S', ({micros}) / 1000000, 'unixepoch') "
            f"|| printf('.%06d', ({micros}) % 1000000)")


def sqlite_rows(rows: int, start: int, stop: int, tenants: int = 0) -> str:
    """The SQLite ``INSERT INTO jobs ... SELECT`` (a recursive CTE counts) for ``start`` to ``stop - 1``."""
    columns = job_columns("sqlite", rows, tenants)
    source = f"""
        SELECT i, state, {sqlite_stamp('changed_us')} AS changed,
               {sqlite_stamp(f'changed_us - ({START_US})')} AS started,
               printf('%012x%04x%08x%08x', changed_us / 1000, i % 65536, i, {SPREAD}) AS job_id
        FROM (SELECT i, {state_case('i', rows)} AS state, :now_us - {SPREAD} * {US_PER_STEP} AS changed_us
              FROM counter)"""
    return (f"WITH RECURSIVE counter(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM counter "
            f"WHERE i < {stop - 1}) "
            f"INSERT INTO jobs ({', '.join(columns)}) SELECT {', '.join(columns.values())} FROM ({source})")


HISTORY = ("INSERT INTO job_states (job_id, state, reason, created_at, data) "
           "SELECT id, state, state_reason, state_changed_at, '{{\"queue\": \"' || queue || '\"}}' FROM jobs")
COUNTERS = "INSERT INTO job_counters (state, delta) SELECT state, count(*) FROM jobs GROUP BY state"


def secondary_indexes(conn, dialect: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every index on the seeded tables but the primary keys."""
    if dialect == "postgresql":
        query = ("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('jobs', 'job_states') "
                 "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')")
    else:
        query = ("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                 "AND tbl_name IN ('jobs', 'job_states')")
    return [(name, sql) for name, sql in conn.execute(text(query))]


def seed_postgres(engine, rows: int, now: datetime, log, tenants: int = 0) -> None:
    """Load ``rows`` jobs and their history into PostgreSQL (indexes rebuilt, FK triggers off meanwhile)."""
    with engine.connect() as conn:
        indexes = secondary_indexes(conn, "postgresql")
        conn.commit()
        with conn.begin():
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # no FK checks on the load
            for name, _ in indexes:
                conn.execute(text(f'DROP INDEX "{name}"'))
            for start in range(0, rows, STEP):
                conn.execute(text(postgres_rows(rows, start, min(rows, start + STEP), tenants)), {"now": now})
                log(f"  jobs: {min(rows, start + STEP):,}")
            conn.execute(text(HISTORY.replace("{{", "{").replace("}}", "}")))
            conn.execute(text(COUNTERS))
            log("  history written; building indexes")
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        for name, create in indexes:
            conn.execute(text(create))
            conn.commit()
            log(f"  index {name}")


def seed_sqlite(path: str, rows: int, now: datetime, log, tenants: int = 0) -> None:
    """Load ``rows`` jobs and their history into the SQLite file at ``path`` (no journal meanwhile)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "foreign_keys=OFF", "cache_size=-400000",
                       "temp_store=MEMORY"):
            conn.execute(f"PRAGMA {pragma}")
        indexes = [(name, sql) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('jobs', 'job_states')")]
        triggers = [(name, sql) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'")]
        now_us = int((now - datetime(1970, 1, 1)).total_seconds() * 1_000_000)
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for name, _ in triggers:  # the text index is built once at the end instead
            conn.execute(f'DROP TRIGGER "{name}"')
        for start in range(0, rows, STEP):
            conn.execute(sqlite_rows(rows, start, min(rows, start + STEP), tenants), {"now_us": now_us})
            log(f"  jobs: {min(rows, start + STEP):,}")
        conn.execute(HISTORY.replace("{{", "{").replace("}}", "}"))
        conn.execute(COUNTERS)
        log("  history written; building indexes")
        for name, create in indexes:
            conn.execute(create)
            log(f"  index {name}")
        if triggers:
            conn.execute("INSERT INTO jobs_search (jobs_search) VALUES ('rebuild')")
            log("  text index (jobs_search)")
        for _, create in triggers:
            conn.execute(create)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def seed(app, rows: int, now: datetime, log, tenants: int = 0) -> float:
    """Seed ``rows`` jobs (spread over ``tenants`` tenants, if any) into the app's database; returns the
    seconds it took."""
    from app.extensions import db

    started = time.monotonic()
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            seed_postgres(engine, rows, now, log, tenants)
        else:
            engine.dispose()
            seed_sqlite(engine.url.database, rows, now, log, tenants)
        engine.dispose()
    return time.monotonic() - started
