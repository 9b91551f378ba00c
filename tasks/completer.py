"""The completer: turns state transitions into batched ledger commits, then settles messages.

Like River's batch completer, no worker thread writes its own state: claims,
outcomes, hand-backs and recovery moves are submitted here and written by one
thread in as few transactions as the load allows — a batch is whatever is waiting
(up to ``max_batch``), so batches grow with the backlog. Only after a batch commits
are its messages acknowledged or rescheduled in the transport: a job leaves the
transport only once its final state is durable. Submissions are written in order,
so a job's claim always commits before its outcome.

A batch holding only claims commits without waiting for the disk on PostgreSQL
(``synchronous_commit off``: a claim lost in a crash only means the job is claimed
again); any batch that settles a message commits durably first.
"""
from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from app.extensions import write_transaction
from tasks import continuations, ledger, lifecycle
from tasks.codec import Delivery
from tasks.engine import outgoing
from tasks.lifecycle import Transition
from tasks.transport import Transport

log = logging.getLogger("tasks.completer")


@dataclass
class Pending:
    """A transition waiting to be written, and what to do with its message after the commit.

    ``ack`` drops the message, ``retry`` replaces it by the next attempt; ``done`` is set
    once the batch holding it committed, and ``outcome`` then says whether the lifecycle
    accepted it (the fetcher waits on this before a claimed job may run).
    """

    transition: Transition
    ack: bool = False
    retry: Delivery | None = None
    done: threading.Event | None = None
    outcome: ledger.Outcome | None = None


