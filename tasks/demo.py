"""Operational jobs, registered everywhere: check a deployment end to end with them."""
from __future__ import annotations

import time

from tasks.api import JobContext, job


class DemoFailure(RuntimeError):
    """Raised on purpose by ``demo.fail`` and ``demo.flaky``."""


@job(name="demo.noop", retries=0)
def noop() -> None:
    """Do nothing (throughput and latency checks)."""


@job(name="demo.sleep", display_name="Sleep {0}s")
def sleep(seconds: float) -> float:
    """Sleep ``seconds`` (at most an hour), then return them."""
    seconds = float(seconds)
    if not 0 <= seconds <= 3600:
        raise ValueError(f"seconds must be between 0 and 3600, got {seconds}")
    time.sleep(seconds)
    return seconds


@job(name="demo.fail", retries=0)
def fail(message: str = "demo.fail always fails") -> None:
    """Always raise ``DemoFailure(message)``."""
    raise DemoFailure(message)


@job(name="demo.flaky", backoff=[1])
def flaky(fail_times: int, context: JobContext) -> str:
    """Fail the first ``fail_times`` attempts, then succeed."""
    if context.attempt <= int(fail_times):
        raise DemoFailure(f"attempt {context.attempt} of {context.max_attempts} fails on purpose")
    return f"succeeded on attempt {context.attempt}"
