"""The worker side (Hangfire's BackgroundJobServer), built on Huey's consumer.

* ``JobConsumer`` is Huey's consumer with our worker and scheduler classes and a
  graceful stop that flushes the ledger and hands back unfinished jobs.
* ``JobWorker`` fetches reliably (the message moves to this process's in-flight
  set) and runs each job in a fresh app context.
* ``LedgerWriter`` batches state transitions into few transactions and only then
  acknowledges messages: a job leaves the transport after its final state is durable.
* ``JobScheduler`` moves due jobs to their queues and runs maintenance (recovering
  dead workers' jobs).
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue as queue_module
import random
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace

from flask import Flask
from huey.consumer import Consumer, Scheduler, Worker
from huey.exceptions import TaskTimeout

from app.extensions import db, write_transaction
from tasks import api, ledger, lifecycle
from tasks.codec import Delivery, PoisonMessage, decode
from tasks.engine import JobEngine
from tasks.lifecycle import Transition
from tasks.progress import JobCancelled, JobTimeout, Reporter
from tasks.recovery import Maintenance
from tasks.transport import Fetched
from tasks.writer import LedgerWriter, Pending

log = logging.getLogger("tasks.server")

#: A job whose worker died under it more often than this is failed rather than redelivered
#: again (it probably kills its worker); below it, a lost worker never costs a job its run.
MAX_REDELIVERIES = 5


def now() -> float:
    """Epoch seconds."""
    return time.time()


@dataclass
class Claimed:
    """A fetched, decoded job on its way to (or in) a worker thread."""

    definition: api.JobDefinition
    delivery: Delivery
    attempt: int
    redeliveries: int = 0
    mutex: str | None = None


class WorkerRuntime:
    """Per-process worker state: identity, heartbeat, ledger writer, jobs in flight."""

    _instances: dict[int, "WorkerRuntime"] = {}
    _lock = threading.Lock()

    @classmethod
    def for_process(cls, engine: JobEngine, queues: list[str], concurrency: int) -> "WorkerRuntime":
        """The runtime of this process (a forked child gets its own)."""
        with cls._lock:
            runtime = cls._instances.get(os.getpid())
            if runtime is None:
                runtime = cls._instances[os.getpid()] = cls(engine, queues, concurrency)
            return runtime

    def __init__(self, engine: JobEngine, queues: list[str], concurrency: int):
        self.engine, self.app, self.transport = engine, engine.app, engine.transport
        self.queues, self.concurrency = queues, concurrency
        self.worker_id = f"{socket.gethostname()[:100]}:{os.getpid()}:{os.urandom(2).hex()}"
        self.started_at = now()
        self.in_flight: dict[str, float] = {}
        self.writer = LedgerWriter(self.app, self)
        self.claimer = LedgerWriter(self.app, self, durable=False, name="ledger-claims")
        self.stopping = threading.Event()
        self._paused: set[str] = set()
        self._paused_checked = 0.0
        self.mutexes: dict[str, str] = {}  # mutex key -> job id, renewed with each heartbeat
        self.ready: queue_module.Queue[Claimed] = queue_module.Queue()
        # claimed-but-unfinished jobs: one per idle thread, no more — a worker never hoards
        # jobs another worker could start (long jobs), and Processing means a thread has it
        self.prefetch = concurrency
        self.slots = threading.Semaphore(self.prefetch)
        self.stop_flag = None
        self._started = False

    # -- heartbeat -----------------------------------------------------------
    def info(self) -> dict:
        """How this worker describes itself in the registry."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "queues": self.queues,
                "concurrency": self.concurrency, "started": self.started_at,
                "in_flight": len(self.in_flight)}

    def beat(self) -> None:
        """One heartbeat (and renewal of held mutexes); failures are logged, not raised."""
        try:
            self.transport.beat(self.worker_id, self.info())
            for key, job_id in list(self.mutexes.items()):
                self.transport.lead(key, job_id, 2 * self.engine.settings.dead_after)
        except Exception as exc:  # noqa: BLE001
            log.warning("heartbeat failed: %s", exc)

    def _beat_loop(self) -> None:
        interval = self.engine.settings.heartbeat_interval
        while not self.stopping.wait(interval):
            self.beat()

    # -- fetching and running ------------------------------------------------
    def can_fetch(self) -> bool:
        """False while stopping or while the ledger is unreachable or far behind."""
        return (not self.stopping.is_set() and self.writer.healthy and self.claimer.healthy
                and self.writer.backlog < 5000)

    def active_queues(self) -> list[str]:
        """This worker's queues minus paused ones (the paused set is re-read at most once a second)."""
        if now() >= self._paused_checked + 1.0:
            try:
                self._paused = self.transport.paused()
            except Exception as exc:  # noqa: BLE001 - keep the last known set
                log.warning("could not read paused queues: %s", exc)
            self._paused_checked = now()
        return [q for q in self.queues if q not in self._paused]

    # The fetcher thread takes up to one job per idle worker thread in one atomic move,
    # claims them all in one ledger commit, and queues the claimed ones for the threads.
    def start(self, stop_flag) -> None:
        """Start heartbeat and fetcher once per process; ``stop_flag`` is the consumer's."""
        with self._lock:
            if self._started:
                return
            self._started, self.stop_flag = True, stop_flag
        self.beat()
        threading.Thread(target=self._beat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self._fetch_loop, name="fetcher", daemon=True).start()

    def fetching(self) -> bool:
        """True until shutdown begins."""
        return not self.stopping.is_set() and not (self.stop_flag is not None and self.stop_flag.is_set())

    def _fetch_loop(self) -> None:
        while self.fetching():
            if not self.can_fetch():
                self.stopping.wait(0.1)
                continue
            free = self._take_slots()
            if not free:
                continue
            try:
                batch = self.transport.fetch(self.worker_id, self.active_queues(), limit=free)
            except Exception as exc:  # noqa: BLE001 - transport down: back off, keep the worker alive
                log.warning("fetch failed: %s", exc)
                batch = []
                self.stopping.wait(0.5)
            for _ in range(free - len(batch)):
                self.slots.release()
            if batch:
                self.admit(batch)

    def _take_slots(self) -> int:
        """Wait for a free slot, then take every free one (at most ``prefetch``)."""
        if not self.slots.acquire(timeout=0.2):
            return 0
        free = 1
        while free < self.prefetch and self.slots.acquire(blocking=False):
            free += 1
        return free

    def admit(self, batch: list[Fetched]) -> None:
        """Validate, lock and claim fetched jobs; queue the claimed ones for the worker threads.

        Every fetched job either reaches a thread (keeping its slot) or gives its slot
        back here, whatever happens; an unexpected error hands the jobs back.
        """
        handed: set[str] = set()
        runnable: list[Claimed] = []
        try:
            for fetched in batch:
                self.in_flight[fetched.job_id] = now()
            valid = [job for job in (self.validate(f) for f in batch) if job is not None]
            runnable = [job for job in valid if self.acquire_mutex(job)]
            pending = [self.claim_pending(job) for job in runnable]
            for p in pending:
                self.claimer.submit(p)
            for job, p in zip(runnable, pending):
                while not p.done.wait(0.5) and self.fetching():
                    pass
                if p.done.is_set() and p.outcome.applied:
                    self.ready.put(job)
                    handed.add(job.delivery.id)
                elif p.done.is_set():
                    self.skip(job.delivery.id, p.outcome.previous)
        except Exception:  # noqa: BLE001 - never lose the fetcher; the jobs go back to their queues
            log.exception("could not start %d fetched job(s); handing them back", len(batch))
            self.hand_back([f.job_id for f in batch if f.job_id not in handed], "Worker could not start the job")
        finally:
            for job in runnable:
                if job.delivery.id not in handed and job.mutex:
                    self.release_mutex(job.mutex, job.delivery.id)
            for _ in range(len(batch) - len(handed)):
                self.slots.release()

    def next_job(self, timeout: float) -> "Claimed | None":
        """A claimed job for a worker thread, or None after ``timeout`` seconds."""
        try:
            return self.ready.get(timeout=timeout)
        except queue_module.Empty:
            return None

    def release(self, job: "Claimed") -> None:
        """Free the job's mutex and its worker slot."""
        if job.mutex:
            self.release_mutex(job.mutex, job.delivery.id)
        self.slots.release()

    def settled(self, job_ids: list[str]) -> None:
        """Forget jobs whose final state is written and whose message is acknowledged."""
        for job_id in job_ids:
            self.in_flight.pop(job_id, None)

    def validate(self, fetched: Fetched) -> "Claimed | None":
        """Decode a fetched message into a runnable job, or record it as Failed (poison) and drop it."""
        try:
            delivery = decode(fetched.payload, fetched.job_id)
        except PoisonMessage as poison:
            self.reject(fetched.job_id, poison.reason)
            return None
        definition = api.REGISTRY.get(delivery.task)
        if definition is None:
            self.reject(delivery.id, f"unknown task {delivery.task!r}: no job is registered under that name")
            return None
        if fetched.redeliveries > MAX_REDELIVERIES:
            self.reject(delivery.id, f"worker lost {fetched.redeliveries} times while running this job "
                                     f"(more than {MAX_REDELIVERIES}): it probably kills its worker")
            return None
        attempt = delivery.attempt + fetched.redeliveries  # a lost worker's job runs as the next attempt
        return Claimed(definition, delivery, attempt, fetched.redeliveries)

    def reject(self, job_id: str, reason: str) -> None:
        """Record a message that can't run as a Failed job (poison) and drop it from the transport."""
        log.error("job %s failed without running: %s", job_id, reason)
        at = ledger.utcnow()
        transition = Transition(job_id, lifecycle.FAILED, at, reason,
                                expected=lifecycle.LIVE_STATES | {lifecycle.AWAITING},
                                fields={"finished_at": at, "exception_type": "PoisonMessage",
                                        "exception_message": reason, "worker": self.worker_id},
                                data={"worker": self.worker_id, "exception_type": "PoisonMessage",
                                      "exception_message": reason})
        self.writer.submit(Pending(transition, ack=True))

    def claim_pending(self, job: "Claimed") -> Pending:
        """The Processing transition that claims ``job`` (the job runs only if the ledger accepts it)."""
        delivery, attempt = job.delivery, job.attempt
        started = ledger.utcnow()
        queued_at = delivery.eta or delivery.created
        latency = {"latency_ms": round((now() - queued_at) * 1000, 1)} if queued_at else {}
        reason = f"Attempt {attempt} of {delivery.max_attempts}"
        if job.redeliveries:
            reason += f" (redelivered {job.redeliveries}×)"
        return Pending(Transition(
            delivery.id, lifecycle.PROCESSING, started, reason,
            fields={"started_at": started, "worker": self.worker_id, "attempt": attempt, "progress": None,
                    "progress_message": None},
            data={"worker": self.worker_id, "queue": delivery.queue, "attempt": attempt, **latency},
        ), done=threading.Event())

    def skip(self, job_id: str, previous: str | None) -> None:
        """Drop a message the ledger won't run: a dead letter if it has no row, else already settled."""
        if previous is None:
            at = ledger.utcnow()
            reason = "message has no ledger row (dead letter): the job was never recorded or has expired"
            log.error("job %s: %s", job_id, reason)
            with self.app.app_context():
                dead_letter(job_id, reason, at)
        else:
            log.info("job %s is %s in the ledger; not running it again", job_id, previous)
        self.transport.ack(self.worker_id, [job_id])
        self.settled([job_id])

    def acquire_mutex(self, job: "Claimed") -> bool:
        """Take the job's mutex if it has one; when another job holds it, reschedule this one (not failed)."""
        definition, delivery = job.definition, job.delivery
        if not definition.mutex:
            return True
        key = "mutex:" + definition.mutex.format(*delivery.args, **delivery.kwargs)
        if self.transport.lead(key, delivery.id, 2 * self.engine.settings.dead_after):
            self.mutexes[key] = delivery.id
            job.mutex = key
            return True
        wait = 1.0 + random.random()
        at = ledger.utcnow()
        self.writer.submit(Pending(Transition(
            delivery.id, lifecycle.SCHEDULED, at, f"Waiting for mutex {key[6:]!r}",
            expected=frozenset({lifecycle.ENQUEUED, lifecycle.PROCESSING}),
            fields={"scheduled_for": ledger.from_epoch(now() + wait)}, data={"mutex": key[6:]},
        ), retry=replace(delivery, eta=now() + wait)))
        return False

    def release_mutex(self, key: str, job_id: str) -> None:
        """Let the next job with this mutex key run."""
        self.mutexes.pop(key, None)
        try:
            self.transport.release(key, job_id)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            log.warning("could not release %s: %s", key, exc)

    def run_claimed(self, job: "Claimed", huey=None) -> None:
        """Run a claimed job in a fresh app context, submit its outcome, free its slot."""
        try:
            self.perform_and_record(job.definition, job.delivery, job.attempt, huey)
        finally:
            self.release(job)

    def perform_and_record(self, definition: api.JobDefinition, delivery: Delivery, attempt: int,
                           huey=None) -> None:
        """Run the job function and submit Succeeded, Deleted (cancelled) or a failure."""
        start = time.monotonic()
        with self.app.app_context():
            try:
                outcome = self.perform(definition, delivery, attempt, huey)
            except KeyboardInterrupt:
                log.warning("job %s interrupted by shutdown; handing it back", delivery.id)
                self.hand_back([delivery.id], "Worker shut down before the job finished")
                raise
        duration = time.monotonic() - start
        kind, value = outcome
        if kind == "succeeded":
            self.succeeded(delivery, value, duration)
        elif kind == "cancelled":
            self.cancelled(delivery, str(value), duration)
        else:
            self.failed(definition, delivery, attempt, value, duration)

    def perform(self, definition: api.JobDefinition, delivery: Delivery, attempt: int, huey=None):
        """Call the job function with its context; returns ("succeeded", result) or the exception's kind."""
        deadline = time.monotonic() + definition.timeout if definition.timeout else None
        reporter = Reporter(delivery.id, db.engine, deadline)
        context = api.JobContext(delivery.id, delivery.task, attempt, delivery.max_attempts, delivery.queue,
                                 self.worker_id, reporter=reporter)
        token = api.running(context)
        marker = _InFlight(delivery.id)
        timer = huey._timeout_handler if huey is not None and definition.timeout else None
        if huey is not None:
            huey._tasks_in_flight.add(marker)  # lets a process worker be interrupted on shutdown
        try:
            kwargs = dict(delivery.kwargs)
            if definition.wants_context:
                kwargs["context"] = context
            with (timer(definition.timeout) if timer else contextlib.nullcontext()):
                return "succeeded", definition.func(*delivery.args, **kwargs)
        except JobCancelled as stop:
            return "cancelled", stop
        except TaskTimeout:
            return "failed", JobTimeout(f"timed out after {definition.timeout:g}s")
        except JobTimeout:
            return "failed", JobTimeout(f"timed out after {definition.timeout:g}s")
        except Exception as error:  # noqa: BLE001 - the job's failure is data, not ours
            return "failed", error
        finally:
            reporter.close()
            api.stop_running(token)
            if huey is not None:
                huey._tasks_in_flight.discard(marker)

    def cancelled(self, delivery: Delivery, reason: str, duration: float) -> None:
        """Submit Deleted for a job that stopped because it was asked to."""
        at = ledger.utcnow()
        self.writer.submit(Pending(Transition(
            delivery.id, lifecycle.DELETED, at, ledger.clip(f"Cancelled: {reason}", 1000),
            expected=frozenset({lifecycle.PROCESSING}), fields={"finished_at": at},
            data={"duration_ms": round(duration * 1000, 2), "worker": self.worker_id, "cancelled": reason},
        ), ack=True))

    def succeeded(self, delivery: Delivery, result, duration: float) -> None:
        """Submit Succeeded with the result and timing; the message is acked after commit."""
        at = ledger.utcnow()
        self.writer.submit(Pending(Transition(
            delivery.id, lifecycle.SUCCEEDED, at, "Completed", expected=frozenset({lifecycle.PROCESSING}),
            fields={"finished_at": at, "result": ledger.encode_result(result)},
            data={"duration_ms": round(duration * 1000, 2), "worker": self.worker_id},
        ), ack=True))

    def failed(self, definition: api.JobDefinition, delivery: Delivery, attempt: int, error: Exception,
               duration: float) -> None:
        """Submit a retry (Scheduled, with backoff) or the final Failed state."""
        at = ledger.utcnow()
        kind = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")[:255]
        message = ledger.clip(str(error), ledger.MESSAGE_LIMIT) or ""
        trace = ledger.clip("".join(traceback.format_exception(error)), ledger.TRACEBACK_LIMIT)
        failure = {"exception_type": kind, "exception_message": message, "exception_traceback": trace}
        data = {**failure, "attempt": attempt, "duration_ms": round(duration * 1000, 2), "worker": self.worker_id}
        processing = frozenset({lifecycle.PROCESSING})
        if definition.retry.should_retry(attempt, error):
            wait = definition.retry.delay(attempt) * self.engine.settings.backoff_scale
            due = now() + wait
            reason = f"Retry attempt {attempt + 1} of {delivery.max_attempts} in {wait:.0f}s: {kind}: {message}"
            self.writer.submit(Pending(Transition(
                delivery.id, lifecycle.SCHEDULED, at, ledger.clip(reason, 1000), expected=processing,
                fields={"scheduled_for": ledger.from_epoch(due), **failure}, data={**data, "retry_in_s": wait},
            ), retry=delivery.next_attempt(due if wait > 0 else None)))
            return
        reason = f"Failed after {attempt} attempt(s): {kind}: {message}"
        self.writer.submit(Pending(Transition(
            delivery.id, lifecycle.FAILED, at, ledger.clip(reason, 1000), expected=processing,
            fields={"finished_at": at, **failure}, data=data,
        ), ack=True))

    def hand_back(self, job_ids: list[str], reason: str) -> None:
        """Return jobs to their queues (not counted as an attempt) and record it."""
        moved = self.transport.hand_back(self.worker_id, job_ids)
        at = ledger.utcnow()
        for job_id in moved:
            self.in_flight.pop(job_id, None)
            self.writer.submit(Pending(Transition(job_id, lifecycle.ENQUEUED, at, reason,
                                                  expected=frozenset({lifecycle.PROCESSING}),
                                                  expected_worker=self.worker_id,
                                                  fields={"enqueued_at": at},
                                                  data={"worker": self.worker_id})))

    def shutdown(self) -> None:
        """Flush the ledger, hand back whatever is still in flight, leave the registry."""
        self.stopping.set()
        self.claimer.flush(5)
        self.writer.flush(self.engine.settings.shutdown_grace)
        try:
            left = self.transport.inflight(self.worker_id)
            if left:
                self.hand_back(left, f"Handed back by {self.worker_id} at shutdown")
            self.writer.stop(5)
            self.claimer.stop(1)
            self.transport.retire(self.worker_id)
        except Exception:  # noqa: BLE001 - recovery by live workers covers what we couldn't do
            log.exception("shutdown hand-back failed; another worker will recover the jobs")
        with self._lock:
            self._instances.pop(os.getpid(), None)


