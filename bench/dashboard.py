"""Dashboard response times, search and retention over a large ledger, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.dashboard [--rows 1000000] [--samples 30] [--out bench/results/dashboard.json]

For each database — a fresh SQLite file in a temp dir, and a fresh PostgreSQL database
``bench_<random>`` on 127.0.0.1:5432 (dropped afterwards; skipped with a note when it
can't be reached) — it runs the migrations, seeds ``--rows`` jobs across every state with
set-based SQL (``bench.seed``: jobs, one history row each, counters; a week of throughput
buckets), signs a user holding ``Pages.Hangfire`` in through the Flask test client and times each
dashboard request (wall time, response body read): the overview and its fragment, every state
list, the retries and "all" lists, a second (keyset) page, searches for a rare and a common term
across every state and inside the Failed list, a job page, the stats JSON and a JSON list. Then it
prunes a tenth of the jobs while a claimer and a dashboard reader run (``bench.prune``) and
reports storage per job. It also seeds a week of job metric rows (as the leader's fold leaves them, plus
5 busy seconds not folded yet) and times the Prometheus scrape (``/metrics``), the Metrics page (each
window) and its JSON.

``--tenants N`` spreads the seeded jobs over N tenants and times the same requests as a user of one of
them (``JOBS_DASHBOARD_TENANTS`` on: every list, count and search is scoped to that tenant); the host
user's metrics requests answer 403 there and pruning is not repeated.

Prints a table (p50, p95, max in ms, PASS/FAIL against the issue's p95 < 100 ms) and writes
every figure as JSON. Not a test: nothing here asserts. The embedded SQLite transport is
used (no Redis needed); the transport is not what is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench import prune as bench_prune
from bench import seed as bench_seed
from bench.engine import percentile, pg_create, pg_drop
from tasks.ledger import bucket_of

ROOT = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 100.0
USER = "bench"
PASSWORD = "bench-password-1"
#: a common term for the searches: customer-42, -420..., -4200... (111 of 5,000 customers: 2 % of jobs)
COMMON_TERM = "customer-42"
WINDOW_NAMES = ("hour", "day", "week")
#: unfolded metric rows seeded: what a busy fleet writes between two folds (5 s, about 20 batches a
#: second, 4 rows each)
RAW_METRIC_ROWS = 5 * 20 * 4
#: in a ``--tenants`` run, the tenant whose user is signed in
SCOPED_TENANT = bench_seed.tenant_name(7)


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench.dashboard {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- seeding -------------------------------------------------------------------------------

def throughput_rows(now: datetime, rng: random.Random) -> list[dict]:
    """Hourly buckets over a week and 5-second buckets over the last 5 minutes."""
    rows = []
    for hour in range(1, 7 * 24):
        for state, peak in (("Succeeded", 5000), ("Failed", 200)):
            rows.append({"bucket": bucket_of(now - timedelta(hours=hour), 3600), "state": state,
                         "count": rng.randint(0, peak)})
    for step in range(60):
        rows.append({"bucket": bucket_of(now - timedelta(seconds=5 * step)), "state": "Succeeded",
                     "count": rng.randint(0, 50)})
    return rows


def random_measure(rng: random.Random, scale: int):
    """A ``tasks.metrics.Measure`` of about ``scale`` events with random times."""
    from tasks import metrics

    measure = metrics.Measure()
    for _ in range(rng.randint(1, 8)):
        seconds = rng.lognormvariate(-2, 2)
        batch = rng.randint(1, max(1, scale // 4))
        measure.count += batch
        measure.observed += batch
        measure.seconds += seconds * batch
        measure.bands[min(len(metrics.BOUNDS), sum(1 for b in metrics.BOUNDS if b < seconds))] += batch
    return measure


def seed_metrics(conn, now: datetime, rng: random.Random) -> int:
    """Job metric rows as a week of a busy fleet leaves them (six-hour blocks for 8 days, hours for a day,
    minutes for 90 minutes, ``RAW_METRIC_ROWS`` rows not folded yet, and the cumulative totals) for the
    seeded tasks and queues; returns the row count."""
    from tasks import metrics

    tasks, queues = bench_seed.TASKS, bench_seed.QUEUES
    pairs = [(task, queues[index % len(queues)]) for index, task in enumerate(tasks * len(queues))]
    kinds = (metrics.STARTED, metrics.SUCCEEDED, metrics.FAILED, metrics.RETRIED, metrics.DELETED)
    written = 0
    shapes = ((metrics.SIX_HOURS, metrics.six_hours_of(now), 4, 8 * 4),
              (metrics.HOUR, metrics.hour_of(now), 1, 24),
              (metrics.MINUTE, metrics.minute_of(now), 1, 90))  # grain, latest slot, first and last step back
    for grain, latest, first, last in shapes:
        rows = {(latest - timedelta(seconds=grain * k), task, queue, kind): random_measure(rng, grain // 10)
                for k in range(first, last + 1) for task, queue in pairs for kind in kinds}
        metrics.put(conn, rows, grain)
        metrics.add_totals(conn, rows)
        written += len(rows)
    picks = (rng.choice(pairs) + (rng.choice(kinds),) for _ in range(RAW_METRIC_ROWS))
    raw = [{"bucket": metrics.minute_of(now) - timedelta(minutes=rng.randint(0, 1)), "grain": metrics.RAW,
            "task": task, "queue": queue, "kind": kind, **random_measure(rng, 20).values()}
           for task, queue, kind in picks]
    conn.execute(metrics.metrics_table.insert(), raw)
    return written + len(raw)


def seed(app, rows: int, tenants: int = 0) -> dict:
    """Seed ``rows`` jobs with set-based SQL (``bench.seed``), over ``tenants`` tenants if any; returns
    timing and a few ids to open (of the scoped tenant, in a tenant run)."""
    from sqlalchemy import insert, text

    from app.extensions import db
    from tasks import ledger

    now = ledger.utcnow()
    seconds = bench_seed.seed(app, rows, now, log, tenants)
    mine = " AND tenant = :tenant" if tenants else ""
    rng = random.Random(7)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(insert(ledger.throughput_table), throughput_rows(now, rng))
            metric_rows = seed_metrics(conn, now, rng)
            week_ms = int(ledger.to_epoch(now) * 1000) - 7 * 86400 * 1000
            starts = [f"{week_ms + rng.randrange(7 * 86400 * 1000):012x}" for _ in range(60)]
            first_after = text(f"SELECT min(id) FROM jobs WHERE id >= :start{mine}")
            sample_ids = [conn.execute(first_after, {"start": start, "tenant": SCOPED_TENANT}).scalar()
                          for start in starts]
        settle(db.engine)
    return {"rows": rows, "seconds": round(seconds, 1), "sample_ids": [i for i in sample_ids if i],
            "metric_rows": metric_rows}


def settle(engine) -> None:
    """After the bulk load, what a database in steady state has had: statistics (and on PostgreSQL
    a vacuum, so autovacuum doesn't start in the middle of the timings)."""
    from sqlalchemy import text

    statement = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(statement))


