"""The raw Huey baseline: a plain ``RedisHuey`` (pickle serializer) with a no-op and a stamp task.

Run by the benchmark as ``huey_consumer bench.raw_app.huey -w 4 -k thread`` (or ``-w 2 -k process``).
``noop`` counts completions with one pipelined round trip (INCR, and SETNX of the first start time)
so the benchmark knows when all N ran; ``stamp`` records enqueue → start like ``bench.stamp``.
"""
from __future__ import annotations

import os
import time

from huey import RedisHuey

DONE_KEY = "bench:raw:done"
FIRST_KEY = "bench:raw:first"
PICKUP_KEY = "bench:pickup"

huey = RedisHuey(os.environ.get("BENCH_HUEY_NAME", "bench-raw"), url=os.environ["REDIS_URL"], results=False)


@huey.task()
def noop() -> None:
    pipe = huey.storage.conn.pipeline(transaction=False)
    pipe.setnx(FIRST_KEY, repr(time.time()))
    pipe.incr(DONE_KEY)
    pipe.execute()


@huey.task()
def stamp(sent: float) -> None:
    started = time.time()
    huey.storage.conn.rpush(PICKUP_KEY, repr(started - sent))
