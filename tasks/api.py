"""The public API for application code: declare jobs, enqueue them, know where you are.

    from tasks import job, enqueue, current_job

    @job(queue="reports", retries=3, backoff=[10, 60, 600])
    def build_report(report_id: int) -> dict: ...

    job_id = build_report.enqueue(42)
    build_report.schedule(args=(42,), delay=3600)
    enqueue("demo.sleep", args=[2], queue="default")

Nothing here imports Huey; the engine behind ``current_engine()`` does.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tasks.retry import Backoff, RetryPolicy, hangfire_backoff, policy

DEFAULT_QUEUE = "default"


class UnknownTask(LookupError):
    """No job is registered under that name."""


@dataclass(frozen=True)
class JobDefinition:
    """A registered job: the function and how it is queued and retried."""

    name: str
    func: Callable
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    display_name: str | None = None
    wants_context: bool = False
    description: str = ""
    timeout: float | None = None
    unique: Any = None  # True (task + arguments), a key format string, or a callable
    unique_window: float = 86400.0
    mutex: str | None = None  # key format string: jobs with the same key never overlap
    internal: bool = False  # enqueued by the application only: the dashboard doesn't offer or accept it

    @property
    def signature(self) -> inspect.Signature:
        """The function's signature without the injected ``context`` parameter."""
        return public_signature(self.func)

    def check_call(self, args: Sequence, kwargs: Mapping) -> None:
        """Raise ``TypeError`` naming the problem when ``args``/``kwargs`` don't fit the function."""
        error = call_shape_error(self.func, len(args), tuple(sorted(kwargs)))
        if error:
            raise TypeError(f"{self.name}: {error}")

    def check_keys(self, args: Sequence, kwargs: Mapping) -> None:
        """Raise ``ValueError`` when the ``mutex``/``unique`` key templates can't be filled from the
        arguments."""
        for option, template in (("mutex", self.mutex), ("unique", self.unique)):
            if isinstance(template, str):
                try:
                    template.format(*args, **kwargs)
                except (IndexError, KeyError, ValueError, AttributeError) as exc:
                    raise ValueError(f"{self.name}: {option} key {template!r} can't be built from the "
                                     f"arguments ({type(exc).__name__}: {exc})") from None

    def parameter_names(self) -> list[str]:
        """Positional parameter names, for naming bad arguments."""
        return [n for n, p in self.signature.parameters.items()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def describe(self, args: Sequence, kwargs: Mapping) -> str:
        """Human name of one run, e.g. ``Report 'activity' for 2026-11``."""
        if not self.display_name:
            return self.name
        try:
            return self.display_name.format(*args, **kwargs)[:255]
        except (IndexError, KeyError, ValueError, AttributeError):
            return self.display_name[:255]


@functools.lru_cache(maxsize=None)
def public_signature(func: Callable) -> inspect.Signature:
    """``func``'s signature without ``context`` (cached: checked on every enqueue)."""
    sig = inspect.signature(func)
    return sig.replace(parameters=[p for n, p in sig.parameters.items() if n != "context"])


@functools.lru_cache(maxsize=4096)
def call_shape_error(func: Callable, positional: int, keywords: tuple[str, ...]) -> str | None:
    """Why a call with this many positional arguments and these keywords doesn't fit ``func`` (None if
    it does).

    Binding depends only on the call's shape, not its values, so a bulk enqueue checks it once.
    """
    try:
        public_signature(func).bind(*range(positional), **dict.fromkeys(keywords))
        return None
    except TypeError as exc:
        return str(exc)


REGISTRY: dict[str, JobDefinition] = {}
_DECLARATIONS = [0]  # how many times a job was declared: engines re-sync their Huey registry when it moves


def declarations() -> int:
    """How many job declarations have happened in this process (a change means the registry changed)."""
    return _DECLARATIONS[0]


def definition(name_or_fn: str | Callable | "JobFunction") -> JobDefinition:
    """The registered definition for a name, a job function, or a decorated function."""
    if isinstance(name_or_fn, JobFunction):
        return name_or_fn.definition
    name = name_or_fn if isinstance(name_or_fn, str) else getattr(name_or_fn, "job_name", None)
    if name is None or name not in REGISTRY:
        raise UnknownTask(f"no job registered as {name!r}; known: {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


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
        if job_name in REGISTRY and REGISTRY[job_name].func is not fn:
            existing = REGISTRY[job_name].func
            if (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
                raise ValueError(f"a different job is already registered as {job_name!r}")
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
        REGISTRY[job_name] = definition
        _DECLARATIONS[0] += 1
        return JobFunction(definition)

    return register(func) if func is not None else register


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
    from tasks.engine import CURRENT_TENANT, current_engine

    return current_engine().enqueue_many(definition(name_or_fn), list(calls), queue=queue, priority=priority,
                                         due=due_at(delay, eta), after=after, continue_on=continue_on,
                                         tenant=CURRENT_TENANT if tenant == CURRENT else tenant)
