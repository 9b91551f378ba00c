"""The worker side (Hangfire's BackgroundJobServer): a pipeline of small parts per process.

::

    transport ──► Fetcher ──► ready ──► threads: Processor.run ──► Completer ──► ledger commit ──► ack
                  (slots, prefetch, claims via the Completer)              (batches)
    Heartbeat (every second) · Maintenance (due jobs, dead workers, leader: reconcile, janitor)

``Pipeline`` wires the parts of one process. ``JobServer`` runs it: with threads, one
process holds the pipeline and ``--concurrency`` threads; with processes, each child
holds its own pipeline and runs jobs in its main thread (so a timeout can interrupt a
job), while the parent runs maintenance and replaces children that die.

SIGTERM (and Ctrl-C) is graceful: fetching stops, claimed jobs no thread started go
back at once, running jobs get ``JOBS_SHUTDOWN_GRACE`` seconds, and whatever still runs
then is handed back to its queue (→ Enqueued) before the process exits.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time

from app.extensions import db
from tasks.completer import Completer, CompleterPool, handed_back, outcome_pending, record_dead_letter
from tasks.engine import JobEngine
from tasks.fetcher import Fetcher
from tasks.heartbeat import Heartbeat
from tasks.processor import Processor
from tasks.recovery import Maintenance

log = logging.getLogger("tasks.server")

#: At shutdown, how long a process may take to write what it owes the ledger, once for the outcomes of
#: finished jobs and once for the hand-backs (the parent of process workers waits for both).
SHUTDOWN_WRITE_SECONDS = 10.0


def new_worker_id() -> str:
    """``host:pid:random`` — unique per process start."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{os.urandom(2).hex()}"


