"""Jobs used only by the benchmark, registered in workers through ``JOBS_MODULES=bench.jobs``.

``bench.stamp(sent)`` records ``time.time() - sent`` (the enqueue → start latency, in
seconds) on the Redis list ``bench:pickup`` of ``BENCH_REDIS_URL`` (else ``REDIS_URL``: the
embedded-transport leg has no ``REDIS_URL``, the benchmark's Redis still collects stamps).
"""
from __future__ import annotations

import os
import threading
import time

from tasks.api import job

PICKUP_KEY = "bench:pickup"

_local = threading.local()


def _redis():
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "pid", None) != os.getpid():
        import redis

        client = _local.client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL")
                                                      or os.environ["REDIS_URL"])
        _local.pid = os.getpid()
    return client


@job(name="bench.stamp", retries=0)
def stamp(sent: float) -> None:
    """Record how long ago ``sent`` (epoch seconds, taken just before the enqueue call) was."""
    started = time.time()
    _redis().rpush(PICKUP_KEY, repr(started - sent))
