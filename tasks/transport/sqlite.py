"""The embedded transport (``sqlite:///path``): Huey's ``SqliteStorage`` with reliable fetch.

One SQLite file, every move one transaction. Huey builds the schema (its ``ddl``: the
engine's message tables plus Huey's own ``kv`` and ``counter`` tables for results and locks)
and opens the connections (its ``_create_connection``: WAL, busy timeout), one per thread here.

A ``job_messages`` row is queued (``worker`` and ``eta`` null), scheduled (``eta`` set) or
in flight (``worker`` set). SQLite can't block a reader until a writer commits, so an idle
fetch waits on ``PRAGMA data_version`` (it changes when another connection commits) with a
bounded backoff between looks (2 ms growing to 25 ms): no spinning, and a new job is seen
within 25 ms at worst.
If the tables disappear (a deleted or replaced file), they are created again and the
ledger's reconciler re-dispatches what was lost.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from huey.storage import SqliteStorage

from tasks.transport.base import Fetched, Outgoing, now_ms
from tasks.transport.storage import HueyQueueAPI

SCHEMA = [
    "create table if not exists job_messages ("
    " job_id text primary key, queue text not null, priority integer not null, seq integer not null,"
    " payload blob not null, eta integer, worker text, fetched integer,"
    " redeliveries integer not null default 0)",
    "create index if not exists job_messages_ready on job_messages (queue, priority desc, seq)"
    " where worker is null and eta is null",
    "create index if not exists job_messages_eta on job_messages (eta) where eta is not null",
    "create index if not exists job_messages_worker on job_messages (worker) where worker is not null",
    "create table if not exists job_workers (worker_id text primary key, info text not null,"
    " beat integer not null)",
    "create table if not exists job_leases (role text primary key, owner text not null,"
    " expires integer not null)",
    "create table if not exists job_paused_queues (queue text primary key)",
    SqliteStorage.table_kv,
    SqliteStorage.table_counter,
]

#: How long an idle fetch sleeps between looks at ``data_version`` (seconds): a bounded backoff.
IDLE_LOOKS = (0.002, 0.025)  # first and longest sleep between looks (the sleep grows by half each time)


#: Connections a forked process inherited (see ``SqliteTransport._connection``); never used or closed.
INHERITED: list[sqlite3.Connection] = []


class SqliteTransport(HueyQueueAPI, SqliteStorage):
    """Huey's SQLite storage with reliable fetch, on one file shared by every process on the machine."""

    ddl = SCHEMA

    def __init__(self, name: str = "jobs", filename: str = "jobs-transport.db"):
        self.url = f"sqlite:///{filename}"
        self._local = threading.local()
        directory = os.path.dirname(os.path.abspath(filename))
        os.makedirs(directory, exist_ok=True)
        super().__init__(name, filename=filename, timeout=30, cache_mb=0)

    # -- connections -------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection: Huey's own queries (results, counters, locks) use it too."""
        return self._connection()

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened by Huey (a forked child opens its own)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            if conn is not None:
                # A connection from before a fork: keep it, never close it here. Closing it would drop
                # this process's POSIX locks on the file, those of its own new connection included.
                INHERITED.append(conn)
            conn = self._create_connection()
            conn.execute("pragma synchronous=normal")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def initialize_schema(self) -> None:
        """Create the tables (Huey calls this on start; ``_run`` again when they vanish)."""
        conn = self._connection()
        for statement in self.ddl:
            conn.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """A cursor in a write transaction (the write lock taken at the start)."""
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("begin immediate")
        try:
            yield cur
        except BaseException:
            cur.execute("rollback")
            raise
        cur.execute("commit")

    def _run(self, action):
        """Run ``action()``; if the tables are gone, create them again and retry once."""
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            self.initialize_schema()
            return action()

    def _read(self, sql: str, params=()) -> list[tuple]:
        return self._run(lambda: self._connection().execute(sql, params).fetchall())

    def _execute(self, sql: str, params=()) -> None:
        def action():
            with self._write() as cur:
                cur.execute(sql, params)
        self._run(action)

    # -- producing ---------------------------------------------------------
    def push(self, messages: list[Outgoing]) -> None:
        """Insert or replace messages, queued now or scheduled for their eta."""
        if not messages:
            return
        at = now_ms()
        rows = [(m.job_id, m.queue, m.priority, at, m.payload,
                 int(m.eta * 1000) if m.eta is not None and m.eta * 1000 > at else None) for m in messages]

        def action():
            with self._write() as cur:
                cur.executemany(
                    "insert into job_messages (job_id, queue, priority, seq, payload, eta)"
                    " values (?, ?, ?, ?, ?, ?)"
                    " on conflict(job_id) do update set queue=excluded.queue, priority=excluded.priority,"
                    " seq=excluded.seq, payload=excluded.payload, eta=excluded.eta,"
                    " worker=null, fetched=null",
                    rows)
        self._run(action)

    # -- consuming ---------------------------------------------------------
    def fetch(self, worker_id: str, queues: list[str], limit: int = 1, wait: float = 0.0) -> list[Fetched]:
        """Claim up to ``limit`` jobs for ``worker_id``; when none, wait up to ``wait`` s for a commit."""
        if not queues:
            if wait:
                time.sleep(wait)
            return []
        version = self._data_version()
        fetched = self._run(lambda: self._try_fetch(worker_id, queues, limit))
        deadline = time.monotonic() + wait
        pause = IDLE_LOOKS[0]
        while not fetched and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, IDLE_LOOKS[1])
            seen = self._data_version()
            if seen != version:  # another connection committed: maybe a new job
                version = seen
                fetched = self._run(lambda: self._try_fetch(worker_id, queues, limit))
        return fetched

    def _data_version(self) -> int:
        return self._connection().execute("pragma data_version").fetchone()[0]

    def _try_fetch(self, worker_id: str, queues: list[str], limit: int) -> list[Fetched]:
        order = " ".join(f"when ? then {i}" for i in range(len(queues)))
        marks = ",".join("?" * len(queues))
        with self._write() as cur:
            cur.execute(
                "update job_messages set worker = ?, fetched = ? where job_id in ("
                " select job_id from job_messages where worker is null and eta is null"
                f" and queue in ({marks})"
                f" order by case queue {order} end, priority desc, seq limit ?)"
                " returning job_id, payload, queue, redeliveries, priority, seq",
                (worker_id, now_ms(), *queues, *queues, max(1, limit)))
            rows = cur.fetchall()
        rank = {q: i for i, q in enumerate(queues)}
        rows.sort(key=lambda r: (rank[r[2]], -r[4], r[5]))  # RETURNING has no order of its own
        return [Fetched(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def ack(self, worker_id: str, job_ids: list[str]) -> None:
        """Forget finished jobs this worker still holds."""
        def action():
            with self._write() as cur:
                cur.executemany("delete from job_messages where job_id = ? and worker = ?",
                                [(job_id, worker_id) for job_id in job_ids])
        if job_ids:
            self._run(action)

    def reschedule(self, worker_id: str, messages: list[Outgoing]) -> None:
        """Replace in-flight jobs by their next attempt (redeliveries reset)."""
        self.push(messages)
        self._run(lambda: self._reset_redeliveries([m.job_id for m in messages]))

    def _reset_redeliveries(self, job_ids: list[str]) -> None:
        with self._write() as cur:
            cur.executemany("update job_messages set redeliveries = 0 where job_id = ?",
                            [(j,) for j in job_ids])

    def hand_back(self, worker_id: str, job_ids: list[str] | None = None, lost: bool = False) -> list[str]:
        """Return in-flight jobs to their queues at their old place; ``lost`` counts a redelivery."""
        def action():
            with self._write() as cur:
                if job_ids is None:
                    cur.execute("update job_messages set worker = null, fetched = null,"
                                " redeliveries = redeliveries + ? where worker = ? returning job_id",
                                (int(lost), worker_id))
                    return [r[0] for r in cur.fetchall()]
                moved = []
                for job_id in job_ids:
                    cur.execute("update job_messages set worker = null, fetched = null,"
                                " redeliveries = redeliveries + ? where job_id = ? and worker = ?"
                                " returning job_id",
                                (int(lost), job_id, worker_id))
                    moved += [r[0] for r in cur.fetchall()]
                return moved
        return self._run(action)

    def inflight(self, worker_id: str) -> list[str]:
        """Ids ``worker_id`` holds in flight."""
        return [r[0] for r in self._read("select job_id from job_messages where worker = ?", (worker_id,))]

    def move_due(self, limit: int = 1000, at_ms: int | None = None) -> list[str]:
        """Move jobs due by ``at_ms`` (default now) to their queues; returns their ids."""
        at = at_ms or now_ms()

        def action():
            with self._write() as cur:
                cur.execute("update job_messages set eta = null, seq = ? where job_id in ("
                            " select job_id from job_messages where eta is not null and eta <= ? limit ?)"
                            " returning job_id", (at, at, limit))
                return [r[0] for r in cur.fetchall()]
        return self._run(action)

    def queued_ids(self, limit: int | None = None) -> list[str]:
        """Ids waiting on queues, queue by queue, each in fetch order."""
        return [r[0] for r in self._read("select job_id from job_messages where worker is null"
                                         " and eta is null order by queue, priority desc, seq limit ?",
                                         (limit or -1,))]

    def scheduled_ids(self, limit: int | None = None) -> list[str]:
        """Ids waiting for their due time, soonest first."""
        return [r[0] for r in self._read("select job_id from job_messages where eta is not null"
                                         " order by eta limit ?", (limit or -1,))]

    def payloads(self, job_ids: list[str]) -> list[bytes]:
        """The serialized messages of ``job_ids`` that are still held."""
        found: dict[str, bytes] = {}
        for start in range(0, len(job_ids), 500):
            part = job_ids[start:start + 500]
            marks = ",".join("?" * len(part))
            found.update((r[0], bytes(r[1])) for r in self._read(
                f"select job_id, payload from job_messages where job_id in ({marks})", part))
        return [found[j] for j in job_ids if j in found]

    # -- management --------------------------------------------------------
    def remove(self, job_ids: list[str]) -> None:
        """Take jobs out of the transport."""
        def action():
            with self._write() as cur:
                cur.executemany("delete from job_messages where job_id = ?", [(j,) for j in job_ids])
        if job_ids:
            self._run(action)

    def holds(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` the transport still carries."""
        found: set[str] = set()
        for start in range(0, len(job_ids), 500):
            part = job_ids[start:start + 500]
            found.update(r[0] for r in self._read(
                f"select job_id from job_messages where job_id in ({','.join('?' * len(part))})", part))
        return found

    def queue_lengths(self) -> dict[str, int]:
        """Jobs waiting per queue."""
        return dict(self._read("select queue, count(*) from job_messages where worker is null and eta is null"
                               " group by queue"))

    def pause(self, queue: str) -> None:
        """Stop workers fetching from ``queue`` (jobs stay queued)."""
        self._execute("insert or ignore into job_paused_queues values (?)", (queue,))

    def resume(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""
        self._execute("delete from job_paused_queues where queue = ?", (queue,))

    def paused(self) -> set[str]:
        """Names of paused queues."""
        return {r[0] for r in self._read("select queue from job_paused_queues")}

    def queue_stats(self) -> dict[str, tuple[int, float | None]]:
        """Per queue: jobs waiting and when the oldest was queued (epoch s)."""
        rows = self._read("select queue, count(*), min(seq) from job_messages"
                          " where worker is null and eta is null group by queue")
        return {queue: (count, oldest / 1000 if oldest else None) for queue, count, oldest in rows}

    def ping(self) -> str | None:
        """None when the SQLite file answers, else the error."""
        try:
            self._read("select 1")
            return None
        except sqlite3.Error as exc:
            return f"{type(exc).__name__}: {exc}"

    # -- workers -------------------------------------------------------------
    def beat(self, worker_id: str, info: dict) -> None:
        """Record that ``worker_id`` is alive."""
        self._execute("insert into job_workers values (?, ?, ?) on conflict(worker_id) do update"
                      " set info = excluded.info, beat = excluded.beat",
                      (worker_id, json.dumps(info), now_ms()))

    def workers(self) -> list[dict]:
        """Every registered worker with its last heartbeat (epoch seconds)."""
        rows = self._read("select worker_id, info, beat from job_workers")
        return [{**json.loads(info), "id": worker_id, "last_beat": beat / 1000}
                for worker_id, info, beat in rows]

    def claim_dead(self, stale_after: float) -> list[str]:
        """Worker ids whose heartbeat is stale, removed from the registry by this caller."""
        cutoff = now_ms() - int(stale_after * 1000)

        def action():
            with self._write() as cur:
                cur.execute("delete from job_workers where beat < ? returning worker_id", (cutoff,))
                return [r[0] for r in cur.fetchall()]
        return self._run(action)

    def orphaned_inflight(self, live: set[str]) -> list[str]:
        """Owners of in-flight jobs that have no heartbeat row."""
        rows = self._read("select distinct worker from job_messages where worker is not null"
                          " and worker not in (select worker_id from job_workers)")
        return sorted({r[0] for r in rows} - live)

    def lead(self, role: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``role`` for ``ttl`` seconds; True when ``owner`` holds it."""
        at = now_ms()

        def action():
            with self._write() as cur:
                cur.execute("insert into job_leases values (?, ?, ?) on conflict(role) do update"
                            " set owner = excluded.owner, expires = excluded.expires"
                            " where job_leases.owner = excluded.owner or job_leases.expires < ?",
                            (role, owner, at + int(ttl * 1000), at))
                cur.execute("select owner from job_leases where role = ?", (role,))
                return cur.fetchone()[0] == owner
        return self._run(action)

    def release(self, role: str, owner: str) -> None:
        """Give up the lease on ``role`` if ``owner`` holds it."""
        self._execute("delete from job_leases where role = ? and owner = ?", (role, owner))

    def holder(self, role: str) -> str | None:
        """Who holds the lease on ``role`` now."""
        rows = self._read("select owner from job_leases where role = ? and expires >= ?", (role, now_ms()))
        return rows[0][0] if rows else None

    def retire(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""
        self._execute("delete from job_workers where worker_id = ?", (worker_id,))

    def flush_all(self) -> None:
        """Delete every message, worker, lease and pause."""
        def action():
            with self._write() as cur:
                for table in ("job_messages", "job_workers", "job_leases", "job_paused_queues", "kv",
                              "counter"):
                    cur.execute(f"delete from {table}")
        self._run(action)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None
