"""Retention: finished jobs past the retention period leave the ledger in short transactions.

Succeeded and Deleted jobs expire (``lifecycle.EXPIRING_STATES``); a busy app expires millions a
day from the two largest tables while workers claim and the dashboard reads. So:

* each transaction deletes one **batch** (the oldest expired jobs of one state, found through
  ``ix_jobs_state_changed``, with their history), and the batch size follows the time the last one
  took, aiming at ``BATCH_SECONDS``: on SQLite a transaction holds the database's only write lock,
  so a claim waits at most about that long; on PostgreSQL deletes lock only the deleted rows,
  which no claim or read waits for;
* between batches the pruner **pauses** as long as the batch took, so writers queue behind it at
  most once per batch and never starve;
* on SQLite, pages freed by a batch go back to the file system a few at a time
  (``PRAGMA incremental_vacuum``) when the database was created with ``auto_vacuum=INCREMENTAL``
  (every database the app creates, see ``app.extensions``); a database made before that needs a
  one-off ``PRAGMA auto_vacuum=INCREMENTAL; VACUUM;`` (offline: it rewrites the file) and then
  ``INSERT INTO jobs_search(jobs_search) VALUES ('rebuild')``, since ``VACUUM`` may renumber the
  rowids the search index refers to. Without it freed pages are reused by new jobs, but the file
  doesn't shrink. On PostgreSQL (auto)vacuum makes the space of deleted rows reusable.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from app.extensions import db, write_transaction
from tasks import ledger, lifecycle
from tasks.ledger import jobs_table, states_table

BATCH_SECONDS = 0.02
MIN_BATCH, MAX_BATCH = 100, 5_000
#: at most this many free pages returned to the file system after each batch (SQLite, 4 MiB)
VACUUM_PAGES = 1_000


@dataclass
class Pruning:
    """What one pruning run did: jobs removed, batches, the longest batch (a lock held), seconds."""

    removed: int = 0
    batches: int = 0
    longest_batch: float = 0.0
    seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


def expire_finished(retention: timedelta, batch: int = 500, budget: float | None = 2.0) -> int:
    """Delete Succeeded/Deleted jobs older than ``retention`` in short batches, for at most ``budget``
    seconds; returns how many were removed (the janitor runs it every minute)."""
    return prune(ledger.utcnow() - retention, batch, budget).removed


def prune(cutoff: datetime, batch: int = 500, budget: float | None = None) -> Pruning:
    """Delete expiring jobs whose state changed before ``cutoff``, ``batch`` to start with, until none
    are left or ``budget`` seconds have passed (None: no limit)."""
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    report = Pruning()
    for state in sorted(lifecycle.EXPIRING_STATES):
        while deadline is None or time.monotonic() < deadline:
            began = time.monotonic()
            gone, more = expire_batch(state, cutoff, batch)
            took = time.monotonic() - began
            report.removed += gone
            report.batches += 1
            report.batch_sizes.append(batch)
            report.longest_batch = max(report.longest_batch, took)
            reclaim_space()
            if not more:
                break
            batch = next_batch(batch, took)
            time.sleep(min(took, BATCH_SECONDS * 2))  # let claims and other writers in
    report.seconds = time.monotonic() - started
    return report


def expire_batch(state: str, cutoff: datetime, size: int) -> tuple[int, bool]:
    """Delete up to ``size`` of the oldest ``state`` jobs changed before ``cutoff`` (and their history)
    in one transaction; returns how many went and whether there may be more."""
    c = jobs_table.c
    with write_transaction() as conn:
        oldest = (select(c.id).where(c.state == state, c.state_changed_at < cutoff)
                  .order_by(c.state_changed_at).limit(size))
        ids = [row.id for row in conn.execute(oldest)]
        if not ids:
            return 0, False
        conn.execute(delete(states_table).where(states_table.c.job_id.in_(ids)))
        gone = conn.execute(delete(jobs_table).where(c.id.in_(ids), c.state == state)).rowcount
        ledger.add_counts(conn, {state: -gone})
    return gone, len(ids) == size


def next_batch(size: int, took: float) -> int:
    """The next batch size: scaled towards ``BATCH_SECONDS`` (at most doubled or halved at a time)."""
    if took <= 0:
        return min(MAX_BATCH, size * 2)
    scaled = size * max(0.5, min(2.0, BATCH_SECONDS / took))
    return int(max(MIN_BATCH, min(MAX_BATCH, scaled)))


def reclaim_space(pages: int = VACUUM_PAGES) -> None:
    """SQLite: hand up to ``pages`` free pages back to the file system (a no-op unless the database
    uses ``auto_vacuum=INCREMENTAL``). PostgreSQL leaves it to autovacuum."""
    if db.engine.dialect.name != "sqlite":
        return
    raw = db.engine.raw_connection()
    try:  # executescript steps the pragma to the end (a plain execute frees one page per step)
        raw.driver_connection.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
    finally:
        raw.close()
