"""The job ledger: the SQL source of truth for every job and every state it went through.

The transport (Huey on Redis or SQLite) only carries messages; the ledger is what
the dashboard reads and what recovery trusts. Writes go through ``apply`` (state
changes, validated against ``tasks.lifecycle``) and ``insert_jobs`` (new jobs).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, bindparam, delete, func
from sqlalchemy import insert, text
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from tasks import lifecycle, metrics
from tasks.lifecycle import Transition

log = logging.getLogger(__name__)

RESULT_LIMIT = 64 * 1024  # bytes of result JSON kept on the job row
MESSAGE_LIMIT = 4000  # characters of an exception message kept
TRACEBACK_LIMIT = 32 * 1024


def utcnow() -> datetime:
    """Naive UTC now: every ledger timestamp is naive UTC on every database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def from_epoch(seconds: float | None) -> datetime | None:
    """Naive UTC datetime from epoch seconds."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)


def to_epoch(value: datetime | None) -> float | None:
    """Epoch seconds of a naive UTC datetime."""
    return None if value is None else value.replace(tzinfo=timezone.utc).timestamp()


_id_lock = threading.Lock()
_id_state = {"ms": 0, "seq": 0, "pid": 0}


def new_job_id() -> str:
    """A 32-hex-digit id that sorts by creation time (ms, then a per-process sequence)."""
    with _id_lock:
        ms = int(time.time() * 1000)
        if ms == _id_state["ms"] and _id_state["pid"] == os.getpid():
            _id_state["seq"] = (_id_state["seq"] + 1) & 0xFFFF
        else:
            _id_state.update(ms=ms, seq=0, pid=os.getpid())
        seq = _id_state["seq"]
    return f"{ms:012x}{seq:04x}{secrets.token_hex(8)}"


class Job(db.Model):
    """One row per job: what to run, where, and what happened last."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(255), default="")
    queue: Mapped[str] = mapped_column(String(64), default="default")
    priority: Mapped[int] = mapped_column(default=0)
    args: Mapped[str] = mapped_column(Text, default="[]")
    kwargs: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(Text, default="")
    state_changed_at: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=10)
    created_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    scheduled_for: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[str | None] = mapped_column(Text)
    exception_type: Mapped[str | None] = mapped_column(String(255))
    exception_message: Mapped[str | None] = mapped_column(Text)
    exception_traceback: Mapped[str | None] = mapped_column(Text)
    enqueued_by: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[int | None]
    progress_message: Mapped[str | None] = mapped_column(String(255))
    cancel_requested_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(255))
    #: continuation: run after ``parent_id`` reaches success (``on_success``) or any final state
    parent_id: Mapped[str | None] = mapped_column(String(32))
    continue_on: Mapped[str | None] = mapped_column(String(16))
    recurring_id: Mapped[str | None] = mapped_column(String(100))
    #: the tenant (name) the job belongs to; None for the host's jobs
    tenant: Mapped[str | None] = mapped_column(String(64))
    history: Mapped[list["JobState"]] = relationship(
        order_by="JobState.id", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_jobs_state_changed", "state", "state_changed_at", "id"),
        Index("ix_jobs_changed", "state_changed_at", "id"),  # "all jobs" lists
        Index("ix_jobs_state_attempt", "state", "attempt"),  # retries
        Index("ix_jobs_queue_state", "queue", "state", "priority"),
        Index("ix_jobs_task_state", "task", "state"),
        Index("ix_jobs_state_due", "state", "scheduled_for", "id"),  # Scheduled, soonest due first
        # continuations and a recurring job's runs: only the few jobs that have one (migration 0015)
        *(Index(f"ix_jobs_{column}", column, sqlite_where=text(f"{column} IS NOT NULL"),
                postgresql_where=text(f"{column} IS NOT NULL")) for column in ("parent_id", "recurring_id")),
        # one tenant's lists and counts (a tenant user's dashboard, a host user's tenant filter); partial,
        # so the host's jobs (every job of a single-tenant deployment) cost no extra index writes
        Index("ix_jobs_tenant_state_changed", "tenant", "state", "state_changed_at", "id",
              postgresql_where=text("tenant IS NOT NULL"), sqlite_where=text("tenant IS NOT NULL")),
        Index("ix_jobs_tenant_changed", "tenant", "state_changed_at", "id",
              postgresql_where=text("tenant IS NOT NULL"), sqlite_where=text("tenant IS NOT NULL")),
        # text search in arguments and errors (LIKE '%…%') on PostgreSQL: trigram indexes
        *(Index(f"ix_jobs_{column}_trgm", column, postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"}).ddl_if(dialect="postgresql")
          for column in ("args", "kwargs", "exception_message", "exception_type")),
    )

    @property
    def arguments(self) -> dict:
        """Decoded args and kwargs."""
        return {"args": json.loads(self.args or "[]"), "kwargs": json.loads(self.kwargs or "{}")}


# Enqueued in run order: highest priority first, then oldest (the dashboard's Enqueued list)
Index("ix_jobs_state_run", Job.state, Job.priority.desc(), Job.enqueued_at, Job.id)


class JobState(db.Model):
    """One row per transition: the state entered, why, when, and its details."""

    __tablename__ = "job_states"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    data: Mapped[str] = mapped_column(Text, default="{}")

    @property
    def details(self) -> dict:
        """Decoded per-state data."""
        return json.loads(self.data or "{}")


class JobCounter(db.Model):
    """Append-only per-state deltas; summed (and compacted) for cheap counts at any size."""

    __tablename__ = "job_counters"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(BigInteger)


class JobThroughput(db.Model):
    """Append-only counts of jobs finishing per state and time bucket (the dashboard's graphs).

    Rows are written with the transitions they count; the janitor folds recent
    5-second buckets and rolls older ones up into hours.
    """

    __tablename__ = "job_throughput"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger)


