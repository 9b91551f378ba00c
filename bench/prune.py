"""What retention costs on a large ledger: prune time, the longest stall it causes, and storage.

Part of ``bench.dashboard`` (after the page timings, on the same seeded database). The cutoff is
chosen so that about ``SHARE`` of all jobs (the oldest Succeeded and Deleted ones) expire: 1 M of
10 M. While ``tasks.retention.prune`` removes them, two other processes work as usual and time
every call: a **claimer** (Enqueued → Processing in a write transaction, as a worker's claim is
recorded) and a **dashboard reader** (the Succeeded list and the overview through the Flask test
client). Each runs for ``BASELINE_SECONDS`` before pruning starts, so its normal latency is in the
report next to the worst one seen during the prune. Storage (tables and indexes, bytes per job) is
measured before and after; on PostgreSQL also after a plain ``VACUUM`` (the space deleted rows held
becomes reusable; the files don't shrink).
"""
from __future__ import annotations

import multiprocessing
import secrets
import time
from datetime import datetime, timedelta

from sqlalchemy import text

from bench.engine import percentile

SHARE = 0.10  # of all jobs expire
BASELINE_SECONDS = 3.0
EXPIRING_SHARE = 0.76  # Succeeded and Deleted in bench.seed.MIX
WEEK = timedelta(days=7)
READ_URLS = ("/hangfire/jobs/succeeded", "/hangfire")


def cutoff_for(now: datetime) -> datetime:
    """The retention cutoff at which about ``SHARE`` of the seeded jobs (spread over a week) expire."""
    return now - WEEK + WEEK * (SHARE / EXPIRING_SHARE)


def storage(engine) -> dict:
    """Bytes used by the ledger's tables with their indexes (and the whole database), per table/index."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text(
                "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'i') AND (c.relname LIKE 'job%' OR c.relname LIKE 'ix_job%')"))
            parts = {name: own for name, _, own in rows}
            total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        else:
            parts = dict(conn.execute(text(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name LIKE 'job%' OR name LIKE 'ix_job%' "
                "OR name LIKE 'sqlite_autoindex_job%' GROUP BY name")).all())
            pages = conn.execute(text("PRAGMA page_count")).scalar()
            free = conn.execute(text("PRAGMA freelist_count")).scalar()
            total = pages * conn.execute(text("PRAGMA page_size")).scalar()
            parts["(free pages)"] = free * (total // max(pages, 1))
        jobs = conn.execute(text("SELECT count(*) FROM jobs")).scalar()
    ledger_bytes = sum(size for name, size in parts.items() if not name.startswith("("))
    return {"database_bytes": int(total), "ledger_bytes": int(ledger_bytes), "jobs": jobs,
            "bytes_per_job": round(ledger_bytes / max(jobs, 1)),
            "parts": {name: int(size) for name, size in parts.items()}}


def claimer(config: dict, job_ids: list[str], ready, stop, out) -> None:
    """Claim ``job_ids`` one by one until ``stop``; send (time, ms) per claim to ``out``."""
    from app import create_app
    from app.extensions import write_transaction
    from tasks import ledger, lifecycle
    from tasks.lifecycle import Transition

    app, samples = create_app(config), []
    with app.app_context():
        ready.set()
        for job_id in job_ids:
            if stop.is_set():
                break
            at = ledger.utcnow()
            began = time.perf_counter()
            with write_transaction() as conn:
                ledger.apply(conn, [Transition(job_id, lifecycle.PROCESSING, at, "bench claim",
                                               expected=frozenset({lifecycle.ENQUEUED}),
                                               fields={"started_at": at, "worker": "bench:prune",
                                                       "attempt": 1})])
            samples.append((time.time(), (time.perf_counter() - began) * 1000))
            time.sleep(0.005)
    out.put(("claim", samples))


def reader(config: dict, user: tuple[str, str], ready, stop, out) -> None:
    """Read dashboard pages until ``stop``; send (time, ms) per request to ``out``."""
    from app import create_app

    app, samples = create_app(config), []
    client = app.test_client()
    client.post("/login", data={"username": user[0], "password": user[1]})
    ready.set()
    index = 0
    while not stop.is_set():
        began = time.perf_counter()
        client.get(READ_URLS[index % len(READ_URLS)]).get_data()
        samples.append((time.time(), (time.perf_counter() - began) * 1000))
        index += 1
    out.put(("read", samples))


def summary(samples: list[tuple[float, float]], start: float, end: float) -> dict:
    """Latency before pruning (baseline) and during it."""
    before = [ms for at, ms in samples if at < start]
    during = [ms for at, ms in samples if start <= at <= end]
    figures = {}
    for name, values in (("baseline", before), ("during", during)):
        figures[name] = ({"n": len(values), "p50_ms": round(percentile(values, 50), 1),
                          "p99_ms": round(percentile(values, 99), 1), "max_ms": round(max(values), 1)}
                         if values else {"n": 0})
    return figures


def measure(app, config: dict, user: tuple[str, str], log) -> dict:
    """Prune ~``SHARE`` of the jobs while a claimer and a reader run; timings and storage."""
    from app.extensions import db
    from tasks import ledger, retention

    with app.app_context():
        engine = db.engine
        cutoff = cutoff_for(ledger.utcnow())
        with engine.connect() as conn:
            expiring = conn.execute(text("SELECT count(*) FROM jobs WHERE state IN ('Succeeded', 'Deleted') "
                                         "AND state_changed_at < :cutoff"), {"cutoff": cutoff}).scalar()
            enqueued = list(conn.execute(text("SELECT id FROM jobs WHERE state = 'Enqueued' LIMIT 50000"))
                            .scalars())
        before = storage(engine)
        engine.dispose()
        context = multiprocessing.get_context("fork")
        stop, out, ready = context.Event(), context.Queue(), [context.Event(), context.Event()]
        workers = [context.Process(target=claimer, args=(config, enqueued, ready[0], stop, out)),
                   context.Process(target=reader, args=(config, user, ready[1], stop, out))]
        for process in workers:
            process.start()
        for event in ready:
            event.wait(120)
        time.sleep(BASELINE_SECONDS)
        log(f"  pruning {expiring:,} expired jobs")
        start = time.time()
        report = retention.prune(cutoff)
        end = time.time()
        stop.set()
        results = dict(out.get() for _ in workers)
        for process in workers:
            process.join()
        after = storage(engine)
        vacuumed = None
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM jobs, job_states"))
            vacuumed = storage(engine)
    return {"expired": report.removed, "expected": expiring, "seconds": round(report.seconds, 1),
            "batches": report.batches, "longest_batch_ms": round(report.longest_batch * 1000, 1),
            "largest_batch": max(report.batch_sizes or [0]),
            "claims": summary(results["claim"], start, end), "reads": summary(results["read"], start, end),
            "storage_before": before, "storage_after": after, "storage_after_vacuum": vacuumed,
            "run": secrets.token_hex(2)}
