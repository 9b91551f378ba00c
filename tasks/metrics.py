"""Job metrics kept beside the ledger: runs, outcomes, run times and queue waits per task and queue.

**Written with the transitions they count.** :func:`record` is called by ``ledger.apply`` in
the same transaction, so the completer's batched commit carries them: per batch, one row per
(minute, task, queue, kind) is *appended* to ``job_metrics`` (no worker updates a shared row,
so batches never wait on each other). The kinds:

==========  ====================================================  ===================
kind        the transition                                        its histogram
==========  ====================================================  ===================
started     a claim (→ Processing)                                queue wait
succeeded   Processing → Succeeded                                run time
failed      → Failed (the last attempt, or a poison message)      run time (if it ran)
retried     Processing → Scheduled (an attempt failed, retrying)  run time
deleted     → Deleted (cancelled while running, or by a person)   run time (if it ran)
==========  ====================================================  ===================

Each row holds a count, how many of them had a time (``observed``), the sum of those times
and a count per histogram band (``BOUNDS``, Prometheus' ``le`` semantics: a value lands in the
first band whose bound is ≥ it; the last band is +Inf).

**Folded by the maintenance leader** (:func:`fold`, every few seconds): raw rows are added to
the cumulative ``job_metric_totals`` and merged into one row per minute and key, in one
transaction; minutes older than an hour are rolled into hours, hours older than a day into
six-hour blocks, and blocks older than eight days are dropped. Prometheus counters read the
totals plus the raw rows not folded yet in one statement (:func:`totals`), so a scrape costs the
same at 1,000 or 1,000,000 jobs and is right across any number of processes, restarts included.
The dashboard's Metrics page reads time windows (:func:`window`, :func:`series`).
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Column, DateTime, Float, Index, Integer, String, Table, delete, func
from sqlalchemy import insert, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from app.extensions import db
from tasks import lifecycle

#: histogram band upper bounds in seconds (the last band, beyond 3600, is +Inf)
BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                             300.0, 600.0, 1800.0, 3600.0)
BANDS = tuple(f"h{index:02d}" for index in range(len(BOUNDS) + 1))

STARTED, SUCCEEDED, FAILED, RETRIED, DELETED = "started", "succeeded", "failed", "retried", "deleted"
#: kinds whose histogram is a run time (``started`` holds queue waits)
RUN_KINDS = (SUCCEEDED, FAILED, RETRIED, DELETED)
#: kinds that end a job (Prometheus' ``jobs_finished_total`` states)
FINISHED_KINDS = (SUCCEEDED, FAILED, DELETED)

#: a row's grain: appended by a batch (raw), then a folded minute, an hour, a six-hour block
RAW, MINUTE, HOUR, SIX_HOURS = 0, 60, 3600, 6 * 3600
MINUTES_KEPT = timedelta(hours=1)  # minute rows cover the last hour (and the hour before it)
HOURS_KEPT = timedelta(days=1)  # hour rows the last day
KEPT = timedelta(days=8)  # six-hour blocks the last week


def measure_columns() -> list[Column]:
    """The columns every metrics row holds: count, observed, seconds and one count per band."""
    return [Column("count", BigInteger, nullable=False, default=0),
            Column("observed", BigInteger, nullable=False, default=0),
            Column("seconds", Float, nullable=False, default=0.0),
            *(Column(band, BigInteger, nullable=False, default=0) for band in BANDS)]


metrics_table = Table(
    "job_metrics", db.metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("bucket", DateTime, nullable=False),
    Column("grain", Integer, nullable=False),
    Column("task", String(200), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    *measure_columns(),
    Index("ix_job_metrics_bucket", "bucket"),
    Index("ix_job_metrics_grain_bucket", "grain", "bucket"),
)

totals_table = Table(
    "job_metric_totals", db.metadata,
    Column("task", String(200), primary_key=True),
    Column("queue", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    *measure_columns(),
)

MEASURES = ("count", "observed", "seconds", *BANDS)


@dataclass
class Measure:
    """A count of events, and the histogram of the times they took (or waited)."""

    count: int = 0
    observed: int = 0
    seconds: float = 0.0
    bands: list[int] = field(default_factory=lambda: [0] * len(BANDS))

    def observe(self, value: float | None) -> None:
        """Count one event, with its time in seconds when known."""
        self.count += 1
        if value is None or value < 0:
            return
        self.observed += 1
        self.seconds += value
        self.bands[bisect.bisect_left(BOUNDS, value)] += 1

    def add(self, other: "Measure") -> None:
        """Add ``other``'s figures to these."""
        self.count += other.count
        self.observed += other.observed
        self.seconds += other.seconds
        self.bands = [a + b for a, b in zip(self.bands, other.bands)]

    def values(self) -> dict:
        """The row values of this measure."""
        return {"count": self.count, "observed": self.observed, "seconds": self.seconds,
                **dict(zip(BANDS, self.bands))}

    @classmethod
    def from_row(cls, row) -> "Measure":
        """The measure held by a row with the ``MEASURES`` columns (sums may come back as None)."""
        mapping = row._mapping
        return cls(int(mapping["count"] or 0), int(mapping["observed"] or 0),
                   float(mapping["seconds"] or 0.0), [int(mapping[band] or 0) for band in BANDS])

    def cumulative(self) -> list[int]:
        """Counts of values ≤ each bound, +Inf last (Prometheus buckets)."""
        running, out = 0, []
        for count in self.bands:
            running += count
            out.append(running)
        return out

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) estimated from the bands (linear within a band); None without data.

        Beyond the last bound the estimate is that bound (the true value is larger).
        """
        if self.observed <= 0:
            return None
        rank = q * self.observed
        running = 0
        for index, count in enumerate(self.bands):
            if count and running + count >= rank:
                if index == len(BOUNDS):
                    return BOUNDS[-1]
                low = BOUNDS[index - 1] if index else 0.0
                return low + (BOUNDS[index] - low) * max(0.0, rank - running) / count
            running += count
        return BOUNDS[-1]

    @property
    def mean(self) -> float | None:
        """Average time, None without data."""
        return self.seconds / self.observed if self.observed else None


# --- writing ----------------------------------------------------------------------------------

def minute_of(at: datetime) -> datetime:
    """The start of ``at``'s minute."""
    return at.replace(second=0, microsecond=0)


