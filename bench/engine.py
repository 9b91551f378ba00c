"""Job engine vs raw Huey, side by side on one Redis, ledger on SQLite and PostgreSQL.

    .venv/bin/python -m bench.engine [--jobs N] [--quick] [--out bench/results/engine.json]

Starts its own redis-server (free port, no persistence; raw Huey on db 0, the engine on
db 1 and 2), a fresh PostgreSQL database ``bench_<random>`` (dropped afterwards; the leg
is skipped with a note when PostgreSQL can't be reached) and a temp dir for SQLite, runs
the migrations, and measures, in one run:

* **drain rate**: N no-op jobs enqueued beforehand, then a fresh worker subprocess at the
  same shape on both sides — *threads* (raw ``huey_consumer -w 4 -k thread`` vs
  ``flask jobs worker -c 4``) and *processes* (``-w 2 -k process`` vs ``-c 2 --processes``).
  Raw Huey is a plain ``RedisHuey`` (pickle) whose task counts completions in Redis; the
  engine is done when the ledger shows all N Succeeded (``tasks.queries.state_counts()``).
  Both sides are polled every 20 ms. The clock starts when the first job starts (Redis
  SETNX on the raw side, ``min(jobs.started_at)`` on the engine side), so process start-up
  is not counted; spawn → done is reported too.
* **enqueue rate**: one producer calling ``noop()`` (raw) or ``tasks.enqueue("demo.noop")``
  (engine, outside a request: its own ledger transaction, then the push) in a loop; and
  ``tasks.enqueue_many`` in chunks (``--chunk``, default 2000).
* **pickup latency** (enqueue → start): an idle worker (4 threads), one ``bench.stamp``
  job at a time with a short random pause between; the job records ``time.time() - sent``
  where ``sent`` is taken just before the enqueue call (``bench/jobs.py``, loaded by the
  worker through ``JOBS_MODULES=bench.jobs``).
* **profile** (unless ``--no-profile``): a threads drain under ``py-spy record --gil``
  (if py-spy is on PATH, next to python, in ``$PY_SPY`` or given by ``--py-spy``); the
  same drain with timing probes, stock and with the what-if "claim without waiting for
  the commit" (``bench/probe_worker.py``); cProfile and a stage-by-stage timing of the
  enqueue paths; a ``ledger.apply`` batch-size sweep; on PostgreSQL, a what-if with
  ``synchronous_commit = off``.

Order per shape: raw, the engine on each ledger, raw again; the raw figure is the mean
of the two raw runs, so drift during the run hits both sides. The machine is small and
shared: compare the ratios of one run, not absolute numbers across runs. Not a test:
nothing here asserts; the targets are reported as PASS/FAIL in the table and the JSON.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the code under test is run from: a snapshot of the tree taken at start (see ``snapshot``).
CODE = ROOT
SNAPSHOT_ITEMS = ("app", "tasks", "admin", "migrations", "templates", "static", "bench", "wsgi.py", "tests",
                  "setup.cfg")
STALL_S = 45.0  # a drain that makes no progress for this long is reported as failed
BIN = Path(sys.executable).parent
POLL = 0.02  # seconds between "done yet?" polls, same on both sides
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"

#: Issue 11's targets per ledger backend ("embedded" = SQLite transport and ledger). Ratios are engine / raw
#: Huey (on Redis) of the same run; a missing key means no target (the figure is still reported).
TARGETS = {
    "sqlite": {"drain_threads_ratio": 1.0, "drain_processes_ratio": 0.8, "enqueue_ratio": 0.5,
               "bulk_jobs_per_s": 30_000.0, "pickup_p50_ms": 3.0, "pickup_p99_ms": 15.0},
    "postgresql": {"drain_threads_ratio": 0.8, "drain_processes_ratio": 0.6, "bulk_jobs_per_s": 25_000.0,
                   "pickup_p50_ms": 5.0, "pickup_p99_ms": 20.0},
    "embedded": {"drain_threads_ratio": 0.5},
    "idle_cpu_pct": 1.0,  # every transport
    "rss_mb": 150.0,  # after draining 100,000 jobs
    "duplicate_runs": 0,  # many workers, no faults
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(round(pct / 100.0 * len(ordered) + 0.4999))))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_epoch(value: datetime) -> float:
    """Ledger timestamps are naive UTC."""
    return value.replace(tzinfo=timezone.utc).timestamp()


# -- processes we start ---------------------------------------------------------------------
CHILDREN: list["Child"] = []


class Child:
    """A subprocess in its own session (so the process workers it forks can be ended with it)."""

    def __init__(self, name: str, argv: list[str], env: dict, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.log = open(self.log_path, "ab")
        self.spawned = time.time()
        self.proc = subprocess.Popen(argv, env=env, cwd=CODE, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        CHILDREN.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 30.0) -> float:
        """SIGTERM (graceful), then SIGKILL to its process group; returns seconds taken."""
        start = time.time()
        try:
            if self.alive():
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    log(f"{self.name}: no exit after {grace}s, killing")
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of this child's own group only
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(10)
            self.log.close()
            if self in CHILDREN:
                CHILDREN.remove(self)
        return time.time() - start


class RedisServer:
    """A throw-away redis-server on a free port, without persistence."""

    def __init__(self, logdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.child = Child("redis-server", [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                                            "--dir", str(logdir)], dict(os.environ), logdir)
        import redis

        self.client = redis.Redis.from_url(self.url)
        deadline = time.time() + 10
        while True:
            try:
                self.client.ping()
                break
            except Exception:  # noqa: BLE001
                if time.time() > deadline or not self.child.alive():
                    raise RuntimeError(f"redis-server did not start:\n{self.child.tail()}")
                time.sleep(0.05)
        self.version = self.client.info("server")["redis_version"]

    def url_for(self, db: int) -> str:
        """URL of logical database ``db``: raw Huey on 0, each engine leg on its own."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        try:
            self.client.shutdown(nosave=True)
        except Exception:  # noqa: BLE001 - shutdown closes the connection under us
            pass
        self.child.stop(5)