class Pipeline:
    """One process's fetcher, processor, completer and heartbeat (and, optionally, maintenance)."""

    def __init__(self, engine: JobEngine, queues: list[str], threads: int, interrupts: bool = False,
                 maintenance: bool = True):
        self.engine, self.queues, self.threads = engine, queues, threads
        self.app, self.transport, self.settings = engine.app, engine.transport, engine.settings
        self.tasks = engine.huey.task_names()  # every declared job, as registered on Huey
        self.worker_id = new_worker_id()
        self.started_at = time.time()
        self.stopping = threading.Event()
        with self.app.app_context():
            self.db_engine = db.engine
        # PostgreSQL commits batches side by side; SQLite has one writer at a time
        parallel = 2 if self.db_engine.dialect.name == "postgresql" and threads > 1 else 1
        self.completer = CompleterPool(parallel, self.db_engine, self.transport, self.worker_id,
                                       engine.dispatch)
        self.fetcher = Fetcher(self.transport, self.completer, self.worker_id, queues, threads, self.settings,
                               dead_letter=self.dead_letter)
        self.processor = Processor(self.app, self.worker_id, interrupts)
        self.heartbeat = Heartbeat(self.transport, self.worker_id, self.describe,
                                   self.settings.heartbeat_interval, renew=self.fetcher.mutexes.renew)
        self.maintenance = (Maintenance(self.app, self.transport, self.completer, self.worker_id,
                                        self.settings) if maintenance else None)
        self.runners: list[threading.Thread] = []
        self.retiring = threading.Lock()  # a process worker's watchdog and main thread may both retire it
        self.retired = False

    def dead_letter(self, job_id: str, reason: str) -> None:
        """Record a message without a ledger row as a Failed job."""
        record_dead_letter(self.db_engine, job_id, reason)

    def describe(self) -> dict:
        """How this worker shows in the registry (dashboard's Servers page)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "queues": self.queues,
                "concurrency": self.threads, "started": self.started_at,
                "in_flight": self.fetcher.running + len(self.fetcher.ready),
                "ledger_backlog": self.completer.backlog}

    def start(self, runner_threads: bool = True) -> None:
        """Start heartbeat, fetcher, maintenance and (unless the caller runs jobs) the runner threads."""
        self.heartbeat.start()
        self.fetcher.start()
        if self.maintenance is not None:
            threading.Thread(target=maintain, args=(self.maintenance, self.stopping), name="maintenance",
                             daemon=True).start()
        if runner_threads:
            for index in range(self.threads):
                thread = threading.Thread(target=self.run_jobs, name=f"worker-{index + 1}", daemon=True)
                thread.start()
                self.runners.append(thread)

    def run_jobs(self) -> None:
        """A worker thread: run claimed jobs until shutdown."""
        while not self.stopping.is_set():
            self.run_one(0.5)

    def run_one(self, timeout: float) -> bool:
        """Run the next claimed job, if one comes within ``timeout`` s; its outcome goes to the completer."""
        job = self.fetcher.take(timeout)
        if job is None:
            return False
        outcome = None
        try:
            outcome = self.processor.run(job)
            self.completer.submit(outcome_pending(outcome, self.worker_id, self.settings.backoff_scale))
        finally:
            self.fetcher.finished(job, outcome.duration if outcome else 0.0)
        return True

    def shutdown(self, grace: float) -> None:
        """Stop fetching, give running jobs ``grace`` seconds, hand back the rest, leave the registry."""
        self.stopping.set()
        self.fetcher.stop()
        deadline = time.monotonic() + grace
        for thread in self.runners:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.hand_back_and_retire()

    def hand_back_and_retire(self) -> None:
        """Write what is queued, return what is still in flight to its queue, leave the registry (once;
        a second caller waits for the first)."""
        self.stopping.set()
        with self.retiring:
            if not self.retired:
                self.retire()
            self.retired = True

    def retire(self) -> None:
        """Flush outcomes, hand back what is in flight, record the hand-backs, leave the registry."""
        # outcomes first: a finished job's message stays in flight until its outcome is committed,
        # and handing it back would run it again
        self.completer.flush(SHUTDOWN_WRITE_SECONDS)
        try:
            left = self.transport.inflight(self.worker_id)
            moved = self.transport.hand_back(self.worker_id, left) if left else []
            for job_id in moved:
                self.completer.submit(handed_back(job_id, self.worker_id,
                                                  f"Handed back by {self.worker_id} at shutdown"))
            self.completer.stop(SHUTDOWN_WRITE_SECONDS)
            self.heartbeat.stop()
            self.transport.retire(self.worker_id)
        except Exception:  # noqa: BLE001 - recovery by live workers covers what we couldn't do
            log.exception("shutdown hand-back failed; another worker will recover the jobs")


def maintain(maintenance: Maintenance, stopping: threading.Event, interval: float = 1.0) -> None:
    """Tick maintenance every ``interval`` seconds until ``stopping``."""
    while not stopping.is_set():
        started = time.monotonic()
        maintenance.tick()
        stopping.wait(max(0.0, interval - (time.monotonic() - started)))


class JobServer:
    """Runs a worker until SIGTERM/SIGINT, with threads or with child processes."""

    def __init__(self, engine: JobEngine, queues: list[str], concurrency: int = 4, processes: bool = False):
        self.engine, self.queues, self.concurrency, self.processes = engine, queues, concurrency, processes
        self.stop_requested = threading.Event()

    def run(self) -> None:
        """Run until asked to stop, then stop gracefully."""
        self.install_signals()
        if self.processes:
            self.run_processes()
        else:
            self.run_threads()

    def install_signals(self) -> None:
        def graceful(signum, frame):
            if signum == signal.SIGINT and self.stop_requested.is_set():
                os._exit(1)  # a second Ctrl-C forces
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, graceful)
        signal.signal(signal.SIGINT, graceful)

    def run_threads(self) -> None:
        pipeline = Pipeline(self.engine, self.queues, self.concurrency)
        pipeline.start()
        while not self.stop_requested.wait(1.0):
            pass
        pipeline.shutdown(self.engine.settings.shutdown_grace)

    # -- processes ---------------------------------------------------------------
    def run_processes(self) -> None:
        settings = self.engine.settings
        context = multiprocessing.get_context("fork")
        children = [self.spawn(context) for _ in range(self.concurrency)]
        with self.engine.app.app_context():
            engine = db.engine
        worker_id = new_worker_id()
        completer = Completer(engine, self.engine.transport, worker_id, self.engine.dispatch)
        maintenance = Maintenance(self.engine.app, self.engine.transport, completer, worker_id, settings)
        stopping = threading.Event()
        threading.Thread(target=maintain, args=(maintenance, stopping), name="maintenance",
                         daemon=True).start()
        while not self.stop_requested.wait(1.0):
            for index, child in enumerate(children):
                if not child.is_alive():
                    log.warning("worker process %s exited (%s); starting another", child.pid, child.exitcode)
                    children[index] = self.spawn(context)
        stopping.set()
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        # a child hands back after its grace, then writes (outcomes, hand-backs) for up to twice
        # SHUTDOWN_WRITE_SECONDS; killing it sooner would leave its jobs Processing until recovery
        deadline = time.monotonic() + settings.shutdown_grace + 2 * SHUTDOWN_WRITE_SECONDS + 5
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
        completer.stop(5)

    def spawn(self, context):
        child = context.Process(target=run_child, args=(self.engine, self.queues), daemon=False)
        child.start()
        return child


def run_child(engine: JobEngine, queues: list[str]) -> None:
    """A worker process: its own pipeline, jobs run in its main thread (interruptible), no maintenance."""
    with engine.app.app_context():
        db.engine.dispose(close=False)  # never share the parent's database connections
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    pipeline = Pipeline(engine, queues, 1, interrupts=True, maintenance=False)
    pipeline.start(runner_threads=False)
    grace = engine.settings.shutdown_grace

    def watchdog() -> None:
        stop.wait()
        deadline = time.monotonic() + grace
        pipeline.stopping.set()
        pipeline.fetcher.stop()
        time.sleep(max(0.0, deadline - time.monotonic()))  # the running job had its grace: hand it back, go
        pipeline.hand_back_and_retire()
        os._exit(0)

    threading.Thread(target=watchdog, name="shutdown", daemon=True).start()
    while not stop.is_set():
        pipeline.run_one(0.5)
    pipeline.fetcher.stop()
    pipeline.hand_back_and_retire()
    os._exit(0)