THROUGHPUT_STATES = frozenset({lifecycle.SUCCEEDED, lifecycle.FAILED})
BUCKET_SECONDS = 5

jobs_table = Job.__table__
throughput_table = JobThroughput.__table__
states_table = JobState.__table__
counters_table = JobCounter.__table__


@dataclass
class NewJob:
    """A job about to be created."""

    id: str
    task: str
    display_name: str
    queue: str
    priority: int
    args: list
    kwargs: dict
    state: str  # Enqueued, Scheduled or Awaiting
    max_attempts: int
    scheduled_for: datetime | None = None
    enqueued_by: str | None = None
    reason: str = ""
    parent_id: str | None = None
    continue_on: str | None = None
    recurring_id: str | None = None
    tenant: str | None = None
    encoded: tuple[str, str] | None = None  # args and kwargs as JSON, when the caller has them already

    def row(self, now: datetime) -> dict:
        """The ``jobs`` row for this job."""
        return {
            "id": self.id, "task": self.task, "display_name": self.display_name, "queue": self.queue,
            "priority": self.priority, **self.arguments_json(),
            "state": self.state, "state_reason": self.reason, "state_changed_at": now, "attempt": 0,
            "max_attempts": self.max_attempts, "created_at": now,
            "enqueued_at": now if self.state == lifecycle.ENQUEUED else None,
            "scheduled_for": self.scheduled_for, "started_at": None, "finished_at": None,
            "worker": None, "result": None, "exception_type": None, "exception_message": None,
            "exception_traceback": None, "enqueued_by": self.enqueued_by, "progress": None,
            "progress_message": None, "cancel_requested_at": None, "cancel_reason": None,
            "parent_id": self.parent_id, "continue_on": self.continue_on, "recurring_id": self.recurring_id,
            "tenant": self.tenant,
        }

    def arguments_json(self) -> dict[str, str]:
        """The ``args`` and ``kwargs`` columns."""
        args, kwargs = self.encoded or (json.dumps(self.args), json.dumps(self.kwargs))
        return {"args": args, "kwargs": kwargs}

    def history_row(self, now: datetime) -> dict:
        """The first ``job_states`` row for this job."""
        return {"job_id": self.id, "state": self.state, "reason": self.reason, "created_at": now,
                "data": history_data(self.queue, self.scheduled_for)}


@functools.lru_cache(maxsize=256)
def history_data(queue: str, scheduled_for: datetime | None) -> str:
    """The data of a job's first history row (cached: a bulk enqueue repeats it)."""
    data: dict[str, Any] = {"queue": queue}
    if scheduled_for:
        data["scheduled_for"] = scheduled_for.isoformat()
    return json.dumps(data)


def insert_jobs(conn: Connection, new_jobs: Sequence[NewJob]) -> None:
    """Create ``new_jobs`` (rows, first history rows and counters) on ``conn``.

    Three statements; on PostgreSQL a batch below ``COPY_FROM`` goes as one (one round trip).
    """
    if not new_jobs:
        return
    now = utcnow()
    jobs = [job.row(now) for job in new_jobs]
    states = [job.history_row(now) for job in new_jobs]
    deltas: dict[str, int] = defaultdict(int)
    for job in new_jobs:
        deltas[job.state] += 1
    counts = [{"state": state, "delta": delta} for state, delta in sorted(deltas.items())]
    if conn.dialect.name == "postgresql" and len(new_jobs) < COPY_FROM:
        insert_in_one_statement(conn, [(jobs_table.name, jobs), (states_table.name, states),
                                       (counters_table.name, counts)])
        return
    insert_rows(conn, jobs_table.name, jobs)
    insert_rows(conn, states_table.name, states)
    insert_rows(conn, counters_table.name, counts)