# --- the application and the user ------------------------------------------------------------

def app_config(database_url: str, instance: Path, tenants: bool = False) -> dict:
    """The configuration of the measured application (tenant users let in when ``tenants``)."""
    return {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": None, "INSTANCE_PATH": str(instance),
            "SECRET_KEY": "bench-" + secrets.token_hex(24), "LOG_LEVEL": "WARNING",
            "WTF_CSRF_ENABLED": False, "APP_ENV": "testing", "JOBS_DASHBOARD_TENANTS": tenants}


def build_app(database_url: str, instance: Path, tenants: bool = False):
    """The application on ``database_url``, migrated, with a signed-in-able dashboard user (of
    ``SCOPED_TENANT`` when ``tenants``)."""
    from app import create_app
    from app.extensions import db
    from app.models import Permission, Role, Tenant, User, sync_permissions
    from app.permissions import HANGFIRE

    app = create_app(app_config(database_url, instance, tenants))
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
        sync_permissions()
        tenant = Tenant(name=SCOPED_TENANT) if tenants else None
        role = Role(name="Operators", tenant=tenant)
        role.permissions = [db.session.scalar(db.select(Permission).where(Permission.name == HANGFIRE))]
        user = User(username=USER, email="bench@example.com", active=True, tenant=tenant)
        user.set_password(PASSWORD)
        user.roles.append(role)
        db.session.add_all([role, user])
        db.session.commit()
    return app


def signed_in_client(app, tenant: str = ""):
    """A test client signed in through the login form (to ``tenant``; blank: the host)."""
    client = app.test_client()
    response = client.post("/login", data={"username": USER, "password": PASSWORD, "tenant": tenant})
    if response.status_code != 302:
        raise RuntimeError(f"login failed: {response.status_code}")
    return client


# --- measuring -------------------------------------------------------------------------------

def needle(rows: int, n: int) -> str:
    """The ``n``-th of the rare terms ``bench.seed`` puts in one job's arguments each."""
    every, at = bench_seed.needle_rule(rows)
    return f"needle-{n * every + at}"


