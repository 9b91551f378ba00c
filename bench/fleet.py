"""Worker-fleet measurements for ``bench.engine``: idle CPU, several worker processes, memory.

* ``idle_cpu`` — a registered worker with nothing to do, CPU time over a window (% of one core);
* ``many_workers`` — 1, 2, 4 separate ``jobs worker`` processes on one queue (as separate dynos
  would be): throughput, duplicate runs (jobs claimed to run more than once: must be 0 without
  faults) and the ledger's lock waits (PostgreSQL: sessions waiting on a lock, sampled every
  20 ms; SQLite: lock time-outs in the workers' logs);
* ``rss_after`` — a worker's resident memory while it drains 100,000 no-op jobs.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (and its waited-for children)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def idle_cpu(side, seconds: float = 10.0) -> dict:
    """CPU used by an idle 4-thread worker over ``seconds`` (after it settles), in % of one core."""
    child = side.worker("threads", name=f"engine-{side.name}-idle")
    try:
        side.wait_registered(child)
        time.sleep(2.0)
        before, start = cpu_seconds(child.pid), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(child.pid) - before, time.monotonic() - start
    finally:
        child.stop()
    return {"seconds": round(wall, 2), "cpu_s": round(used, 3), "pct_of_core": round(100 * used / wall, 2)}


def many_workers(side, n: int, counts=(1, 2, 4), chunk: int = 2000, timeout: float = 300) -> list[dict]:
    """Drain ``n`` no-op jobs with 1, 2 and 4 separate worker processes (4 threads each)."""
    rows = []
    for count in counts:
        side.enqueue_bulk(n, chunk)
        since = time.time()
        children = [side.worker("threads", name=f"engine-{side.name}-fleet{count}-{i}") for i in range(count)]
        sampler = LockSampler(side) if side.backend == "postgresql" else None
        try:
            drained = side.drain_all(children, n, timeout)
        finally:
            if sampler:
                sampler.stop()
        row = {"workers": count, "threads_each": 4, **drained, "duplicate_runs": side.duplicate_runs(since)}
        if sampler:
            row["lock_waits"] = sampler.result()
        else:
            row["lock_waits"] = {"sqlite_lock_timeouts_logged": sum(c.tail(10_000).count("database is locked")
                                                                    for c in children)}
        rows.append(row)
    return rows


class LockSampler:
    """Samples PostgreSQL sessions of the bench database waiting on a lock, every 20 ms."""

    def __init__(self, side):
        import psycopg

        self.conn = psycopg.connect(side.pg_dsn, autocommit=True)
        self.name = side.pg_name
        self.samples = self.waiting = self.peak = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopping.wait(0.02):
            count = self.conn.execute("select count(*) from pg_stat_activity where datname = %s"
                                      " and wait_event_type = 'Lock'", (self.name,)).fetchone()[0]
            self.samples += 1
            self.waiting += bool(count)
            self.peak = max(self.peak, count)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.conn.close()

    def result(self) -> dict:
        return {"samples": self.samples,
                "samples_with_a_wait_pct": round(100 * self.waiting / max(1, self.samples), 1),
                "max_sessions_waiting": self.peak}


def rss_after(side, n: int = 100_000, chunk: int = 5000, timeout: float = 900) -> dict:
    """Resident memory of a 4-thread worker while it drains ``n`` no-op jobs (sampled every 10 %)."""
    side.enqueue_bulk(n, chunk)
    child = side.worker("threads", name=f"engine-{side.name}-rss")
    target = side.counts()["Succeeded"] + n
    samples: list[tuple[int, float]] = []
    started = time.time()
    try:
        side.wait_registered(child)
        done_before = target - n
        step = n // 10
        next_mark = 0
        while True:
            done = side.counts()["Succeeded"] - done_before
            if done >= next_mark:
                samples.append((done, round(rss_mb(child.pid), 1)))
                next_mark += step
            if done >= n:
                break
            if not child.alive() or time.time() - started > timeout:
                raise RuntimeError(f"rss drain stopped at {done}/{n}:\n{child.tail()}")
            time.sleep(0.2)
    finally:
        child.stop()
    first = next((mb for done, mb in samples if done >= step), samples[0][1])
    return {"jobs": n, "samples": samples, "rss_mb_end": samples[-1][1],
            "rss_mb_max": max(mb for _, mb in samples),
            "growth_mb_after_first_10pct": round(samples[-1][1] - first, 1),
            "seconds": round(time.time() - started, 1)}


def epoch_to_naive(seconds: float) -> datetime:
    """Ledger timestamps are naive UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
