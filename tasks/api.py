"""The public API for application code: declare jobs, enqueue them, know where you are.

    from tasks import job, enqueue, current_job

    @job(queue="reports", retries=3, backoff=[10, 60, 600])
    def build_report(report_id: int) -> dict: ...

    job_id = build_report.enqueue(42)
    build_report.schedule(args=(42,), delay=3600)
    enqueue("demo.sleep", args=[2], queue="default")

The registry of declared jobs is :mod:`tasks.registry`, a running job's context :mod:`tasks.context`;
both are re-exported here. Nothing here imports Huey; the engine behind ``current_engine()`` does.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from tasks.context import JobContext, current_job, progress, running, stop_running
from tasks.engine import CURRENT_TENANT, current_engine
from tasks.registry import (DEFAULT_QUEUE, REGISTRY, JobDefinition, UnknownTask, add, declarations,
                            definition)
from tasks.retry import Backoff, hangfire_backoff, policy

__all__ = ["DEFAULT_QUEUE", "REGISTRY", "JobContext", "JobDefinition", "JobFunction", "UnknownTask",
           "current_job", "declarations", "definition", "due_at", "enqueue", "enqueue_many", "job",
           "progress", "running", "stop_running"]


class JobFunction:
    """What ``@job`` returns: still callable directly, plus ``enqueue`` and ``schedule``."""

    def __init__(self, definition: JobDefinition):
        self.definition = definition
        self.job_name = definition.name
        self.__wrapped__ = definition.func
        self.__doc__ = definition.func.__doc__
        self.__name__ = definition.func.__name__

    def __call__(self, *args, **kwargs):
        """Run the function in this process, outside the job system."""
        return self.definition.func(*args, **kwargs)

    def enqueue(self, *args, **kwargs) -> str:
        """Queue one run with these arguments; returns the job id."""
        return enqueue(self, args, kwargs)

    def schedule(self, args: Sequence = (), kwargs: Mapping | None = None, *,
                 delay: float | timedelta | None = None, eta: datetime | None = None,
                 queue: str | None = None, priority: int | None = None) -> str:
        """Queue one run due after ``delay`` (seconds or timedelta) or at ``eta``; returns the job id."""
        if (delay is None) == (eta is None):
            raise ValueError("schedule() needs exactly one of delay= or eta=")
        return enqueue(self, args, kwargs, queue=queue, priority=priority, delay=delay, eta=eta)

    def enqueue_after(self, parent_id: str, args: Sequence = (), kwargs: Mapping | None = None,
                      continue_on: str = "success") -> str:
        """Queue a run that waits for job ``parent_id`` to finish (a continuation); returns its id."""
        return enqueue(self, args, kwargs, after=parent_id, continue_on=continue_on)

    def enqueue_many(self, calls: Iterable[Sequence], **options) -> list[str]:
        """Queue one run per positional-argument tuple in ``calls``; returns the job ids."""
        return enqueue_many(self, [(tuple(args), {}) for args in calls], **options)

    def __repr__(self) -> str:
        return f"<job {self.job_name}>"


def job(func: Callable | None = None, *, name: str | None = None, queue: str = DEFAULT_QUEUE,
        retries: int | None = None, backoff: Backoff = hangfire_backoff, priority: int = 0,
        only_on=(), except_on=(), display_name: str | None = None, timeout: float | None = None,
        unique=None, unique_window: float = 86400.0, mutex: str | None = None, internal: bool = False) -> Any:
    """Register a function as a background job.

    ``retries`` counts retries after the first attempt (default 9, i.e. 10
    attempts, as Hangfire); ``backoff`` is a function of the failed attempt, a
    list of delays in seconds, or None. A parameter named ``context`` receives
    the ``JobContext`` (job id, attempt, progress, logger, ...). ``timeout``
    (seconds) fails an attempt that runs longer: process workers interrupt it,
    thread workers stop it at its next checkpoint (``context.progress``/``check``).
    ``unique`` (True, a key format like ``"report:{0}"`` or a callable) makes an
    enqueue return the pending duplicate's id for ``unique_window`` seconds;
    ``mutex="key:{0}"`` keeps jobs with the same key from running at the same time
    (a blocked one is rescheduled, not failed). ``internal=True`` marks a job only the
    application enqueues (code and the CLI): the dashboard neither offers nor accepts it.
    """

    def register(fn: Callable) -> JobFunction:
        job_name = name or f"{fn.__module__}.{fn.__qualname__}"
        if not isinstance(queue, str) or not queue or len(queue) > 64:
            raise ValueError(f"queue must be a non-empty name of at most 64 characters, got {queue!r}")
        definition = JobDefinition(
            name=job_name, func=fn, queue=queue, priority=int(priority),
            retry=policy(retries, backoff, only_on, except_on), display_name=display_name,
            wants_context="context" in inspect.signature(fn).parameters,
            description=(inspect.getdoc(fn) or "").split("\n")[0],
            timeout=float(timeout) if timeout else None,
            unique=unique, unique_window=float(unique_window), mutex=mutex, internal=bool(internal),
        )
        add(definition)
        return JobFunction(definition)

    return register(func) if func is not None else register


def due_at(delay: float | timedelta | None, eta: datetime | None) -> float | None:
    """Epoch seconds for ``delay``/``eta``, or None when due now. Naive datetimes are UTC."""
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            raise ValueError(f"delay {seconds!r} is out of range: give a finite number of seconds")
        if seconds < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {seconds}")
        return datetime.now(timezone.utc).timestamp() + seconds if seconds > 0 else None
    if eta is not None:
        if not isinstance(eta, datetime):
            raise TypeError(f"eta must be a datetime, got {type(eta).__name__}")
        return (eta if eta.tzinfo else eta.replace(tzinfo=timezone.utc)).timestamp()
    return None


#: ``tenant=`` left out: the job belongs to whoever is acting (the signed-in user's tenant, the running
#: job's tenant, else the host)
CURRENT = "<current tenant>"


def enqueue(name_or_fn: str | Callable, args: Sequence = (), kwargs: Mapping | None = None, *,
            queue: str | None = None, priority: int | None = None, delay: float | timedelta | None = None,
            eta: datetime | None = None, after: str | None = None, continue_on: str = "success",
            tenant: str | None = CURRENT) -> str:
    """Queue one run of a registered job; returns its id.

    ``tenant`` names the tenant the job belongs to (None: the host); left out, the job belongs to the
    signed-in user's tenant inside a request, to the running job's inside a job, else to the host.

    Inside a request whose database session has pending writes, the job row joins
    that transaction and the message is sent after commit (nothing runs on rollback).
    ``after=job_id`` makes it a continuation: it waits (Awaiting) until that job
    succeeds (``continue_on="success"``) or reaches any final state (``"finished"``).
    """
    return enqueue_many(name_or_fn, [(args, kwargs or {})], queue=queue, priority=priority,
                        delay=delay, eta=eta, after=after, continue_on=continue_on, tenant=tenant)[0]


def enqueue_many(name_or_fn: str | Callable, calls: Iterable[tuple[Sequence, Mapping]], *,
                 queue: str | None = None, priority: int | None = None,
                 delay: float | timedelta | None = None, eta: datetime | None = None,
                 after: str | None = None, continue_on: str = "success",
                 tenant: str | None = CURRENT) -> list[str]:
    """Queue many runs of one job at once (one ledger transaction, one pipelined push).

    ``calls`` holds ``(args, kwargs)`` pairs. Returns the job ids in order.
    """
    return current_engine().enqueue_many(definition(name_or_fn), list(calls), queue=queue, priority=priority,
                                         due=due_at(delay, eta), after=after, continue_on=continue_on,
                                         tenant=CURRENT_TENANT if tenant == CURRENT else tenant)