def rare_failed(rows: int) -> str:
    """The needle a Failed job carries (the sixth: ``bench.seed`` lays states out by index)."""
    return needle(rows, 5)


def endpoints(client, sample_ids: list[str], rows: int, host: bool = True) -> list[tuple[str, list[str]]]:
    """(name, URLs to cycle through) for every measured request (a tenant's user: none of the metrics,
    which are the host's)."""
    lists = ["enqueued", "scheduled", "processing", "succeeded", "failed", "deleted", "awaiting", "retries",
             "all"]
    first = client.get("/hangfire/api/jobs?state=Failed&limit=20").get_json()
    second = f"/hangfire/jobs/failed?cursor={first['next_cursor']}" if first.get("next_cursor") else None
    named = [("overview", ["/hangfire"]), ("overview fragment", ["/hangfire/fragment/overview"])]
    named += [(f"list {slug}", [f"/hangfire/jobs/{slug}"]) for slug in lists]
    named += [("list failed, page 2", [second])] if second else []
    named += [("search all states, rare", [f"/hangfire/jobs/all?q={needle(rows, n)}" for n in range(3)]),
              ("search all states, common", [f"/hangfire/jobs/all?q={COMMON_TERM}"]),
              ("search failed, rare", [f"/hangfire/jobs/failed?q={rare_failed(rows)}"]),
              ("search failed, common (error)", [f"/hangfire/jobs/failed?q=reach+{COMMON_TERM}"]),
              ("job detail", [f"/hangfire/job/{job_id}" for job_id in sample_ids[:50]]),
              ("stats JSON", ["/hangfire/api/stats"]),
              ("list JSON (Failed, 50)", ["/hangfire/api/jobs?state=Failed&limit=50"])]
    if not host:
        return named
    named += [("metrics scrape (/metrics)", ["/metrics"]),
              ("metrics page (hour/day/week)", [f"/hangfire/metrics?window={w}" for w in WINDOW_NAMES]),
              ("metrics JSON (week)", ["/hangfire/api/metrics?window=week"])]
    return named


def time_request(client, url: str) -> tuple[float, int]:
    """Milliseconds for one GET (body read) and its status."""
    started = time.perf_counter()
    response = client.get(url)
    response.get_data()
    return (time.perf_counter() - started) * 1000, response.status_code


def measure(client, urls: list[str], samples: int, warmup: int = 3) -> dict:
    """p50/p95/max over ``samples`` requests cycling through ``urls`` (after ``warmup``)."""
    for index in range(warmup):
        time_request(client, urls[index % len(urls)])
    timings, statuses = [], set()
    for index in range(samples):
        elapsed, status = time_request(client, urls[index % len(urls)])
        timings.append(elapsed)
        statuses.add(status)
    p95 = percentile(timings, 95)
    return {"p50_ms": round(percentile(timings, 50), 1), "p95_ms": round(p95, 1),
            "max_ms": round(max(timings), 1), "samples": samples, "statuses": sorted(statuses),
            "pass": p95 < TARGET_P95_MS and statuses == {200}}


def run_backend(name: str, database_url: str, workdir: Path, rows: int, samples: int, only: str = "",
                tenants: int = 0) -> dict:
    """Seed one database and time every endpoint on it (as ``SCOPED_TENANT``'s user over ``tenants``
    tenants, if any; then without pruning)."""
    log(f"{name}: migrating")
    app = build_app(database_url, workdir / f"instance-{name}", bool(tenants))
    log(f"{name}: seeding {rows:,} jobs" + (f" over {tenants} tenants" if tenants else ""))
    seeded = seed(app, rows, tenants)
    log(f"{name}: seeded in {seeded['seconds']} s; measuring")
    client = signed_in_client(app, SCOPED_TENANT if tenants else "")
    visible = sum(client.get("/hangfire/api/stats").get_json()["states"].values())
    log(f"{name}: the signed-in user sees {visible:,} jobs")  # a tenant's share in a tenant run
    results = {}
    for label, urls in endpoints(client, seeded["sample_ids"], rows, host=not tenants):
        if only not in label:
            continue
        results[label] = measure(client, urls, samples)
        log(f"  {label:32s} p50 {results[label]['p50_ms']:8.1f} ms   p95 {results[label]['p95_ms']:8.1f} ms")
    if tenants:
        pruning = None
    else:
        log(f"{name}: pruning")
        pruning = bench_prune.measure(app, app_config(database_url, workdir / f"instance-{name}"),
                                      (USER, PASSWORD), log)
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
    return {"seed_seconds": seeded["seconds"], "metric_rows": seeded["metric_rows"], "visible_jobs": visible,
            "endpoints": results,
            "pruning": pruning}


