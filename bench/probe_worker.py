"""The engine's worker with timing probes, for ``python -m bench.engine`` (profile section only).

    python -m bench.probe_worker OUT.json [CONCURRENCY] [async-claim]

Runs ``tasks.server.JobServer`` (thread workers, queue ``default``) exactly like
``flask jobs worker`` does, after wrapping a few pipeline methods *in this process only*
to time them: completer batches (size, SQL time, acknowledgement time), fetches, claims
and job executions. On SIGTERM the server stops gracefully and the figures go to OUT.json.
Nothing in ``tasks/`` is modified; the probes add a little overhead of their own.

``async-claim`` is a what-if experiment: a fetched job goes to the threads as soon as its
claim is *submitted*, without waiting for the claim's commit. With the pipeline's single,
ordered completer the claim still commits before the job's outcome, so the drain finishes;
what the what-if gives up is the check itself (a job deleted or finished before the claim
would run anyway). Why the same what-if hung before the pipeline: claims and outcomes had
two writer threads with no order between them, so a job's Succeeded could be written first
(refused: the job was still Enqueued) and its message acknowledged anyway; the late claim
then left the job Processing with no message, owned by a live worker — which neither
dead-worker recovery nor the reconciler touches (426 jobs stuck Processing).
"""
from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections import defaultdict

SAMPLES: dict[str, list] = defaultdict(list)
_lock = threading.Lock()


def timed(name: str, func, size=None):
    """Wrap ``func`` so that each call appends (size, seconds) to ``SAMPLES[name]``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            n = size(*args, **kwargs) if size else 1
            with _lock:
                SAMPLES[name].append((n, elapsed))

    return wrapper


def install_probes() -> list[str]:
    """Wrap what exists of the pipeline's hot path; returns the probes that could not be installed."""
    from tasks import completer, fetcher, ledger, processor
    from tasks.transport import redis as redis_transport, sqlite as sqlite_transport

    spots = [
        ("ledger_batch_total", completer.Completer, "_write", lambda self, batch: len(batch)),
        ("ledger_batch_ack", completer.Completer, "_settle", lambda self, batch: len(batch)),
        ("ledger_apply_sql", ledger, "apply", lambda conn, transitions, *a, **k: len(transitions)),
        ("fetch_lua", redis_transport.RedisTransport, "_try_fetch", None),
        ("fetch_sqlite", sqlite_transport.SqliteTransport, "_try_fetch", None),
        ("claim_wait", fetcher.Fetcher, "claim", lambda self, jobs, placed: len(jobs)),
        ("execute_job", processor.Processor, "run", None),
    ]
    missing = []
    for name, owner, attr, size in spots:
        if owner is None or not callable(getattr(owner, attr, None)):
            missing.append(name)
            continue
        setattr(owner, attr, timed(name, getattr(owner, attr), size=size))
    return missing


def install_async_claim() -> str | None:
    """What-if: a claimed job is ready as soon as its claim is submitted (no wait for the commit)."""
    from tasks import fetcher

    def claim(self, jobs, placed):
        for job in jobs:
            self.completer.submit(self.claim_pending(job))
            placed.add(job.delivery.id)
            job.claimed_at = time.monotonic()
            with self.cond:
                self.ready.append(job)
                self.cond.notify()

    fetcher.Fetcher.claim = claim
    return None


def summarize(samples: dict[str, list]) -> dict:
    """Count, total and mean per probe; batch-size distribution for the ledger batches."""
    out = {}
    for name, rows in sorted(samples.items()):
        if not rows:
            continue
        sizes = sorted(n for n, _ in rows)
        seconds = sorted(s for _, s in rows)
        total_items = sum(sizes)
        total_s = sum(seconds)
        entry = {
            "calls": len(rows), "items": total_items, "total_s": round(total_s, 4),
            "mean_ms_per_call": round(total_s / len(rows) * 1000, 3),
            "p50_ms_per_call": round(seconds[len(seconds) // 2] * 1000, 3),
            "p99_ms_per_call": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000, 3),
        }
        if total_items != len(rows):
            entry.update(
                mean_items_per_call=round(total_items / len(rows), 2),
                p50_items_per_call=sizes[len(sizes) // 2],
                max_items_per_call=sizes[-1],
                us_per_item=round(total_s / max(total_items, 1) * 1e6, 1),
            )
        out[name] = entry
    return out


def main(argv: list[str]) -> int:
    out_path = argv[1]
    concurrency = int(argv[2]) if len(argv) > 2 else 4
    missing = install_probes()
    what_if = None
    if "async-claim" in argv[3:]:
        what_if = install_async_claim() or "async-claim"
    from app import create_app
    from tasks.server import JobServer

    app = create_app()
    started = time.perf_counter()
    try:
        with app.app_context():
            JobServer(app.extensions["jobs"], ["default"], concurrency, False).run()
    finally:
        report = {"wall_s": round(time.perf_counter() - started, 3), "probes": summarize(dict(SAMPLES)),
                  "missing_probes": missing, "what_if": what_if}
        with open(out_path, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
