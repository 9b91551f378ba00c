"""Jobs used only by the test suite (imported through ``JOBS_MODULES=tests.jobs``)."""
from __future__ import annotations

import os
import time

from tasks import JobContext, job


class Boom(RuntimeError):
    """A failure the tests provoke."""


class Permanent(ValueError):
    """A failure that must not be retried."""


@job(name="tests.always_fails", retries=2, backoff=[1, 1])
def always_fails(message: str = "boom") -> None:
    """Fail every attempt."""
    raise Boom(message)


@job(name="tests.no_retry_on_permanent", retries=3, backoff=[0], except_on=Permanent)
def no_retry_on_permanent() -> None:
    """Raise an exception type excluded from retries."""
    raise Permanent("bad input, retrying won't help")


@job(name="tests.whoami")
def whoami(context: JobContext) -> dict:
    """Return what the job knows about itself."""
    return {"job_id": context.job_id, "attempt": context.attempt, "queue": context.queue}


@job(name="tests.nap", queue="default", retries=0)
def nap(seconds: float) -> float:
    """Sleep, for shutdown and crash tests."""
    time.sleep(seconds)
    return seconds


@job(name="tests.tally", backoff=[0.2])
def tally(seconds: float, context: JobContext) -> None:
    """Record its start, sleep, then append this job id to ``tally.log`` in the instance folder.

    The fault suite's witness of runs: files, so they survive the Redis and database
    faults the suite injects (one short O_APPEND write each). ``starts.log`` gets
    ``<job id> <worker pid>`` when a run starts, ``tally.log`` the job id when it completes.
    """
    from flask import current_app

    append(os.path.join(current_app.instance_path, "starts.log"), f"{context.job_id} {os.getpid()}")
    time.sleep(seconds)
    append(os.path.join(current_app.instance_path, "tally.log"), context.job_id)


def append(path: str, line: str) -> None:
    """Append one line to ``path`` in a single write (safe across processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@job(name="tests.progressing", retries=0)
def progressing(steps: int, delay: float, context: JobContext) -> int:
    """Report progress and log a line per step; stops when cancelled (progress is a checkpoint)."""
    for step in range(1, steps + 1):
        time.sleep(delay)
        context.logger.info("step %d of %d <done>", step, steps)
        context.progress(100 * step / steps, f"step {step}")
    return steps


@job(name="tests.cooperative_timeout", retries=1, backoff=[0], timeout=1)
def cooperative_timeout(seconds: float, context: JobContext) -> None:
    """Run past the timeout, checking in (thread workers stop it at a checkpoint)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        context.check()


@job(name="tests.blocking_timeout", retries=1, backoff=[0], timeout=1)
def blocking_timeout(seconds: float) -> None:
    """Run past the timeout without checking in (process workers interrupt it)."""
    time.sleep(seconds)


@job(name="tests.exclusive", retries=0, mutex="exclusive:{0}")
def exclusive(key: str, seconds: float) -> None:
    """Hold a mutex for ``seconds``."""
    time.sleep(seconds)


@job(name="tests.unique_report", unique="report:{0}", retries=0)
def unique_report(report_id: int) -> int:
    """A job enqueued at most once per report while pending."""
    return report_id


@job(name="tests.recurring_tick", retries=0)
def recurring_tick() -> None:
    """Fired every second by the recurring schedule some tests switch on."""


if os.environ.get("TESTS_RECURRING"):
    from tasks.recurring import recurring

    recurring("tests.every-second", cron="* * * * * *")(recurring_tick)


@job(name="tests.typed", retries=0)
def typed(count: int, ratio: float, name: str, flag: bool, items: list[int], options: dict[str, str],
          note: str | None = None) -> dict:
    """Echo its arguments, typed: ``count`` whole, ``ratio`` a number.

    Used by the enqueue form's tests (see :func:`~tasks.api.job` and *annotations*).
    """
    return {"count": count, "ratio": ratio, "name": name, "flag": flag, "items": items, "options": options,
            "note": note}


@job(name="tests.on_alpha", queue="alpha", retries=0)
def on_alpha() -> None:
    """A job whose own queue is ``alpha``: declares that queue for the tests that use it."""


@job(name="tests.gate", retries=0)
def gate(name: str, context: JobContext) -> str:
    """Write ``<name>.started``, wait until ``<name>.open`` exists, write ``<name>.done``: a job a test
    steers."""
    from flask import current_app

    base = os.path.join(current_app.instance_path, name)
    append(base + ".started", context.job_id)
    while not os.path.exists(base + ".open"):
        time.sleep(0.02)
    append(base + ".done", context.job_id)
    return name


@job(name="tests.echo", retries=0)
def echo(value):
    """Return ``value`` unchanged (argument round trips)."""
    return value


@job(name="tests.permanent", retries=5, backoff=[0])
def permanent() -> None:
    """Fail with a ``PermanentError``: no retry may follow."""
    from tasks import PermanentError

    raise PermanentError("this input can never work")


@job(name="tests.log_line", retries=0)
def log_line(message: str) -> None:
    """Log ``message`` through an ordinary module logger (not the job's own)."""
    import logging

    logging.getLogger("tests.jobs").warning(message)


@job(name="tests.tenant_view", retries=0)
def tenant_view(context: JobContext) -> dict:
    """What a job sees of its tenant: its context, its log context, the jobs it may read and enqueues."""
    from app.logs import current_context
    from tasks import enqueue, queries

    logged = current_context()
    child = enqueue("demo.noop")
    return {"tenant": context.tenant, "log_tenant": logged.get("tenant"), "log_job": logged.get("job_id"),
            "child": child, "visible": sorted(job.id for job in queries.list_jobs(limit=100).jobs)}