def hour_of(at: datetime) -> datetime:
    """The start of ``at``'s hour."""
    return at.replace(minute=0, second=0, microsecond=0)


def kind_of(state: str, previous: str | None) -> str | None:
    """The metric kind a transition from ``previous`` into ``state`` counts as (None: not counted)."""
    if state == lifecycle.PROCESSING:
        return STARTED
    if state == lifecycle.SUCCEEDED:
        return SUCCEEDED
    if state == lifecycle.FAILED:
        return FAILED
    if state == lifecycle.DELETED:
        return DELETED
    if state == lifecycle.SCHEDULED and previous == lifecycle.PROCESSING:
        return RETRIED
    return None


def seconds_in(data: dict, kind: str) -> float | None:
    """The time a transition's data records: the queue wait of a claim, else the attempt's run time."""
    key = "latency_ms" if kind == STARTED else "duration_ms"
    value = data.get(key)
    return float(value) / 1000 if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def record(conn: Connection, outcomes: Iterable, jobs: dict[str, tuple[str, str]]) -> None:
    """Append the metrics of the applied ``outcomes`` (``ledger.Outcome``); ``jobs`` maps a job id to
    its (task, queue). One row per (minute, task, queue, kind)."""
    rows: dict[tuple, Measure] = defaultdict(Measure)
    for outcome in outcomes:
        if not outcome.applied:
            continue
        t = outcome.transition
        kind = kind_of(t.state, outcome.previous)
        if kind is None or t.job_id not in jobs:
            continue
        task, queue = jobs[t.job_id]
        queue = t.data.get("queue", queue) if kind == STARTED else queue
        rows[(minute_of(t.at), task, str(queue)[:64], kind)].observe(seconds_in(t.data, kind))
    if rows:
        conn.execute(insert(metrics_table), [
            {"bucket": bucket, "grain": RAW, "task": task[:200], "queue": queue, "kind": kind, **m.values()}
            for (bucket, task, queue, kind), m in sorted(rows.items())])


# --- folding (the maintenance leader) ------------------------------------------------------------

KEY_COLUMNS = ("bucket", "task", "queue", "kind")


def take(conn: Connection, *where) -> list:
    """DELETE the metrics rows matching ``where`` and return them (exactly the rows removed)."""
    c = metrics_table.c
    return list(conn.execute(delete(metrics_table).where(*where)
                             .returning(*(c[name] for name in KEY_COLUMNS), *(c[m] for m in MEASURES))))


def merged(rows: Sequence, bucket_of) -> dict[tuple, Measure]:
    """``rows`` summed per (``bucket_of(bucket)``, task, queue, kind)."""
    out: dict[tuple, Measure] = defaultdict(Measure)
    for row in rows:
        out[(bucket_of(row.bucket), row.task, row.queue, row.kind)].add(Measure.from_row(row))
    return out


def put(conn: Connection, rows: dict[tuple, Measure], grain: int) -> None:
    """INSERT merged rows at ``grain``."""
    if rows:
        conn.execute(insert(metrics_table), [
            {"bucket": bucket, "grain": grain, "task": task, "queue": queue, "kind": kind, **m.values()}
            for (bucket, task, queue, kind), m in sorted(rows.items())])