# -- PostgreSQL -----------------------------------------------------------------------------
def pg_create() -> tuple[str | None, str | None, str | None]:
    """(database name, URL, None) for a fresh database, or (None, None, reason)."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        info = conninfo_to_dict(PG_ADMIN)
        auth = info.get("user", "postgres") + (f":{info['password']}" if info.get("password") else "")
        host, port = info.get("host", "127.0.0.1"), info.get("port", 5432)
        return name, f"postgresql://{auth}@{host}:{port}/{name}", None
    except Exception as exc:  # noqa: BLE001
        detail = " ".join(str(exc).split())[:300]
        return None, None, f"PostgreSQL not reachable ({type(exc).__name__}: {detail})"


def pg_maintenance_url() -> str:
    """``PG_ADMIN`` as a URL (what the test suite's ``TEST_DATABASE_URL`` takes)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(PG_ADMIN)
    auth = info.get("user", "postgres") + (f":{info['password']}" if info.get("password") else "")
    host, port = info.get("host", "127.0.0.1"), info.get("port", 5432)
    return f"postgresql://{auth}@{host}:{port}/{info.get('dbname', 'postgres')}"


def pg_drop(name: str) -> None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # noqa: BLE001
        log(f"could not drop database {name}: {exc}")


def pg_settings() -> dict:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            return {k: conn.execute(f"SHOW {k}").fetchone()[0]
                    for k in ("server_version", "synchronous_commit", "fsync", "shared_buffers")}
    except Exception:  # noqa: BLE001
        return {}


# -- raw Huey -------------------------------------------------------------------------------
class RawSide:
    """Plain RedisHuey with a pickle serializer: the baseline (Redis db 0)."""

    def __init__(self, redis: RedisServer, logdir: Path):
        self.redis, self.logdir = redis, logdir
        self.url = redis.url_for(0)
        os.environ["REDIS_URL"] = self.url
        os.environ.setdefault("BENCH_HUEY_NAME", "bench-raw")
        self.app = importlib.import_module("bench.raw_app")
        self.client = self.app.huey.storage.conn
        self.queue_key = self.app.huey.storage.queue_key
        self.env = dict(os.environ, REDIS_URL=self.url, PYTHONPATH=str(CODE))

    def consumer(self, shape: str) -> Child:
        workers, kind = ("4", "thread") if shape == "threads" else ("2", "process")
        argv = [str(BIN / "huey_consumer"), "bench.raw_app.huey", "-w", workers, "-k", kind, "-n", "-q"]
        return Child(f"raw-{shape}", argv, self.env, self.logdir)

    def reset(self) -> None:
        self.client.flushdb()  # db 0 holds only the raw side

    def enqueue_per_call(self, n: int) -> dict:
        noop = self.app.noop
        start = time.perf_counter()
        for _ in range(n):
            noop()
        elapsed = time.perf_counter() - start
        return {"jobs": n, "seconds": round(elapsed, 4), "jobs_per_s": round(n / elapsed, 1)}

    def leg(self, shape: str, n: int, timeout: float) -> dict:
        """Per-call enqueue of N jobs (timed), then drain them with a fresh consumer."""
        self.reset()
        enqueue = self.enqueue_per_call(n)
        drain = self.drain(shape, n, timeout)
        log(f"raw {shape}: enqueue {enqueue['jobs_per_s']:.0f}/s, drain {drain['jobs_per_s']:.0f}/s")
        return {"enqueue_per_call": enqueue, "drain": drain}

    def drain(self, shape: str, n: int, timeout: float) -> dict:
        client = self.client
        assert client.llen(self.queue_key) == n, "raw queue does not hold the N pre-enqueued jobs"
        child = self.consumer(shape)
        deadline = time.time() + timeout
        progress = (None, time.time())
        try:
            while True:
                pipe = client.pipeline(transaction=False)
                pipe.get(self.app.DONE_KEY)
                pipe.llen(self.queue_key)
                done, waiting = pipe.execute()
                now = time.time()
                if waiting == 0 and int(done or 0) >= n:
                    break
                if done != progress[0]:
                    progress = (done, now)
                if not child.alive():
                    raise RuntimeError(f"raw consumer exited:\n{child.tail()}")
                if now > deadline or now - progress[1] > STALL_S:
                    raise RuntimeError(f"raw drain stuck: {int(done or 0)}/{n} done:\n{child.tail()}")
                time.sleep(POLL)
        finally:
            stop_s = child.stop()
        first = float(client.get(self.app.FIRST_KEY))
        seconds = now - first
        return {"shape": shape, "jobs": n, "seconds": round(seconds, 4), "jobs_per_s": round(n / seconds, 1),
                "spawn_to_done_s": round(now - child.spawned, 3), "stop_s": round(stop_s, 2)}

    def pickup(self, samples: int, warmup: int) -> dict:
        self.reset()
        child = self.consumer("threads")
        try:
            return measure_pickup(self.client, lambda sent: self.app.stamp(sent), samples, warmup, child)
        finally:
            child.stop()


def measure_pickup(client, send, samples: int, warmup: int, child: Child) -> dict:
    """Enqueue one stamp job at a time on an idle worker; collect enqueue → start latencies."""
    from bench.jobs import PICKUP_KEY

    latencies, call_ms = [], []
    for i in range(warmup + samples):
        client.delete(PICKUP_KEY)
        sent = time.time()
        send(sent)
        called = time.time() - sent
        got = client.blpop([PICKUP_KEY], timeout=30)
        if got is None:
            raise RuntimeError(f"no pickup within 30 s (sample {i}):\n{child.tail()}")
        if i >= warmup:
            latencies.append(float(got[1]) * 1000)
            call_ms.append(called * 1000)
        time.sleep(random.uniform(0.005, 0.015))  # let the worker go idle again
    return {"samples": len(latencies), "p50_ms": round(percentile(latencies, 50), 3),
            "p90_ms": round(percentile(latencies, 90), 3), "p99_ms": round(percentile(latencies, 99), 3),
            "max_ms": round(max(latencies), 3), "mean_ms": round(statistics.fmean(latencies), 3),
            "enqueue_call_p50_ms": round(percentile(call_ms, 50), 3),
            "enqueue_call_p99_ms": round(percentile(call_ms, 99), 3)}


# -- the engine -----------------------------------------------------------------------------
PERCALL_QUEUE = "bench-percall"  # per-call enqueue samples go here: no worker listens to it


class EngineSide:
    """The engine with its ledger on one database, on its own Redis db of the shared redis-server."""

    def __init__(self, backend: str, database_url: str, redis: RedisServer, redis_db: int, workdir: Path,
                 pg_name: str | None = None, transport: str = "redis"):
        self.backend, self.redis, self.workdir, self.pg_name = backend, redis, workdir, pg_name
        self.transport_kind = transport
        self.name = backend if transport == "redis" else "embedded"
        self.pg_dsn = PG_ADMIN
        instance = workdir / f"instance-{self.name}"
        instance.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis.url_for(redis_db)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DATABASE_URL", "FLASK_APP", "REDIS_URL")}
        self.env.update(DATABASE_URL=database_url, INSTANCE_PATH=str(instance),
                        BENCH_REDIS_URL=self.redis_url, APP_ENV="testing",
                        SECRET_KEY="bench-" + secrets.token_hex(24),
                        JOBS_MODULES="bench.jobs", LOG_LEVEL="WARNING", PYTHONPATH=str(CODE))
        if transport == "redis":
            self.env["REDIS_URL"] = self.redis_url
        else:
            self.env["JOBS_SQLITE_PATH"] = str(instance / "transport.db")
            os.environ.pop("REDIS_URL", None)
            os.environ.pop("JOBS_SQLITE_PATH", None)
        os.environ.update(self.env)
        os.environ.pop("FLASK_APP", None)
        from app import create_app

        self.app = create_app()
        with self.app.app_context():
            import flask_migrate

            flask_migrate.upgrade()
            from tasks import queues

            queues.declare(PERCALL_QUEUE)
        self.ext = self.app.extensions["jobs"]
        import redis as redis_module

        self.client = redis_module.Redis.from_url(self.redis_url)
        self.client.flushdb()

    # helpers -------------------------------------------------------------------------
    def counts(self) -> dict:
        from tasks.queries import state_counts

        with self.app.app_context():
            return state_counts()

    def first_start_since(self, since: float) -> float:
        from sqlalchemy import func, select

        from app.extensions import db
        from tasks.ledger import Job

        with self.app.app_context():
            cutoff = datetime.fromtimestamp(since, timezone.utc).replace(tzinfo=None)
            query = select(func.min(Job.started_at)).where(Job.started_at >= cutoff)
            first = db.session.execute(query).scalar()
            db.session.remove()
        return to_epoch(first)

    def worker(self, shape: str, name: str | None = None, argv: list[str] | None = None) -> Child:
        if argv is None:
            argv = [str(BIN / "flask"), "--app", "wsgi", "jobs", "worker", "--queues", "default"]
            argv += ["-c", "4"] if shape == "threads" else ["-c", "2", "--processes"]
        return Child(name or f"engine-{self.name}-{shape}", argv, self.env, self.workdir)

    def wait_registered(self, child: Child, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not self.ext.transport.workers():
            if not child.alive() or time.time() > deadline:
                raise RuntimeError(f"{child.name} did not register:\n{child.tail()}")
            time.sleep(0.05)

    # measurements --------------------------------------------------------------------
    def enqueue_per_call(self, calls: int, max_seconds: float = 8.0) -> dict:
        """``tasks.enqueue`` in a loop outside a request (immediate path), to a queue nobody drains."""
        import tasks

        with self.app.app_context():
            tasks.enqueue("demo.noop", queue=PERCALL_QUEUE)  # warm the pools outside the timing
            start = time.perf_counter()
            done = 0
            while done < calls and (done < 50 or time.perf_counter() - start < max_seconds):
                tasks.enqueue("demo.noop", queue=PERCALL_QUEUE)
                done += 1
            elapsed = time.perf_counter() - start
        return {"jobs": done, "seconds": round(elapsed, 4), "jobs_per_s": round(done / elapsed, 1)}

    def enqueue_bulk(self, n: int, chunk: int) -> dict:
        import tasks

        with self.app.app_context():
            start = time.perf_counter()
            done = 0
            while done < n:
                size = min(chunk, n - done)
                tasks.enqueue_many("demo.noop", [((), {})] * size)
                done += size
            elapsed = time.perf_counter() - start
        return {"jobs": n, "chunk": chunk, "seconds": round(elapsed, 4), "jobs_per_s": round(n / elapsed, 1)}

    def leg(self, shape: str, n: int, chunk: int, timeout: float) -> dict:
        """Bulk-enqueue N jobs (timed), then drain them with a fresh worker."""
        bulk = self.enqueue_bulk(n, chunk)
        drain = self.drain(self.worker(shape), n, timeout)
        log(f"engine {self.backend} {shape}: bulk {bulk['jobs_per_s']:.0f}/s, "
            f"drain {drain['jobs_per_s']:.0f}/s")
        return {"enqueue_bulk": bulk, "drain": drain}

    def drain(self, child: Child, n: int, timeout: float, before_enqueue=None, chunk: int = 2000) -> dict:
        """Wait until the ledger shows N more Succeeded; the clock starts at the first job's start.

        With ``before_enqueue`` (profile runs), the worker starts first, the callback runs
        once it is registered (e.g. to attach py-spy), and only then are the N jobs enqueued.
        """
        return self.drain_all([child], n, timeout, before_enqueue, chunk)

    def drain_all(self, children: list[Child], n: int, timeout: float, before_enqueue=None,
                  chunk: int = 2000) -> dict:
        """``drain`` with any number of worker processes on the same queue."""
        before = self.counts()
        target = before["Succeeded"] + n
        marker = min(c.spawned for c in children)
        deadline = time.time() + timeout
        try:
            if before_enqueue is not None:
                self.wait_registered(children[0])
                before_enqueue()
                self.enqueue_bulk(n, chunk)
            progress = (None, time.time())
            while True:
                counts = self.counts()
                now = time.time()
                if counts["Succeeded"] >= target:
                    break
                if counts["Succeeded"] != progress[0]:
                    progress = (counts["Succeeded"], now)
                elif now - progress[1] > STALL_S:
                    raise RuntimeError(f"engine drain stuck at {counts} for {STALL_S:.0f}s:\n"
                                       f"{children[0].tail()}")
                if counts["Failed"] > before["Failed"]:
                    failed = counts["Failed"] - before["Failed"]
                    raise RuntimeError(f"{failed} job(s) failed during the drain:\n{children[0].tail()}")
                for child in children:
                    if not child.alive():
                        raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
                if now > deadline:
                    raise RuntimeError(f"engine drain timed out: {counts}")
                time.sleep(POLL)
        finally:
            stop_s = max(child.stop() for child in children)
        seconds = now - self.first_start_since(marker - 1)
        return {"jobs": n, "seconds": round(seconds, 4), "jobs_per_s": round(n / seconds, 1),
                "spawn_to_done_s": round(now - marker, 3), "stop_s": round(stop_s, 2)}

    def duplicate_runs(self, since: float) -> int:
        """Jobs claimed to run (Processing) more than once since ``since`` (epoch s)."""
        from sqlalchemy import func, select

        from app.extensions import db
        from tasks.ledger import JobState

        with self.app.app_context():
            cutoff = datetime.fromtimestamp(since, timezone.utc).replace(tzinfo=None)
            runs = (select(JobState.job_id)
                    .where(JobState.state == "Processing", JobState.created_at >= cutoff)
                    .group_by(JobState.job_id).having(func.count() > 1))
            count = db.session.execute(select(func.count()).select_from(runs.subquery())).scalar()
            db.session.remove()
        return int(count or 0)

    def pickup(self, samples: int, warmup: int) -> dict:
        import tasks

        child = self.worker("threads", name=f"engine-{self.name}-pickup")
        try:
            self.wait_registered(child)
            time.sleep(0.3)  # let every thread reach its blocking wait
            with self.app.app_context():
                result = measure_pickup(self.client, lambda sent: tasks.enqueue("bench.stamp", args=[sent]),
                                        samples, warmup, child)
        finally:
            child.stop()
        log(f"engine {self.name}: pickup p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
        return result

    # profile ---------------------------------------------------------------------------
    def profile(self, n: int, chunk: int, calls: int, timeout: float, py_spy: str | None) -> dict:
        """Every profile step; a step that fails is reported with its error, the others still run."""
        out: dict = {"jobs": n}
        if py_spy:
            out["py_spy"] = guarded(lambda: self.py_spy_drain(n, chunk, timeout, py_spy))
        for what_if in ("stock", "async-claim"):
            out[f"probe_{what_if}"] = guarded(lambda: self.probe_drain(what_if, n, chunk, timeout))
        out["enqueue_cprofile"] = guarded(lambda: self.profile_enqueue(min(calls, 300), chunk))
        out["enqueue_bulk_stages"] = self.enqueue_stages(chunk)
        out["ledger_apply_sweep"] = guarded(self.apply_sweep)
        if self.pg_name:
            out["what_if_synchronous_commit_off"] = guarded(
                lambda: self.what_if_async_commit(n, chunk, calls, timeout))
        return out

    def py_spy_drain(self, n: int, chunk: int, timeout: float, py_spy: str) -> dict:
        flame = self.workdir / f"py-spy-{self.backend}.txt"
        child = self.worker("threads", name=f"engine-{self.backend}-py-spy")
        spy: list[subprocess.Popen] = []

        def attach() -> None:
            spy.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(child.pid), "--gil", "--rate", "250", "--format", "raw",
                 "--nonblocking", "-o", str(flame)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            time.sleep(1.0)  # py-spy attaches

        try:
            drained = self.drain(child, n, timeout, before_enqueue=attach, chunk=chunk)
        finally:
            for proc in spy:
                try:
                    _, err = proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
        out = {"drain": drained, **summarize_flame(flame, drained["seconds"])}
        if not flame.exists():
            out["error"] = err.decode(errors="replace")[-2000:]
        log(f"engine {self.backend}: py-spy drain {drained['jobs_per_s']:.0f}/s")
        return out

    def probe_drain(self, what_if: str, n: int, chunk: int, timeout: float) -> dict:
        report = self.workdir / f"probe-{self.backend}-{what_if}.json"
        argv = [sys.executable, "-m", "bench.probe_worker", str(report), "4"]
        if what_if != "stock":
            argv.append(what_if)
        probe = self.worker("threads", name=f"engine-{self.backend}-probe-{what_if}", argv=argv)
        drained = self.drain(probe, n, timeout, before_enqueue=lambda: None, chunk=chunk)
        log(f"engine {self.backend}: probe ({what_if}) drain {drained['jobs_per_s']:.0f}/s")
        return {"drain": drained, **(json.loads(report.read_text()) if report.exists() else {})}

    def what_if_async_commit(self, n: int, chunk: int, calls: int, timeout: float) -> dict:
        """PostgreSQL with ``synchronous_commit = off`` for every connection (set on the database)."""
        import psycopg

        from app.extensions import db

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.pg_name}" SET synchronous_commit = off')
        with self.app.app_context():
            db.engine.dispose()
        out = {"enqueue_per_call": self.enqueue_per_call(calls),
               "enqueue_bulk": self.enqueue_bulk(n, chunk)}
        out["drain_threads"] = self.drain(self.worker("threads", name=f"engine-{self.backend}-nosync-t"),
                                          n, timeout)
        out["pickup"] = self.pickup(50, 5)
        out["ledger_apply_sweep"] = self.apply_sweep()
        log(f"engine {self.backend} synchronous_commit=off: enqueue "
            f"{out['enqueue_per_call']['jobs_per_s']:.0f}/s, "
            f"drain threads {out['drain_threads']['jobs_per_s']:.0f}/s")
        return out

    def profile_enqueue(self, calls: int, chunk: int) -> dict:
        """cProfile of the enqueue paths in this process: per call and one bulk chunk."""
        import cProfile

        import tasks

        out = {}

        def per_call() -> None:
            for _ in range(calls):
                tasks.enqueue("demo.noop", queue=PERCALL_QUEUE)

        def bulk() -> None:
            tasks.enqueue_many("demo.noop", [((), {})] * chunk, queue=PERCALL_QUEUE)

        with self.app.app_context():
            for label, action in (("per_call", per_call), ("bulk", bulk)):
                profiler = cProfile.Profile()
                start = time.perf_counter()
                profiler.runcall(action)
                elapsed = time.perf_counter() - start
                jobs = calls if label == "per_call" else chunk
                out[label] = {"jobs": jobs, "seconds_under_cprofile": round(elapsed, 4),
                              **cprofile_top(profiler, jobs)}
        return out

    def enqueue_stages(self, chunk: int, repeats: int = 3) -> dict:
        """Wall time of each stage of a bulk enqueue of ``chunk`` no-op jobs, without a profiler.

        Re-enacts ``JobEngine.enqueue_many`` stage by stage with the engine's own functions
        (validation, ids, ledger insert + commit, message encoding, transport push); the
        median of ``repeats`` runs per stage.
        """
        try:
            from app.extensions import db
            from tasks import api, ledger, lifecycle
            from tasks.codec import Delivery, check_arguments
            from tasks.engine import outgoing

            job = api.definition("demo.noop")
            runs: dict[str, list[float]] = defaultdict(list)
            clock = time.perf_counter
            with self.app.app_context():
                for _ in range(repeats):
                    start = clock()
                    names = job.parameter_names()
                    for _ in range(chunk):
                        check_arguments([], {}, names)
                        job.check_call([], {})
                        job.describe([], {})
                    runs["validate (check_arguments, check_call, describe)"].append(clock() - start)
                    start = clock()
                    ids = [ledger.new_job_id() for _ in range(chunk)]
                    runs["new_job_id"].append(clock() - start)
                    start = clock()
                    new_jobs = [ledger.NewJob(i, job.name, job.name, PERCALL_QUEUE, 0, [], {},
                                              lifecycle.ENQUEUED, job.retry.attempts) for i in ids]
                    deliveries = [Delivery(i, job.name, PERCALL_QUEUE, 0, [], {}, 1, job.retry.attempts, None,
                                           time.time()) for i in ids]
                    runs["build NewJob + Delivery objects"].append(clock() - start)
                    start = clock()
                    with db.engine.begin() as conn:
                        ledger.insert_jobs(conn, new_jobs)
                    runs["ledger insert_jobs + commit"].append(clock() - start)
                    start = clock()
                    messages = [outgoing(d) for d in deliveries]
                    runs["encode messages (Delivery.encode)"].append(clock() - start)
                    start = clock()
                    self.ext.transport.push(messages)
                    runs["transport push (one pipeline)"].append(clock() - start)
            stages = {k: statistics.median(v) for k, v in runs.items()}
            total = sum(stages.values())
            return {"jobs": chunk, "total_us_per_job": round(total / chunk * 1e6, 1),
                    "implied_jobs_per_s": round(chunk / total, 1),
                    "stages": {k: {"us_per_job": round(v / chunk * 1e6, 1), "pct": round(100 * v / total, 1)}
                               for k, v in stages.items()}}
        except Exception as exc:  # noqa: BLE001 - the engine changed shape: report, don't fail the run
            return {"error": f"{type(exc).__name__}: {exc}"}

    def apply_sweep(self, sizes=(1, 4, 16, 64, 256)) -> list[dict]:
        """Cost per transition of ``ledger.apply`` (Processing then Succeeded) by batch size."""
        from tasks import ledger, lifecycle
        from tasks.lifecycle import Transition

        rows = []
        with self.app.app_context():
            from app.extensions import db

            engine = db.engine
            for size in sizes:
                jobs = max(256, size * 4)
                new = [ledger.NewJob(ledger.new_job_id(), "bench.sweep", "bench.sweep", "sweep", 0, [], {},
                                     lifecycle.ENQUEUED, 1) for _ in range(jobs)]
                with engine.begin() as conn:
                    ledger.insert_jobs(conn, new)
                ids = [j.id for j in new]
                start = time.perf_counter()
                for state, expected in ((lifecycle.PROCESSING, None),
                                        (lifecycle.SUCCEEDED, frozenset({lifecycle.PROCESSING}))):
                    for part in ledger.chunks(ids, size):
                        at = ledger.utcnow()
                        fields = ({"started_at": at, "worker": "bench", "attempt": 1}
                                  if state == lifecycle.PROCESSING else {"finished_at": at, "result": None})
                        with engine.begin() as conn:
                            ledger.apply(conn, [Transition(i, state, at, "sweep", fields=dict(fields),
                                                           data={"worker": "bench"}, expected=expected)
                                                for i in part])
                elapsed = time.perf_counter() - start
                rows.append({"batch": size, "transitions": 2 * jobs,
                             "us_per_transition": round(elapsed / (2 * jobs) * 1e6, 1),
                             "jobs_per_s_if_writer_bound": round(jobs / elapsed, 1)})
        return rows

    def close(self) -> None:
        with self.app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()


def fault_suite(database_url: str | None, timeout: float = 1800) -> dict:
    """Run the fault suite (``tests/test_faults.py``, both transports) on one database; its lines and
    counts."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL", "CI")}
    if database_url:
        env["TEST_DATABASE_URL"] = database_url
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/test_faults.py", "-q", "-p",
                           "no:cacheprovider", "--require-markers="], cwd=CODE, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = proc.stdout.splitlines()
    scenarios, inside = [], False
    for line in lines:
        if line.startswith("=") and "fault suite" in line:
            inside = True
        elif line.startswith("="):
            inside = False
        elif inside and line.strip():
            scenarios.append(line.strip())
    summary = next((line.strip("= ") for line in reversed(lines)
                    if " passed" in line or " failed" in line), "")
    return {"exit_code": proc.returncode, "summary": summary, "scenarios": scenarios,
            "seconds": round(time.time() - started, 1),
            "failures": [line for line in lines if line.startswith("FAILED")][:20]}


def guarded(step) -> dict | list:
    """Run one profile step; on failure return its error instead of ending the run."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - the engine under test changes often; keep the other figures
        log(f"profile step failed: {type(exc).__name__}: {str(exc)[:500]}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}


def cprofile_top(profiler, jobs: int, top: int = 12) -> dict:
    """Top functions by own time and by cumulative time (project code), in µs per job."""
    import pstats

    stats = pstats.Stats(profiler).stats  # (file, line, func) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in stats.values())

    def label(key) -> str:
        file, line, func = key
        return frame_name(f"{func} ({file}:{line})") if file != "~" else func

    own = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    cumulative = sorted(((k, v) for k, v in stats.items() if "/tasks/" in k[0] or "/app/" in k[0]),
                        key=lambda kv: -kv[1][3])[:top]
    per_job = lambda seconds: round(seconds / jobs * 1e6, 1)  # noqa: E731
    return {
        "profiled_us_per_job": per_job(total),
        "own_top": [{"func": label(k), "calls": v[1], "own_us_per_job": per_job(v[2]),
                     "own_pct": round(100 * v[2] / total, 1)} for k, v in own],
        "cumulative_top_project": [{"func": label(k), "calls": v[1], "cum_us_per_job": per_job(v[3]),
                                    "cum_pct": round(100 * v[3] / total, 1)} for k, v in cumulative],
    }


# -- py-spy output ------------------------------------------------------------------------
def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``func (tasks/file.py)``: project-relative, no line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", str(CODE) + "/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def category(path: str) -> str:
    for prefix, label in (("tasks/", "engine (tasks/)"), ("sqlalchemy/", "SQLAlchemy"),
                          ("redis/", "redis-py"), ("huey/", "huey"), ("flask/", "Flask"),
                          ("werkzeug/", "Flask"), ("psycopg", "psycopg"), ("sqlite3/", "sqlite3"),
                          ("json/", "json"), ("logging/", "logging"), ("threading", "threading"),
                          ("queue", "queue"), ("bench/", "bench")):
        if prefix in path:
            return label
    return "other"


def summarize_flame(path: Path, wall_s: float, top: int = 15) -> dict:
    """Self and inclusive hotspots from py-spy's collapsed stacks (``--gil``: GIL holder only)."""
    if not path.exists():
        return {}
    total = 0
    self_time: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    by_category: dict[str, int] = defaultdict(int)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_time[frames[-1]] += n
        by_category[category(frames[-1])] += n
        for name in set(frames):
            inclusive[name] += n
    pct = lambda v: round(100.0 * v / total, 1) if total else 0.0  # noqa: E731
    interesting = {k: v for k, v in inclusive.items()
                   if ("(tasks/" in k or "(bench/" in k or "sqlalchemy/engine/base" in k
                       or "redis/client" in k or "flask/ctx" in k or "(json/" in k)}
    return {
        "samples": total, "rate_hz": 250,
        "gil_busy_pct_of_wall": round(100.0 * total / (250 * wall_s), 1) if wall_s else None,
        "self_top": [{"frame": k, "pct": pct(v)}
                     for k, v in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]],
        "inclusive_top": [{"frame": k, "pct": pct(v)}
                          for k, v in sorted(interesting.items(), key=lambda kv: -kv[1])[:top + 10]],
        "self_by_library": {k: pct(v) for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])},
    }


