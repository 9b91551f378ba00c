"""Jobs used only by the test suite (imported through ``JOBS_MODULES=tests.jobs``)."""
from __future__ import annotations

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
    """Sleep, then append this job id to ``tally.log`` in the instance folder.

    The fault suite's witness of completed runs: a file, so it survives the
    Redis and database faults the suite injects (one short O_APPEND write per run).
    """
    import os

    from flask import current_app

    time.sleep(seconds)
    fd = os.open(os.path.join(current_app.instance_path, "tally.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (context.job_id + "\n").encode())
    finally:
        os.close(fd)
