"""The processor: runs one claimed job and returns its outcome; it writes nothing itself.

``Processor.perform`` is the one place a job's function is called (wrap it there for
tracing). The outcome goes to the completer, which records it and settles the message.
Thread workers stop a job past its ``timeout`` at its next checkpoint; a process worker
(``interrupts=True``, running jobs in its main thread) interrupts it with a timer signal.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask

from app.extensions import db
from app.logs import job_scope
from tasks import context as job_context
from tasks import tracing
from tasks.registry import JobDefinition
from tasks.codec import Delivery
from tasks.progress import JobCancelled, JobTimeout, Reporter

SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
log = logging.getLogger("tasks.processor")


@dataclass
class Claimed:
    """A fetched job the ledger accepted as Processing, on its way to (or in) a thread."""

    definition: JobDefinition
    delivery: Delivery
    attempt: int
    redeliveries: int = 0
    mutex: str | None = None
    claimed_at: float = 0.0  # time.monotonic() when the claim committed


@dataclass
class Outcome:
    """How one run of a job ended: ``kind`` is succeeded, failed or cancelled."""

    job: Claimed
    kind: str
    value: Any  # the result, the exception, or the cancel reason
    duration: float


class Processor:
    """Runs claimed jobs in a fresh app context, one call per job."""

    def __init__(self, app: Flask, worker_id: str, interrupts: bool = False):
        self.app, self.worker_id, self.interrupts = app, worker_id, interrupts

    def run(self, job: Claimed) -> Outcome:
        """Run ``job`` and describe how it ended (exceptions of the job are data, not raised)."""
        start = time.monotonic()
        with self.app.app_context():
            kind, value = self.perform(job)
        return Outcome(job, kind, value, time.monotonic() - start)

    def perform(self, job: Claimed) -> tuple[str, Any]:
        """Run ``job`` with its log context (every line logged meanwhile names the job) and, when tracing
        is on, in its span; a failed attempt is logged with its traceback (for log-based error
        trackers) and recorded on the span."""
        delivery = job.delivery
        with job_scope(delivery.id, delivery.task, delivery.queue, job.attempt, delivery.tenant), \
                tracing.run_span(delivery.id, delivery.task, delivery.queue, job.attempt,
                                 delivery.traceparent) as span:
            kind, value = self.call(job)
            if kind == FAILED:
                span.failed(value)
                log.error("job %s (%s) failed on attempt %d of %d: %s: %s", delivery.id, delivery.task,
                          job.attempt, delivery.max_attempts, type(value).__name__, value,
                          exc_info=(type(value), value, value.__traceback__))
            return kind, value

    def call(self, job: Claimed) -> tuple[str, Any]:
        """Call the job function with its context: the one place a job starts running."""
        definition, delivery = job.definition, job.delivery
        deadline = time.monotonic() + definition.timeout if definition.timeout else None
        reporter = Reporter(delivery.id, db.engine, deadline)
        context = job_context.JobContext(delivery.id, delivery.task, job.attempt, delivery.max_attempts,
                                         delivery.queue, self.worker_id, reporter=reporter,
                                         tenant=delivery.tenant)
        token = job_context.running(context)
        try:
            kwargs = dict(delivery.kwargs)
            if definition.wants_context:
                kwargs["context"] = context
            with self.alarm(definition.timeout):
                return SUCCEEDED, definition.func(*delivery.args, **kwargs)
        except JobCancelled as stop:
            return CANCELLED, stop
        except JobTimeout:
            return FAILED, JobTimeout(f"timed out after {definition.timeout:g}s")
        except Exception as error:  # noqa: BLE001 - the job's failure is data, not ours
            return FAILED, error
        finally:
            reporter.close()
            job_context.stop_running(token)

    def alarm(self, seconds: float | None):
        """Interrupt the job with ``JobTimeout`` after ``seconds`` (process workers' main thread only)."""
        if not (seconds and self.interrupts and threading.current_thread() is threading.main_thread()):
            return contextlib.nullcontext()
        return _alarm(seconds)


@contextlib.contextmanager
def _alarm(seconds: float):
    def interrupt(signum, frame):
        raise JobTimeout("timed out")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
