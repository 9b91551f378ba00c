"""The ledger writer: one thread per worker process that batches state transitions.

Transitions from all jobs of a process are written in few transactions; only after
the commit is a message acknowledged (or rescheduled) in the transport, so a job
leaves the transport only once its state is durable.
"""
from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from dataclasses import dataclass

from flask import Flask
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from app.extensions import db, write_transaction
from tasks import continuations, ledger, lifecycle
from tasks.codec import Delivery
from tasks.engine import outgoing
from tasks.lifecycle import Transition

log = logging.getLogger("tasks.writer")


@dataclass
class Pending:
    """A transition waiting to be written, and what to do with the message after.

    ``done`` is set once the batch holding it is committed; ``outcome`` then says
    whether the lifecycle accepted it (a worker waits on this before running a job).
    """

    transition: Transition
    ack: bool = False
    retry: Delivery | None = None
    done: threading.Event | None = None
    outcome: ledger.Outcome | None = None


class LedgerWriter:
    """Writes transitions in batches from one thread; acknowledges after commit.

    A worker has two: one for claims (``durable=False``: on PostgreSQL the commit
    doesn't wait for the WAL flush, since a claim lost in a crash only means the job
    is claimed again) and one for everything else, committed durably before any
    message is acknowledged. Claims thus never queue behind a slow durable commit.

    If the database is unavailable the batch is kept and retried with backoff
    (``healthy`` turns false so workers stop fetching meanwhile); nothing is lost.
    """

    def __init__(self, app: Flask, runtime, max_batch: int = 500, durable: bool = True, name: str = "ledger-writer"):
        self.app, self.runtime, self.max_batch, self.durable = app, runtime, max_batch, durable
        self.inbox: queue_module.SimpleQueue[Pending | None] = queue_module.SimpleQueue()
        self.healthy = True
        self.backlog = 0
        self._conn = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, pending: Pending) -> None:
        """Queue a transition for the next batch."""
        self.backlog += 1
        self.inbox.put(pending)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        done = threading.Event()
        self.inbox.put(done)
        return done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self.flush(timeout)
        self._stopping = True
        self.inbox.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        with self.app.app_context():
            engine = db.engine
        while not self._stopping:
            batch, markers = self._collect()
            if batch:
                self._write(engine, batch)
            for marker in markers:
                marker.set()
        if self._conn is not None:
            self._conn.info.pop("immediate", None)
            self._conn.close()

    def _collect(self) -> tuple[list[Pending], list[threading.Event]]:
        """Block for one item, then take whatever else is already waiting (natural batching)."""
        batch: list[Pending] = []
        markers: list[threading.Event] = []
        item = self.inbox.get()
        while True:
            if isinstance(item, Pending):
                batch.append(item)
            elif isinstance(item, threading.Event):
                markers.append(item)
                break  # write what came before the marker, then release it
            elif item is None:
                break
            if len(batch) >= self.max_batch:
                break
            try:
                item = self.inbox.get_nowait()
            except queue_module.Empty:
                break
        return batch, markers

    def _write(self, engine, batch: list[Pending]) -> None:
        """Commit the batch (retrying while the database is unreachable), then settle its messages."""
        outcomes = self._commit(engine, batch, self.durable)
        for pending, outcome in zip(batch, outcomes):
            pending.outcome = outcome
            if not outcome.applied:
                t = outcome.transition
                log.info("job %s: %s → %s refused (stale message)", t.job_id, outcome.previous, t.state)
            if pending.done is not None:
                pending.done.set()
        self._settle(batch)
        self._continue(engine, [o.transition for o in outcomes if o.applied])
        self.backlog -= len(batch)

    def _continue(self, engine, applied: list[Transition]) -> None:
        """Release or delete continuations of jobs this batch finished (the reconciler heals misses)."""
        finals = {t.job_id: t.state for t in applied if t.state in lifecycle.FINAL_STATES}
        if not finals:
            return
        try:
            with write_transaction(engine) as conn:
                messages = continuations.resolve(conn, finals)
            self.runtime.engine.dispatch(messages)
        except SQLAlchemyError as exc:
            log.warning("continuations of %d job(s) deferred to the reconciler: %s", len(finals), exc)

    def _connection(self, engine):
        """The writer's own connection, kept open between batches (no pool checkout or ping per batch)."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = engine.connect()
            self._conn.info["immediate"] = True  # SQLite: check and write under one write lock
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None

    def _commit(self, engine, batch: list[Pending], durable: bool = True) -> list[ledger.Outcome]:
        """Apply the batch; retry with backoff on connection trouble, bisect on bad data."""
        delay = 0.05
        while True:
            try:
                conn = self._connection(engine)
                with conn.begin():
                    if not durable and conn.dialect.name == "postgresql":
                        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    outcomes = ledger.apply(conn, [p.transition for p in batch])
                self.healthy = True
                return outcomes
            except (OperationalError, InterfaceError) as exc:  # database away or locked: keep the batch
                self.healthy = False
                self._drop_connection()
                level = logging.ERROR if "no such" in str(exc) else logging.WARNING  # schema behind the code?
                log.log(level, "ledger write failed (%s: %s); retrying in %.1fs", type(exc).__name__,
                        str(exc).splitlines()[0][:200], delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except SQLAlchemyError as exc:  # a transition the database rejects: isolate it
                if len(batch) == 1:
                    t = batch[0].transition
                    log.error("job %s: dropping transition to %s the database rejects: %s", t.job_id, t.state, exc)
                    return [ledger.Outcome(t, False, None)]
                middle = len(batch) // 2
                return (self._commit(engine, batch[:middle], durable)
                        + self._commit(engine, batch[middle:], durable))

    def _settle(self, batch: list[Pending]) -> None:
        transport, worker_id = self.runtime.transport, self.runtime.worker_id
        acks = [p.transition.job_id for p in batch if p.ack]
        retries = [outgoing(p.retry) for p in batch if p.retry is not None]
        delay = 0.05
        while True:
            try:
                if acks:
                    transport.ack(worker_id, acks)
                if retries:
                    transport.reschedule(worker_id, retries)
                self.runtime.settled([p.transition.job_id for p in batch if p.ack or p.retry])
                return
            except Exception as exc:  # noqa: BLE001 - transport down: the message is still in flight
                log.warning("acknowledge failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