# --- output ----------------------------------------------------------------------------------

def table(report: dict) -> str:
    """The results as a fixed-width table."""
    lines = [f"as the user of {report['scope']}" + (f" (jobs over {report['tenants']} tenants)"
                                                    if report.get("tenants") else ""),
             f"{'database':10s} {'request':34s} {'p50 ms':>9s} {'p95 ms':>9s} {'max ms':>9s}  target p95<100"]
    for backend, result in report["backends"].items():
        if "skipped" in result:
            lines.append(f"{backend:10s} skipped: {result['skipped']}")
            continue
        for label, figures in result["endpoints"].items():
            verdict = "PASS" if figures["pass"] else "FAIL"
            lines.append(f"{backend:10s} {label:34s} {figures['p50_ms']:9.1f} {figures['p95_ms']:9.1f} "
                         f"{figures['max_ms']:9.1f}  {verdict}")
        lines.append(f"{backend:10s} (seeded {report['rows']:,} jobs in {result['seed_seconds']} s; "
                     f"{result['visible_jobs']:,} visible to the user)")
        lines += pruning_lines(backend, result.get("pruning"))
    return "\n".join(lines)


def pruning_lines(backend: str, pruning: dict | None) -> list[str]:
    """The retention figures as table lines."""
    if not pruning:
        return []
    before, after = pruning["storage_before"], pruning["storage_after"]
    lines = [f"{backend:10s} prune {pruning['expired']:,} jobs: {pruning['seconds']} s in "
             f"{pruning['batches']} batches (longest {pruning['longest_batch_ms']} ms, "
             f"largest {pruning['largest_batch']} jobs)"]
    for name in ("claims", "reads"):
        base, during = pruning[name]["baseline"], pruning[name]["during"]
        lines.append(f"{backend:10s}   {name}: max {during.get('max_ms')} ms, p99 {during.get('p99_ms')} ms "
                     f"during ({during['n']}); baseline max {base.get('max_ms')} ms, "
                     f"p50 {base.get('p50_ms')} ms")
    mib = 2 ** 20
    lines.append(f"{backend:10s}   ledger bytes/job {before['bytes_per_job']} before, "
                 f"{after['bytes_per_job']} after; database {before['database_bytes'] / mib:,.0f} MiB -> "
                 f"{after['database_bytes'] / mib:,.0f} MiB")
    if pruning.get("storage_after_vacuum"):
        vacuumed = pruning["storage_after_vacuum"]
        lines.append(f"{backend:10s}   after VACUUM: database {vacuumed['database_bytes'] / 2**20:,.0f} MiB")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to seed per database")
    parser.add_argument("--samples", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dashboard.json"))
    parser.add_argument("--no-postgres", action="store_true", help="only SQLite")
    parser.add_argument("--only", default="", help="time only the requests whose name contains this text")
    parser.add_argument("--tenants", type=int, default=0,
                        help=f"spread the jobs over this many tenants and measure as {SCOPED_TENANT}'s user")
    options = parser.parse_args(argv)
    if options.tenants and options.tenants <= 7:
        parser.error(f"--tenants must be more than 7 ({SCOPED_TENANT} is the one measured)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    os.environ.pop("DATABASE_URL", None)
    report = {"rows": options.rows, "samples": options.samples, "target_p95_ms": TARGET_P95_MS,
              "tenants": options.tenants, "scope": SCOPED_TENANT if options.tenants else "host",
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}, "backends": {}}
    try:
        report["backends"]["sqlite"] = run_backend("sqlite", f"sqlite:///{workdir / 'ledger.db'}", workdir,
                                                   options.rows, options.samples, options.only,
                                                   options.tenants)
        report["backends"]["postgresql"] = postgres_leg(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(report))
    Path(options.out).parent.mkdir(parents=True, exist_ok=True)
    Path(options.out).write_text(json.dumps(report, indent=2))
    log(f"wrote {options.out}")
    return 0


def postgres_leg(options, workdir: Path) -> dict:
    """The PostgreSQL run on a fresh database (dropped afterwards), or why it was skipped."""
    if options.no_postgres:
        return {"skipped": "--no-postgres"}
    name, url, problem = pg_create()
    if problem:
        return {"skipped": problem}
    try:
        return run_backend("postgresql", url, workdir, options.rows, options.samples, options.only,
                           options.tenants)
    finally:
        pg_drop(name)


if __name__ == "__main__":
    sys.exit(main())