class _InFlight:
    """Placeholder Huey counts as a task in flight (only identity matters)."""

    def __init__(self, job_id: str):
        self.id = job_id


def dead_letter(job_id: str, reason: str, at) -> None:
    """Record a message without a ledger row as a Failed job, so a person can see it."""
    from sqlalchemy.exc import IntegrityError

    new = ledger.NewJob(job_id, "(unknown)", "Dead letter", "default", 0, [], {}, lifecycle.ENQUEUED, 1,
                        reason="Dead letter")
    try:
        with write_transaction() as conn:
            ledger.insert_jobs(conn, [new])
            ledger.apply(conn, [Transition(job_id, lifecycle.FAILED, at, reason,
                                           fields={"finished_at": at, "exception_type": "DeadLetter",
                                                   "exception_message": reason})])
    except IntegrityError:
        pass  # someone recorded it meanwhile


class JobWorker(Worker):
    """Huey worker thread/process that fetches reliably and runs jobs through the runtime."""

    runtime_factory: Callable[[], WorkerRuntime]
    owns_runtime = False  # true for process workers: one runtime per process
    app: Flask

    def initialize(self) -> None:
        if self.owns_runtime:  # a forked process must not share the parent's database connections
            with self.app.app_context():
                db.engine.dispose(close=False)
        self.runtime = self.runtime_factory()
        self.runtime.start(self.stop_flag)

    def loop(self, now=None) -> None:
        job = self.runtime.next_job(timeout=0.1)
        if job is not None:
            self.runtime.run_claimed(job, self.huey)

    def shutdown(self) -> None:
        if self.owns_runtime and hasattr(self, "runtime"):
            self.runtime.shutdown()