def add_totals(conn: Connection, rows: dict[tuple, Measure]) -> None:
    """Add merged figures to the cumulative totals (an upsert per task, queue and kind)."""
    per_key: dict[tuple, Measure] = defaultdict(Measure)
    for (_, task, queue, kind), measure in rows.items():
        per_key[(task, queue, kind)].add(measure)
    if not per_key:
        return
    upsert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[conn.dialect.name]
    for (task, queue, kind), measure in sorted(per_key.items()):
        statement = upsert(totals_table).values(task=task, queue=queue, kind=kind, **measure.values())
        conn.execute(statement.on_conflict_do_update(
            index_elements=["task", "queue", "kind"],
            set_={name: totals_table.c[name] + statement.excluded[name] for name in MEASURES}))


def six_hours_of(at: datetime) -> datetime:
    """The start of ``at``'s six-hour block (00, 06, 12, 18 UTC)."""
    return hour_of(at).replace(hour=at.hour - at.hour % 6)


def fold(conn: Connection, now: datetime) -> int:
    """Fold every raw row into the totals and into one row per minute and key; roll minutes older than
    ``MINUTES_KEPT`` into hours and hours older than ``HOURS_KEPT`` into six-hour blocks; drop what is
    older than ``KEPT``. Returns how many raw rows were folded. Runs in the caller's transaction."""
    c = metrics_table.c
    raw = take(conn, c.grain == RAW)
    if raw:
        minutes = merged(raw, minute_of)
        add_totals(conn, minutes)
        earlier = take(conn, c.grain == MINUTE, c.bucket.in_(sorted({key[0] for key in minutes})))
        for key, measure in merged(earlier, minute_of).items():
            minutes[key].add(measure)
        put(conn, minutes, MINUTE)
    roll_ups = ((MINUTE, HOUR, hour_of(now - MINUTES_KEPT), hour_of),
                (HOUR, SIX_HOURS, six_hours_of(now - HOURS_KEPT), six_hours_of))
    for finer, coarser, cutoff, bucket_of in roll_ups:
        put(conn, merged(take(conn, c.grain == finer, c.bucket < cutoff), bucket_of), coarser)
    conn.execute(delete(metrics_table).where(c.grain != RAW, c.bucket < now - KEPT))
    return len(raw)


# --- reading ------------------------------------------------------------------------------------

def summed(source, *keys: str):
    """SELECT ``keys`` and the sum of every measure from ``source``, grouped by ``keys``."""
    return (select(*(source.c[k] for k in keys), *(func.sum(source.c[m]).label(m) for m in MEASURES))
            .group_by(*(source.c[k] for k in keys)))


def totals(conn: Connection | None = None) -> dict[tuple[str, str, str], Measure]:
    """Every (task, queue, kind) since the ledger began: the folded totals plus raw rows not folded yet,
    read in one statement (one snapshot, so a fold running meanwhile is counted exactly once)."""
    t, m = totals_table.c, metrics_table.c
    both = union_all(
        select(t.task, t.queue, t.kind, *(t[name] for name in MEASURES)),
        select(m.task, m.queue, m.kind, *(m[name] for name in MEASURES)).where(m.grain == RAW),
    ).subquery()
    query = summed(both, "task", "queue", "kind")
    rows = (conn or db.session).execute(query)
    return {(row.task, row.queue, row.kind): Measure.from_row(row) for row in rows}


def window(since: datetime, conn: Connection | None = None) -> dict[tuple[str, str], Measure]:
    """Every (task, kind) from ``since`` on (all queues together)."""
    m = metrics_table.c
    query = summed(metrics_table, "task", "kind").where(m.bucket >= since)
    rows = (conn or db.session).execute(query)
    return {(row.task, row.kind): Measure.from_row(row) for row in rows}


def series(since: datetime, kinds: Sequence[str], conn: Connection | None = None) -> list[tuple]:
    """``(bucket, task, kind, count)`` from ``since`` on for ``kinds``, per stored bucket."""
    m = metrics_table.c
    query = (select(m.bucket, m.task, m.kind, func.sum(m["count"]))
             .where(m.bucket >= since, m.kind.in_(list(kinds))).group_by(m.bucket, m.task, m.kind))
    return [tuple(row) for row in (conn or db.session).execute(query)]


def known_tasks(conn: Connection | None = None) -> list[str]:
    """Tasks that ever ran or finished (from the totals and raw rows)."""
    both = union_all(select(totals_table.c.task), select(metrics_table.c.task)
                     .where(metrics_table.c.grain == RAW)).subquery()
    return sorted({row[0] for row in (conn or db.session).execute(select(both.c.task).distinct())})