def insert_in_one_statement(conn: Connection, parts: list[tuple[str, list[dict]]]) -> None:
    """INSERT rows into several tables with one PostgreSQL statement (data-modifying CTEs): one round trip.

    A per-call enqueue writes three small inserts; sending them as one statement saves two
    round trips to the server, and the statement is atomic on its own.
    """
    clauses, params = [], []
    for table, rows in parts:
        columns = list(rows[0])
        row_marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
        values = ", ".join([row_marks] * len(rows))
        clauses.append(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")
        params += [row[c] for row in rows for c in columns]
    *ctes, last = clauses
    sql = "WITH " + ", ".join(f"w{i} AS ({c})" for i, c in enumerate(ctes)) + " " + last if ctes else last
    conn.exec_driver_sql(sql, tuple(params))


#: From this many rows on, PostgreSQL gets them by COPY instead of a multi-row INSERT.
COPY_FROM = 200
#: Timestamp columns per table (converted for SQLite by ``insert_rows``).
TIMESTAMPS = {table.name: frozenset(c.name for c in table.columns if isinstance(c.type, DateTime))
              for table in (jobs_table, states_table)}


def insert_rows(conn: Connection, table: str, rows: list[dict]) -> None:
    """INSERT plain rows (every row with the same keys) straight through the driver.

    Enqueue is the hot path: this skips SQLAlchemy's per-row parameter processing. SQLite
    gets one ``executemany`` (timestamps in SQLAlchemy's own text format); PostgreSQL gets
    ``COPY ... FROM STDIN`` for large batches and ``executemany`` (pipelined by psycopg) else.
    """
    columns = list(rows[0])
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        values = [[row[c] for c in columns] for row in rows]
        if len(rows) >= COPY_FROM:
            with conn.connection.dbapi_connection.cursor() as cursor:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
            return
        conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})",
                             [tuple(v) for v in values])
        return
    stamps = TIMESTAMPS.get(table, frozenset())
    if stamps & set(columns):  # SQLite stores timestamps as SQLAlchemy's text: YYYY-MM-DD HH:MM:SS.ffffff
        rows = [{**row, **{c: row[c].isoformat(" ", "microseconds")
                           for c in stamps if row.get(c) is not None}}
                for row in rows]
    values = [tuple(row[c] for c in columns) for row in rows]
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})", values)


def add_counts(conn: Connection, deltas: dict[str, int]) -> None:
    """Record per-state count changes."""
    rows = [{"state": s, "delta": d} for s, d in sorted(deltas.items()) if d]
    if rows:
        conn.execute(insert(counters_table), rows)


def clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, marked when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 20] + "… [truncated]"


def encode_result(value: Any) -> str | None:
    """A job's return value as JSON for the ledger, capped at ``RESULT_LIMIT`` bytes."""
    if value is None:
        return None
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text.encode()) > RESULT_LIMIT:
        return json.dumps({"truncated": True, "preview": text[:1000], "bytes": len(text.encode())})
    return text


@dataclass
class Outcome:
    """What happened to one transition in ``apply``."""

    transition: Transition
    applied: bool
    previous: str | None