class Completer:
    """Writes transitions in batches from one thread; settles messages after each commit.

    If the database is unavailable the batch is kept and retried with backoff
    (``healthy`` turns false so the fetcher stops taking jobs meanwhile); nothing is lost.
    """

    def __init__(self, engine, transport: Transport, worker_id: str,
                 dispatch: Callable[[list[Delivery]], None], max_batch: int = 1000, name: str = "completer"):
        self.engine, self.transport, self.worker_id, self.dispatch = engine, transport, worker_id, dispatch
        self.max_batch = max_batch
        self.inbox: queue_module.SimpleQueue[Pending | threading.Event | None] = queue_module.SimpleQueue()
        self.healthy = True
        self.backlog = 0
        self.batches = 0
        self.written = 0
        self._conn = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, pending: Pending) -> None:
        """Queue a transition for the next batch."""
        self.backlog += 1
        self.inbox.put(pending)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written and settled; False on timeout."""
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
        while not self._stopping:
            batch, markers = self._collect()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.set()
        if self._conn is not None:
            self._conn.close()

    def _collect(self) -> tuple[list[Pending], list[threading.Event]]:
        """Block for one item, then take whatever else is already waiting (batches grow with the backlog)."""
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

    def _write(self, batch: list[Pending]) -> None:
        """Commit the batch (retrying while the database is unreachable), then settle its messages."""
        durable = any(p.ack or p.retry is not None for p in batch)
        outcomes = self._commit(batch, durable)
        for pending, outcome in zip(batch, outcomes):
            pending.outcome = outcome
            if not outcome.applied:
                t = outcome.transition
                log.info("job %s: %s → %s refused (stale message)", t.job_id, outcome.previous, t.state)
            if pending.done is not None:
                pending.done.set()
        self._settle(batch)
        self._continue([o.transition for o in outcomes if o.applied])
        self.batches += 1
        self.written += len(batch)
        self.backlog -= len(batch)

    def _continue(self, applied: list[Transition]) -> None:
        """Release or delete continuations of jobs this batch finished (the reconciler heals misses)."""
        finals = {t.job_id: t.state for t in applied if t.state in lifecycle.FINAL_STATES}
        if not finals:
            return
        try:
            with write_transaction(self.engine) as conn:
                messages = continuations.resolve(conn, finals)
            self.dispatch(messages)
        except Exception as exc:  # noqa: BLE001 - one bad child row never stops the completer
            log.warning("continuations of %d job(s) deferred to the reconciler: %s", len(finals), exc)

    def _connection(self):
        """The completer's own connection, kept open between batches (no pool checkout or ping per batch)."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
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

    def _commit(self, batch: list[Pending], durable: bool) -> list[ledger.Outcome]:
        """Apply the batch; retry with backoff on connection trouble, bisect on bad data."""
        delay = 0.05
        while True:
            try:
                conn = self._connection()
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
                    log.error("job %s: dropping transition to %s the database rejects: %s",
                              t.job_id, t.state, exc)
                    return [ledger.Outcome(t, False, None)]
                middle = len(batch) // 2
                return self._commit(batch[:middle], durable) + self._commit(batch[middle:], durable)

    def _settle(self, batch: list[Pending]) -> None:
        """Acknowledge finished messages and replace retried ones; a refused retry is just dropped."""
        acks = [p.transition.job_id for p in batch
                if p.ack or (p.retry is not None and not p.outcome.applied)]
        retries = [outgoing(p.retry) for p in batch if p.retry is not None and p.outcome.applied]
        delay = 0.05
        while acks or retries:
            try:
                if acks:
                    self.transport.ack(self.worker_id, acks)
                    acks = []
                if retries:
                    self.transport.reschedule(self.worker_id, retries)
                return
            except Exception as exc:  # noqa: BLE001 - transport down: the message is still in flight
                log.warning("acknowledge failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


class CompleterPool:
    """Several completers, each with its own thread and connection; a job always goes to the same one.

    On PostgreSQL batches can commit side by side (each locks only its own jobs' rows, in
    id order), so a worker with many threads isn't bound by one connection's round trips;
    every transition of one job still goes through one completer, in order. SQLite has a
    single writer, so there a pool of one is used.
    """

    def __init__(self, size: int, *args, **kwargs):
        name = kwargs.pop("name", "completer")
        self.parts = [Completer(*args, name=f"{name}-{i + 1}", **kwargs) for i in range(max(1, size))]

    def _part(self, job_id: str) -> Completer:
        return self.parts[hash(job_id) % len(self.parts)]

    def submit(self, pending: Pending) -> None:
        """Queue a transition on its job's completer."""
        self._part(pending.transition.job_id).submit(pending)

    @property
    def healthy(self) -> bool:
        """False while any completer can't reach the database."""
        return all(part.healthy for part in self.parts)

    @property
    def backlog(self) -> int:
        """Transitions submitted and not yet written."""
        return sum(part.backlog for part in self.parts)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written and settled."""
        deadline = time.monotonic() + timeout
        return all([part.flush(max(0.0, deadline - time.monotonic())) for part in self.parts])

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop every completer."""
        for part in self.parts:
            part.stop(timeout)


def outcome_pending(outcome, worker_id: str, backoff_scale: float = 1.0) -> Pending:
    """The transition that records a processor outcome: Succeeded, Deleted (cancelled), a retry or Failed."""
    from tasks.processor import CANCELLED, SUCCEEDED

    job, at = outcome.job, ledger.utcnow()
    delivery = job.delivery
    timing = {"duration_ms": round(outcome.duration * 1000, 2), "worker": worker_id}
    processing = frozenset({lifecycle.PROCESSING})
    if outcome.kind == SUCCEEDED:
        return Pending(Transition(delivery.id, lifecycle.SUCCEEDED, at, "Completed", expected=processing,
                                  fields={"finished_at": at, "result": ledger.encode_result(outcome.value)},
                                  data=timing), ack=True)
    if outcome.kind == CANCELLED:
        reason = str(outcome.value)
        reason_text = ledger.clip(f"Cancelled: {reason}", 1000)
        return Pending(Transition(delivery.id, lifecycle.DELETED, at, reason_text,
                                  expected=processing, fields={"finished_at": at},
                                  data={**timing, "cancelled": reason}), ack=True)
    error = outcome.value
    kind = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")[:255]
    message = ledger.clip(str(error), ledger.MESSAGE_LIMIT) or ""
    trace = ledger.clip("".join(traceback.format_exception(error)), ledger.TRACEBACK_LIMIT)
    failure = {"exception_type": kind, "exception_message": message, "exception_traceback": trace}
    data = {**failure, "attempt": job.attempt, **timing}
    if job.definition.retry.should_retry(job.attempt, error):
        wait = job.definition.retry.delay(job.attempt) * backoff_scale
        due = time.time() + wait
        reason = (f"Retry attempt {job.attempt + 1} of {delivery.max_attempts} in {wait:.0f}s: "
                  f"{kind}: {message}")
        return Pending(Transition(delivery.id, lifecycle.SCHEDULED, at, ledger.clip(reason, 1000),
                                  expected=processing,
                                  fields={"scheduled_for": ledger.from_epoch(due), **failure},
                                  data={**data, "retry_in_s": wait}),
                       retry=delivery.next_attempt(due if wait > 0 else None))
    reason = f"Failed after {job.attempt} attempt(s): {kind}: {message}"
    return Pending(Transition(delivery.id, lifecycle.FAILED, at, ledger.clip(reason, 1000),
                              expected=processing,
                              fields={"finished_at": at, **failure}, data=data), ack=True)


def handed_back(job_id: str, worker_id: str, reason: str, lost: bool = False) -> Pending:
    """Processing → Enqueued for a job whose message went back to its queue (fenced on its worker)."""
    at = ledger.utcnow()
    data = {"lost_worker": worker_id} if lost else {"worker": worker_id}
    return Pending(Transition(job_id, lifecycle.ENQUEUED, at, reason,
                              expected=frozenset({lifecycle.PROCESSING}),
                              expected_worker=worker_id, fields={"enqueued_at": at}, data=data))


def poisoned(job_id: str, worker_id: str, reason: str) -> Pending:
    """A message that can't run (undecodable, unknown task, ...) recorded as Failed and dropped."""
    at = ledger.utcnow()
    log.error("job %s failed without running: %s", job_id, reason)
    return Pending(Transition(job_id, lifecycle.FAILED, at, ledger.clip(reason, 1000),
                              expected=lifecycle.LIVE_STATES | {lifecycle.AWAITING},
                              fields={"finished_at": at, "exception_type": "PoisonMessage",
                                      "exception_message": reason, "worker": worker_id},
                              data={"worker": worker_id, "exception_type": "PoisonMessage",
                                    "exception_message": reason}), ack=True)


def record_dead_letter(engine, job_id: str, reason: str) -> None:
    """Record a message without a ledger row as a Failed job, so a person can see it."""
    from sqlalchemy.exc import IntegrityError

    at = ledger.utcnow()
    new = ledger.NewJob(job_id, "(unknown)", "Dead letter", "default", 0, [], {}, lifecycle.ENQUEUED, 1,
                        reason="Dead letter")
    log.error("job %s: %s", job_id, reason)
    try:
        with write_transaction(engine) as conn:
            ledger.insert_jobs(conn, [new])
            ledger.apply(conn, [Transition(job_id, lifecycle.FAILED, at, reason,
                                           fields={"finished_at": at, "exception_type": "DeadLetter",
                                                   "exception_message": reason})])
    except IntegrityError:
        pass  # someone recorded it meanwhile
