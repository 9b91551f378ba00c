"""Where a running job is: its :class:`JobContext`, for the job's own code (``current_job()``)."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobContext:
    """What a running job knows about itself, and how it reports back.

    ``progress()`` and ``check()`` are cancellation checkpoints: they raise
    ``JobCancelled`` when someone cancelled the job, ``JobTimeout`` past its timeout.
    """

    job_id: str
    task: str
    attempt: int
    max_attempts: int
    queue: str
    worker_id: str
    enqueued_by: str | None = None
    reporter: Any = field(default=None, repr=False)
    #: the tenant the job runs for (None: the host); jobs it enqueues belong to it too
    tenant: str | None = None

    @property
    def is_last_attempt(self) -> bool:
        """True when a failure now will not be retried."""
        return self.attempt >= self.max_attempts

    def progress(self, percent: float, message: str = "") -> None:
        """Record progress (0–100) shown live on the dashboard; a cancellation checkpoint."""
        if self.reporter is not None:
            self.reporter.progress(percent, message)

    @property
    def logger(self):
        """A logger whose lines are stored with the job (bounded) and shown on its page."""
        import logging

        return self.reporter.logger if self.reporter is not None else logging.getLogger(f"jobs.{self.task}")

    @property
    def cancelled(self) -> bool:
        """True once someone asked this job to stop."""
        return self.reporter is not None and self.reporter.cancel_reason() is not None

    def check(self) -> None:
        """Raise ``JobCancelled``/``JobTimeout`` if the job should stop now."""
        if self.reporter is not None:
            self.reporter.check()


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("current_job", default=None)


def current_context() -> JobContext | None:
    """The context of the job running in this thread, or None outside a job."""
    return _current.get()


def current_job() -> JobContext:
    """The context of the job running in this thread; RuntimeError outside a job."""
    context = _current.get()
    if context is None:
        raise RuntimeError("current_job() called outside a running job")
    return context


def progress(percent: float, message: str = "") -> None:
    """``current_job().progress(...)`` for code that doesn't take a context."""
    current_job().progress(percent, message)


def running(context: JobContext):
    """Context-manager-ish token setter used by the worker: returns a reset token."""
    return _current.set(context)


def stop_running(token) -> None:
    """Undo ``running``."""
    _current.reset(token)