def apply(conn: Connection, transitions: Sequence[Transition]) -> list[Outcome]:
    """Apply state changes in order, in the caller's transaction.

    Each transition is checked against the job's current state (as of this
    transaction plus earlier transitions in the list); one that isn't allowed is
    skipped and reported with ``applied=False`` rather than raised, so that one
    stale message can't block a batch. Use ``apply_strict`` to raise instead.
    """
    if not transitions:
        return []
    ids = sorted({t.job_id for t in transitions})
    current, workers, names = {}, {}, {}
    c = jobs_table.c
    for chunk in chunks(ids, 500):
        query = select(c.id, c.state, c.worker, c.task, c.queue).where(c.id.in_(chunk))
        if conn.dialect.name == "postgresql":  # concurrent claims of one job serialize on its row
            query = query.order_by(c.id).with_for_update()
        for row in conn.execute(query):
            current[row.id], workers[row.id], names[row.id] = row.state, row.worker, (row.task, row.queue)
    outcomes, merged, history = [], {}, []
    deltas: dict[str, int] = defaultdict(int)
    for t in transitions:
        previous = current.get(t.job_id)
        ok = (previous is not None and previous in t.allowed_from() and lifecycle.can_move(previous, t.state)
              and (t.expected_worker is None or workers.get(t.job_id) == t.expected_worker))
        outcomes.append(Outcome(t, ok, previous))
        if not ok:
            continue
        current[t.job_id] = t.state
        workers[t.job_id] = t.fields.get("worker", workers.get(t.job_id))
        deltas[previous] -= 1
        deltas[t.state] += 1
        row = merged.setdefault(t.job_id, {})
        row.update(t.fields)
        row.update(state=t.state, state_reason=t.reason, state_changed_at=t.at)
        history.append({"job_id": t.job_id, "state": t.state, "reason": t.reason, "created_at": t.at,
                        "data": json.dumps(t.data, default=str)})
    write_rows(conn, merged)
    if history:
        conn.execute(insert(states_table), history)
    add_counts(conn, deltas)
    add_throughput(conn, [o.transition for o in outcomes if o.applied])
    metrics.record(conn, outcomes, names)
    return outcomes


def bucket_of(at: datetime, seconds: int = BUCKET_SECONDS) -> datetime:
    """The start of the ``seconds``-long bucket holding ``at``."""
    epoch = int(to_epoch(at))
    return from_epoch(epoch - epoch % seconds)


def add_throughput(conn: Connection, transitions: Iterable[Transition]) -> None:
    """Count finished jobs per 5-second bucket and state."""
    buckets: dict[tuple[datetime, str], int] = defaultdict(int)
    for t in transitions:
        if t.state in THROUGHPUT_STATES:
            buckets[(bucket_of(t.at), t.state)] += 1
    if buckets:
        conn.execute(insert(throughput_table),
                     [{"bucket": b, "state": s, "count": n} for (b, s), n in sorted(buckets.items())])


def fold_throughput(conn: Connection, older_than: datetime, roll_up_before: datetime) -> None:
    """Merge duplicate bucket rows older than ``older_than``; roll buckets before ``roll_up_before`` into
    hours."""
    c = throughput_table.c
    removed = conn.execute(delete(throughput_table).where(c.bucket < older_than)
                           .returning(c.bucket, c.state, c.count))
    merged: dict[tuple[datetime, str], int] = defaultdict(int)
    for bucket, state, count in removed:
        key_bucket = bucket_of(bucket, 3600) if bucket < roll_up_before else bucket
        merged[(key_bucket, state)] += count
    if merged:
        conn.execute(insert(throughput_table),
                     [{"bucket": b, "state": s, "count": n} for (b, s), n in sorted(merged.items())])


def apply_strict(conn: Connection, transitions: Sequence[Transition]) -> list[Outcome]:
    """Like ``apply`` but raise ``IllegalTransition`` (nothing written) if any is refused."""
    outcomes = apply(conn, transitions)
    for outcome in outcomes:
        if not outcome.applied:
            conn.rollback()
            raise lifecycle.IllegalTransition(outcome.transition.job_id, outcome.previous,
                                              outcome.transition.state)
    return outcomes


def write_rows(conn: Connection, merged: dict[str, dict]) -> None:
    """UPDATE the job rows, grouping rows that set the same columns into one executemany."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for job_id, values in merged.items():
        groups[tuple(sorted(values))].append({"_id": job_id, **{f"v_{k}": v for k, v in values.items()}})
    for columns, rows in groups.items():
        statement = (update(jobs_table).where(jobs_table.c.id == bindparam("_id"))
                     .values({c: bindparam(f"v_{c}") for c in columns}))
        conn.execute(statement, rows)


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def counts(conn: Connection) -> dict[str, int]:
    """Jobs per state, from the counter deltas (cheap at any table size)."""
    rows = conn.execute(select(counters_table.c.state, func.sum(counters_table.c.delta))
                        .group_by(counters_table.c.state))
    totals = {state: 0 for state in lifecycle.STATES}
    totals.update({state: int(total or 0) for state, total in rows})
    return totals


def compact_counts(conn: Connection) -> int:
    """Fold the counter deltas into one row per state; returns how many rows were folded.

    ``DELETE ... RETURNING`` removes exactly the rows it read, so deltas that
    concurrent transactions add meanwhile are kept.
    """
    removed = conn.execute(delete(counters_table).returning(counters_table.c.state, counters_table.c.delta))
    totals: dict[str, int] = defaultdict(int)
    folded = 0
    for state, value in removed:
        totals[state] += value
        folded += 1
    add_counts(conn, totals)
    return folded