class JobScheduler(Scheduler):
    """Moves due jobs, recovers dead workers' jobs, reconciles and cleans (``Maintenance``)."""

    runtime_factory: Callable[[], WorkerRuntime]

    def initialize(self) -> None:
        self.runtime = self.runtime_factory()
        self.maintenance = Maintenance(self.runtime)

    def loop(self, now=None) -> None:
        started = time.monotonic()
        self.maintenance.tick()
        self.sleep_for_interval(started, self.interval)

    def shutdown(self) -> None:
        if JobWorker.owns_runtime and hasattr(self, "runtime"):
            self.runtime.shutdown()


class JobConsumer(Consumer):
    """Huey's consumer with reliable workers and a graceful, loss-free stop."""

    worker_class = JobWorker
    scheduler_class = JobScheduler

    def __init__(self, engine: JobEngine, queues: list[str], concurrency: int = 4, processes: bool = False):
        self.engine, self.queues = engine, queues
        factory = lambda: WorkerRuntime.for_process(engine, queues, 1 if processes else concurrency)  # noqa: E731
        JobWorker.runtime_factory = staticmethod(factory)
        JobWorker.owns_runtime = processes
        JobWorker.app = engine.app
        JobScheduler.runtime_factory = staticmethod(factory)
        super().__init__(engine.huey, workers=concurrency, periodic=False, initial_delay=0.01, backoff=1.5,
                         max_delay=engine.transport.read_timeout if engine.transport.blocking else 0.25,
                         scheduler_interval=1, worker_type="process" if processes else "thread",
                         shutdown_timeout=engine.settings.shutdown_grace, graceful_signal="TERM")
        self._signal_actions[signal.SIGINT] = (False, True)  # Ctrl-C is graceful too; a second one forces

    def run(self) -> None:
        """Run until SIGTERM/SIGINT, then stop gracefully and hand back unfinished jobs."""
        try:
            super().run()
        finally:
            if self.worker_type == "thread":
                WorkerRuntime.for_process(self.engine, self.queues, self.workers).shutdown()