def find_py_spy(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("PY_SPY"), shutil.which("py-spy"), str(BIN / "py-spy")):
        if candidate and os.path.exists(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# -- report -------------------------------------------------------------------------------
def mean(values) -> float:
    values = list(values)
    return round(statistics.fmean(values), 1) if values else float("nan")


def summarize_raw(legs: dict) -> dict:
    """Mean of the raw legs run before and after the engine legs of each shape."""
    out = {}
    for shape, runs in legs.items():
        out[f"drain_{shape}_jobs_per_s"] = mean(r["drain"]["jobs_per_s"] for r in runs)
        out[f"drain_{shape}_best_jobs_per_s"] = max(r["drain"]["jobs_per_s"] for r in runs)
        out[f"drain_{shape}_samples"] = [r["drain"]["jobs_per_s"] for r in runs]
    per_call = [r["enqueue_per_call"]["jobs_per_s"] for runs in legs.values() for r in runs]
    out["enqueue_per_call_jobs_per_s"] = mean(per_call)
    out["enqueue_per_call_samples"] = per_call
    return out


def summarize_engine(result: dict) -> dict:
    bulk = [result[f"leg_{shape}"]["enqueue_bulk"]["jobs_per_s"] for shape in ("threads", "processes")]
    return {"drain_threads_jobs_per_s": result["leg_threads"]["drain"]["jobs_per_s"],
            "drain_processes_jobs_per_s": result["leg_processes"]["drain"]["jobs_per_s"],
            "enqueue_per_call_jobs_per_s": result["enqueue_per_call"]["jobs_per_s"],
            "enqueue_bulk_jobs_per_s": mean(bulk), "enqueue_bulk_samples": bulk,
            "pickup_p50_ms": result["pickup"]["p50_ms"], "pickup_p99_ms": result["pickup"]["p99_ms"]}


def build_targets(raw: dict, engines: dict, fleet: dict, faults: dict | None = None) -> list[dict]:
    """One row per target: value, goal, PASS/FAIL (a figure without a target is not listed)."""
    rows = []

    def add(target, backend, value, goal, ok):
        rows.append({"target": target, "backend": backend, "value": value, "goal": goal, "pass": bool(ok)})

    for backend, result in engines.items():
        if "skipped" in result or "summary" not in result:
            continue
        e, goals = result["summary"], TARGETS.get(backend, {})
        for shape in ("threads", "processes"):
            ratio = round(e[f"drain_{shape}_jobs_per_s"] / raw[f"drain_{shape}_jobs_per_s"], 3)
            if f"drain_{shape}_ratio" in goals:
                goal = goals[f"drain_{shape}_ratio"]
                add(f"drain {shape} engine/raw", backend, ratio, f">= {goal}", ratio >= goal)
        ratio = round(e["enqueue_per_call_jobs_per_s"] / raw["enqueue_per_call_jobs_per_s"], 3)
        if "enqueue_ratio" in goals:
            add("enqueue per call engine/raw", backend, ratio, f">= {goals['enqueue_ratio']}",
                ratio >= goals["enqueue_ratio"])
        if "bulk_jobs_per_s" in goals:
            add("bulk enqueue jobs/s", backend, e["enqueue_bulk_jobs_per_s"],
                f">= {goals['bulk_jobs_per_s']:.0f}",
                e["enqueue_bulk_jobs_per_s"] >= goals["bulk_jobs_per_s"])
        for key in ("pickup_p50_ms", "pickup_p99_ms"):
            if key in goals:
                add(key.replace("_", " ").replace(" ms", " ms"), backend, e[key], f"< {goals[key]}",
                    e[key] < goals[key])
    for name, idle in (fleet.get("idle") or {}).items():
        if isinstance(idle, dict) and "pct_of_core" in idle:
            add("idle worker % of a core", name, idle["pct_of_core"], f"<= {TARGETS['idle_cpu_pct']}",
                idle["pct_of_core"] <= TARGETS["idle_cpu_pct"])
    for name, runs in (fleet.get("many_workers") or {}).items():
        if isinstance(runs, list):
            worst = max(r["duplicate_runs"] for r in runs)
            add("duplicate runs, 1/2/4 workers", name, worst, "== 0", worst == TARGETS["duplicate_runs"])
    for database, suite in (faults or {}).items():
        if "exit_code" in suite:
            add("fault suite, both transports", database, suite["summary"], "all pass",
                suite["exit_code"] == 0)
    rss = fleet.get("rss") or {}
    if "rss_mb_max" in rss:
        add(f"worker RSS MB, {rss['jobs']:,} jobs", "sqlite", rss["rss_mb_max"], f"< {TARGETS['rss_mb']:.0f}",
            rss["rss_mb_max"] < TARGETS["rss_mb"])
    return rows


def print_table(result: dict) -> None:
    raw = result["raw"]["summary"]
    engines = result["engine"]
    backends = [b for b in engines if "skipped" not in engines[b]]
    head = f"{'metric':<36}{'raw huey':>11}" + "".join(f"{b:>13}{'ratio':>8}" for b in backends)
    meta = result["meta"]
    lines = ["", f"{meta['jobs']} jobs per drain; threads = 4 thread workers, processes = 2 process workers; "
                 f"1-min load average {meta.get('loadavg_start')} -> {meta.get('loadavg_end')}",
             head, "-" * len(head)]

    def row(label, raw_value, key, fmt="{:.0f}", ratio=True):
        text = f"{label:<36}{(fmt.format(raw_value) if raw_value is not None else '-'):>11}"
        for b in backends:
            value = engines[b]["summary"][key] if key in engines[b]["summary"] else engines[b]["pickup"][key]
            r = f"{value / raw_value:.2f}x" if ratio and raw_value else ""
            text += f"{fmt.format(value):>13}{r:>8}"
        lines.append(text)

    rp = result["raw"]["pickup"]
    row("drain threads jobs/s", raw["drain_threads_jobs_per_s"], "drain_threads_jobs_per_s")
    row("drain processes jobs/s", raw["drain_processes_jobs_per_s"], "drain_processes_jobs_per_s")
    row("enqueue per call jobs/s", raw["enqueue_per_call_jobs_per_s"], "enqueue_per_call_jobs_per_s")
    row("enqueue bulk jobs/s (enqueue_many)", None, "enqueue_bulk_jobs_per_s", ratio=False)
    row("pickup p50 ms (idle worker)", rp["p50_ms"], "pickup_p50_ms", "{:.2f}", ratio=False)
    row("pickup p99 ms", rp["p99_ms"], "pickup_p99_ms", "{:.2f}", ratio=False)
    row("pickup max ms", rp["max_ms"], "max_ms", "{:.2f}", ratio=False)
    row("  of which enqueue call p50 ms", rp["enqueue_call_p50_ms"], "enqueue_call_p50_ms", "{:.2f}",
        ratio=False)
    lines.append("")
    lines.append(f"raw samples (before/after the engine legs): threads {raw['drain_threads_samples']}, "
                 f"processes {raw['drain_processes_samples']}, enqueue {raw['enqueue_per_call_samples']}")
    for b, e in engines.items():
        if "skipped" in e:
            lines.append(f"{b}: skipped ({e['skipped']})")
    fleet = result.get("fleet") or {}
    for name, idle in (fleet.get("idle") or {}).items():
        if "pct_of_core" in idle:
            lines.append(f"idle worker, {name}: {idle['pct_of_core']}% of a core over {idle['seconds']} s")
    for name, runs in (fleet.get("many_workers") or {}).items():
        if isinstance(runs, list):
            lines.append(f"many workers ({name} ledger, Redis, 4 threads each): " + "; ".join(
                f"{r['workers']}: {r['jobs_per_s']:.0f} jobs/s, {r['duplicate_runs']} duplicate runs, "
                f"lock waits {r['lock_waits']}" for r in runs))
    for database, suite in (result.get("fault_suite") or {}).items():
        lines.append(f"fault suite on {database}: {suite.get('summary') or suite.get('error')}")
    rss = fleet.get("rss") or {}
    if "rss_mb_max" in rss:
        lines.append(f"worker RSS while draining {rss['jobs']:,} jobs: max {rss['rss_mb_max']} MB, end "
                     f"{rss['rss_mb_end']} MB, growth after the first 10 % "
                     f"{rss['growth_mb_after_first_10pct']} MB")
    lines.append("")
    lines.append(f"{'target':<34}{'backend':<12}{'value':>10}  {'goal':<9}result")
    for t in result["targets"]:
        lines.append(f"{t['target']:<34}{t['backend']:<12}{t['value']:>10}  {t['goal']:<9}"
                     f"{'PASS' if t['pass'] else 'FAIL'}")
    profile = result.get("profile") or {}
    for backend, p in profile.items():
        if not isinstance(p, dict):
            continue
        lines.append("")
        lines.append(f"== profile, {backend} ledger ({p['jobs']} jobs, threads) ==")
        for step, value in p.items():
            if isinstance(value, dict) and "error" in value:
                lines.append(f"{step}: FAILED {value['error'][:300]}")
        spy = p.get("py_spy") or {}
        if spy.get("self_top"):
            lines.append(f"py-spy --gil ({spy['drain']['jobs_per_s']:.0f} jobs/s under py-spy; GIL held "
                         f"~{spy['gil_busy_pct_of_wall']}% of the drain): own time by library "
                         f"{spy['self_by_library']}")
            for item in spy["inclusive_top"][:14]:
                lines.append(f"  {item['pct']:5.1f}%  {item['frame']}")
        for what_if in ("stock", "async-claim"):
            probe = p.get(f"probe_{what_if}") or {}
            probes = probe.get("probes") or {}
            if probes:
                lines.append(f"probe worker ({what_if}): drain {probe['drain']['jobs_per_s']:.0f} jobs/s; "
                             + "; ".join(
                                 f"{k} {v['calls']}x {v['mean_ms_per_call']} ms"
                                 + (f" ({v['mean_items_per_call']} items, max {v['max_items_per_call']})"
                                    if "mean_items_per_call" in v else "")
                                 for k, v in probes.items()
                                 if k in ("claim_wait", "execute_job", "ledger_batch_total",
                                          "ledger_apply_sql", "ledger_batch_ack", "fetch_lua")))
        stages = p.get("enqueue_bulk_stages") or {}
        if stages.get("stages"):
            lines.append(f"bulk enqueue stages ({stages['total_us_per_job']} us/job, "
                         f"{stages['implied_jobs_per_s']:.0f} jobs/s): " + ", ".join(
                             f"{k} {v['us_per_job']} us ({v['pct']}%)" for k, v in stages["stages"].items()))
        for label, prof in (p.get("enqueue_cprofile") or {}).items():
            if not isinstance(prof, dict) or "cumulative_top_project" not in prof:
                continue
            lines.append(f"enqueue {label} (cProfile, {prof['profiled_us_per_job']} us/job profiled): "
                         + ", ".join(f"{x['func']} {x['cum_pct']}%"
                                     for x in prof["cumulative_top_project"][:7]))
        sweep = p.get("ledger_apply_sweep")
        if isinstance(sweep, list) and sweep:
            lines.append("ledger.apply by batch size: " + ", ".join(
                f"{s['batch']}: {s['us_per_transition']} us" for s in sweep) + " per transition")
        nosync = p.get("what_if_synchronous_commit_off") or {}
        if "drain_threads" in nosync:
            lines.append(f"what if synchronous_commit=off: enqueue per call "
                         f"{nosync['enqueue_per_call']['jobs_per_s']:.0f}/s, bulk "
                         f"{nosync['enqueue_bulk']['jobs_per_s']:.0f}/s, drain threads "
                         f"{nosync['drain_threads']['jobs_per_s']:.0f}/s, pickup p50 "
                         f"{nosync['pickup']['p50_ms']} ms p99 {nosync['pickup']['p99_ms']} ms; apply "
                         + ", ".join(f"{s['batch']}: {s['us_per_transition']} us"
                                     for s in nosync["ledger_apply_sweep"]))
    print("\n".join(lines), flush=True)


def git_commit() -> dict:
    """HEAD and the files of the code under test that differ from it (in the working tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5).stdout

    try:
        dirty = [line[3:] for line in git("status", "--porcelain", "--", *SNAPSHOT_ITEMS).splitlines()
                 if not line[3:].startswith("bench/")]
        return {"head": git("rev-parse", "HEAD").strip() or None, "uncommitted_files": dirty}
    except Exception:  # noqa: BLE001
        return {"head": None}


def snapshot(workdir: Path, source: str) -> Path:
    """Copy the code under test, so that edits to the tree during the run can't mix versions.

    ``source`` is ``head`` (the committed HEAD, via ``git archive``) or ``tree`` (the working
    tree as it is now). ``bench/`` itself always comes from the working tree. Every worker
    and the benchmark's own app run from the copy, migrations included.
    """
    global CODE
    dest = workdir / "src"
    dest.mkdir()
    items = [i for i in SNAPSHOT_ITEMS if i != "bench"]
    if source == "head":
        tracked = set(subprocess.run(["git", "ls-tree", "--name-only", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True, check=True).stdout.split())
        paths = [i for i in items if i in tracked]
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", *paths], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            try:
                tar.extractall(dest, filter="data")
            except TypeError:  # Python < 3.11.4: no extraction filters (our own repository's archive)
                tar.extractall(dest)
        items = []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for item in items + ["bench"]:
        path = ROOT / item
        if path.is_dir():
            shutil.copytree(path, dest / item, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, dest / item)
    CODE = dest
    sys.path.insert(0, str(dest))
    for name in [m for m in sys.modules if m.split(".")[0] in ("app", "tasks", "admin", "wsgi")]:
        del sys.modules[name]  # nothing of the code under test may come from the live tree
    return dest


def main(argv: list[str] | None = None) -> int:
    global PG_ADMIN
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="jobs per drain (default 5000, --quick 1000)")
    parser.add_argument("--quick", action="store_true", help="small run: 1000 jobs, 50 pickup samples")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    parser.add_argument("--samples", type=int, default=None, help="pickup samples (default 200, --quick 50)")
    parser.add_argument("--calls", type=int, default=None,
                        help="engine per-call enqueue sample (default min(jobs, 2000); capped at 8 s)")
    parser.add_argument("--chunk", type=int, default=2000, help="bulk enqueue chunk size (default 2000)")
    parser.add_argument("--backends", default="sqlite,postgresql,embedded",
                        help="ledger backends to run (embedded = SQLite transport and ledger)")
    parser.add_argument("--rss-jobs", type=int, default=None, help="jobs drained for the RSS figure "
                        "(default 100000, --quick 10000; 0 skips it)")
    parser.add_argument("--no-fleet", action="store_true", help="skip idle CPU, many workers and RSS")
    parser.add_argument("--faults", action="store_true",
                        help="also run the fault suite (both transports) on SQLite and PostgreSQL and keep "
                             "its figures in the JSON (about 10 minutes)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiling section")
    parser.add_argument("--profile-jobs", type=int, default=None,
                        help="jobs per profile drain (default jobs/4)")
    parser.add_argument("--py-spy", default=None, help="path to py-spy (default: PATH, next to python)")
    parser.add_argument("--pg-dsn", default=PG_ADMIN,
                        help=f"libpq DSN of the PostgreSQL maintenance database (default {PG_ADMIN!r})")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, py-spy output)")
    parser.add_argument("--code", choices=("head", "tree", "live"), default="head",
                        help="code under test: a copy of the committed HEAD (default), a copy of the "
                             "working tree taken at start, or the live tree (bench/ always comes from "
                             "the working tree)")
    args = parser.parse_args(argv)
    PG_ADMIN = args.pg_dsn
    n = args.jobs or (1000 if args.quick else 5000)
    samples = args.samples or (50 if args.quick else 200)
    calls = args.calls or min(n, 2000)
    profile_n = args.profile_jobs or max(500, n // 4)
    warmup = 5
    timeout = max(180.0, n / 20.0)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    code = git_commit()
    code["source"] = args.code
    if args.code != "live":
        snapshot(workdir, args.code)
    redis = RedisServer(workdir)
    pg_name = None
    sides: dict[str, EngineSide] = {}
    result: dict = {
        "meta": {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "jobs": n,
                 "quick": args.quick, "pickup_samples": samples, "engine_per_call_calls": calls,
                 "bulk_chunk": args.chunk, "profile_jobs": profile_n, "poll_s": POLL,
                 "python": platform.python_version(), "cpus": os.cpu_count(), "host": platform.node(),
                 "code": code, "redis": redis.version,
                 "loadavg_start": round(os.getloadavg()[0], 2),
                 "raw_huey": "RedisHuey, pickle, results=False; the task counts completions (1 pipelined "
                             "round trip: SETNX first start + INCR)",
                 "shapes": {"threads": "raw -w 4 -k thread | engine jobs worker -c 4",
                            "processes": "raw -w 2 -k process | engine jobs worker -c 2 --processes"},
                 "order": "per shape: raw, engine on each ledger, raw again (raw figure = mean of the two)"},
        "targets_spec": TARGETS,
    }
    try:
        import huey

        result["meta"]["huey"] = huey.__version__
        log(f"redis-server {redis.version} on port {redis.port}; {n} jobs per drain; workdir {workdir}")
        raw = RawSide(redis, workdir)
        engines: dict = {}
        for index, backend in enumerate(backends, start=1):
            if backend in ("sqlite", "embedded"):
                url = f"sqlite:///{workdir / f'ledger-{backend}.db'}"
            elif backend == "postgresql":
                pg_name, url, reason = pg_create()
                if url is None:
                    log(f"skipping PostgreSQL: {reason}")
                    engines[backend] = {"skipped": reason}
                    continue
                result["meta"]["postgresql"] = pg_settings()
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            side = sides[backend] = EngineSide("sqlite" if backend == "embedded" else backend, url, redis,
                                               index, workdir, pg_name if backend == "postgresql" else None,
                                               transport="sqlite" if backend == "embedded" else "redis")
            per_call = side.enqueue_per_call(calls)
            engines[backend] = {"enqueue_per_call": per_call}
            log(f"engine {backend}: enqueue per call {per_call['jobs_per_s']:.0f}/s")

        raw_legs: dict[str, list] = {}
        for shape in ("threads", "processes"):
            raw_legs[shape] = [raw.leg(shape, n, timeout)]
            for backend, side in sides.items():
                engines[backend][f"leg_{shape}"] = side.leg(shape, n, args.chunk, timeout)
            raw_legs[shape].append(raw.leg(shape, n, timeout))
        raw_pickup = raw.pickup(samples, warmup)
        log(f"raw pickup p50 {raw_pickup['p50_ms']} ms, p99 {raw_pickup['p99_ms']} ms")
        for backend, side in sides.items():
            engines[backend]["pickup"] = side.pickup(samples, warmup)
            engines[backend]["summary"] = summarize_engine(engines[backend])
        fleet: dict = {}
        if not args.no_fleet:
            from bench import fleet as fleet_bench

            fleet["idle"] = {name: guarded(lambda: fleet_bench.idle_cpu(side))
                             for name, side in sides.items()}
            fleet["many_workers"] = {name: guarded(lambda: fleet_bench.many_workers(side, n))
                                     for name, side in sides.items() if name != "embedded"}
            rss_jobs = args.rss_jobs if args.rss_jobs is not None else (10_000 if args.quick else 100_000)
            if rss_jobs and "sqlite" in sides:
                fleet["rss"] = guarded(lambda: fleet_bench.rss_after(sides["sqlite"], rss_jobs))
            log(f"fleet: {json.dumps(fleet)[:600]}")
        result["fleet"] = fleet
        if args.faults:
            pg_url = pg_maintenance_url() if "postgresql" in sides else None
            result["fault_suite"] = {"sqlite": guarded(lambda: fault_suite(None))}
            if pg_url:
                result["fault_suite"]["postgresql"] = guarded(lambda: fault_suite(pg_url))
            log(f"fault suite: {({k: v.get('summary') for k, v in result['fault_suite'].items()})}")
        result["meta"]["loadavg_end"] = round(os.getloadavg()[0], 2)
        result["raw"] = {"legs": raw_legs, "pickup": raw_pickup, "summary": summarize_raw(raw_legs)}
        result["engine"] = engines
        result["targets"] = build_targets(result["raw"]["summary"], engines, fleet, result.get("fault_suite"))

        if not args.no_profile:
            py_spy = find_py_spy(args.py_spy)
            result["profile"] = {"py_spy_path": py_spy}
            if not py_spy:
                result["profile"]["note"] = "py-spy not found (pip install py-spy): probes and sweeps only"
            for backend, side in sides.items():
                if backend != "embedded":
                    result["profile"][backend] = side.profile(profile_n, args.chunk, calls, timeout, py_spy)
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for side in sides.values():
            try:
                side.close()
            except Exception:  # noqa: BLE001
                pass
        for child in list(CHILDREN):
            if child is not redis.child:
                child.stop(5)
        if pg_name:
            pg_drop(pg_name)
        redis.stop()
        result["meta"]["elapsed_s"] = round(time.time() - started, 1)
        if args.keep:
            result["meta"]["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        log(f"wrote {out} ({result['meta']['elapsed_s']} s)")
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
