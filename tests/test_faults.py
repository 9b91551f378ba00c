"""Fault suite: real worker processes, real signals, a real redis-server that we kill and flush.

Each scenario prints one line: enqueued / succeeded / lost / run more than once.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
import redis
from sqlalchemy import func, select, text

from app.extensions import db
from tasks import enqueue_many, lifecycle
from tasks.ledger import Job
from tests.helpers.ledger import insert_raw, job_state
from tests.jobs import tally
from tests.workers import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(600)]

FAST_RECOVERY = {"JOBS_DEAD_AFTER": "2", "JOBS_RECONCILE_INTERVAL": "2", "JOBS_RECONCILE_GRACE": "2"}


@pytest.fixture
def fault_config(app_config):
    app_config.update({k: v for k, v in FAST_RECOVERY.items()})
    return app_config


def counts_by_state(app, ids: list[str]) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return dict(rows.all())


def all_succeeded(app, ids: list[str]) -> bool:
    return counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) == len(ids)


def completed_runs(app) -> Counter:
    """How many times each job id ran to completion (from the tally file)."""
    path = os.path.join(app.instance_path, "tally.log")
    if not os.path.exists(path):
        return Counter()
    with open(path) as fh:
        return Counter(line.strip() for line in fh if line.strip())


def report(app, redis_url: str, scenario: str, ids: list[str], fault_report) -> dict:
    runs = completed_runs(app)
    succeeded = counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0)
    line = {"enqueued": len(ids), "succeeded": succeeded, "lost": sum(1 for i in ids if runs.get(i, 0) == 0),
            "run more than once": sum(1 for i in ids if runs.get(i, 0) > 1)}
    fault_report(f"{scenario}: " + " / ".join(f"{k} {v}" for k, v in line.items()))
    return line


def enqueue_tallies(app, count: int, seconds: float) -> list[str]:
    with app.app_context():
        return enqueue_many(tally, [((seconds,), {})] * count)


def test_kill_9_repeatedly_under_load_loses_nothing(fault_config, app, start_worker, redis_server, fault_report):
    ids = enqueue_tallies(app, 300, 0.02)
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]
    for round_ in range(4):
        time.sleep(1.5)
        victim = workers.pop(0)
        victim.kill()  # kill -9 of the whole worker process group, mid-job
        workers.append(start_worker(concurrency=4))
    wait_for(lambda: all_succeeded(app, ids), timeout=90, message="every job Succeeded after kill -9s")
    line = report(app, redis_server.url, "kill -9 ×4 under load", ids, fault_report)
    assert line["lost"] == 0 and line["succeeded"] == 300


def test_recovery_time_after_kill_9(fault_config, app, start_worker, redis_server, fault_report):
    ids = enqueue_tallies(app, 1, 3.0)
    victim = start_worker(concurrency=1)
    wait_for(lambda: job_state(app, ids[0]) == lifecycle.PROCESSING, message="job started")
    rescuer = start_worker(concurrency=1)
    time.sleep(1.0)  # the rescuer is up and beating
    victim.kill()
    killed = time.monotonic()
    wait_for(lambda: job_state(app, ids[0]) in (lifecycle.ENQUEUED, lifecycle.PROCESSING)
             and "lost" in (last_reason(app, ids[0]) or "") or job_state(app, ids[0]) == lifecycle.SUCCEEDED
             or redelivered(app, ids[0]), timeout=15, message="recovery")
    recovered_after = time.monotonic() - killed
    wait_for(lambda: all_succeeded(app, ids), timeout=20)
    fault_report(f"recovery after kill -9 (dead after 2 s): re-enqueued in {recovered_after:.1f} s")
    assert recovered_after < 10
    assert rescuer.alive()


def last_reason(app, job_id):
    with app.app_context():
        return db.session.get(Job, job_id).state_reason


def redelivered(app, job_id) -> bool:
    from tasks.queries import history

    with app.app_context():
        return any("lost" in h.reason for h in history(job_id))


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_sigterm_lets_running_jobs_finish(fault_config, app, start_worker, redis_server, processes, fault_report):
    ids = enqueue_tallies(app, 2, 2.0)
    worker = start_worker(concurrency=2, processes=processes)
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.PROCESSING) == 2, message="both jobs running")
    worker.signal(signal.SIGTERM)
    worker.process.wait(30)
    assert all_succeeded(app, ids), counts_by_state(app, ids)
    report(app, redis_server.url, f"SIGTERM mid-job ({'processes' if processes else 'threads'}), finished", ids,
           fault_report)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_sigterm_past_the_grace_period_hands_jobs_back(fault_config, app, start_worker, redis_server, processes,
                                                      fault_report):
    ids = enqueue_tallies(app, 2, 6.0)
    worker = start_worker(concurrency=2, processes=processes, JOBS_SHUTDOWN_GRACE="1")
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.PROCESSING) == 2, message="both jobs running")
    worker.signal(signal.SIGTERM)
    worker.process.wait(20)
    assert counts_by_state(app, ids) == {lifecycle.ENQUEUED: 2}
    assert app.extensions["jobs"].transport.holds(ids) == set(ids)
    start_worker(concurrency=2)
    wait_for(lambda: all_succeeded(app, ids), timeout=30)
    report(app, redis_server.url, f"SIGTERM past grace ({'processes' if processes else 'threads'}), handed back",
           ids, fault_report)


@pytest.mark.parametrize("fault", ["restart", "flushall"])
def test_redis_loss_mid_run_is_repaired_by_the_reconciler(fault_config, app, start_worker, redis_server, fault,
                                                          fault_report):
    ids = enqueue_tallies(app, 200, 0.01)
    later = []
    with app.app_context():
        later = [tally.schedule(args=(0.01,), delay=2) for _ in range(20)]
    start_worker(concurrency=4)
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) >= 20, message="some progress")
    if fault == "restart":
        redis_server.stop(kill=True)
        redis_server.start()  # no persistence: every queue, schedule and payload is gone
    else:
        redis.Redis.from_url(redis_server.url).flushall()
    wait_for(lambda: all_succeeded(app, ids + later), timeout=60, message="reconciler re-dispatched")
    line = report(app, redis_server.url, f"Redis {fault} mid-run", ids + later, fault_report)
    assert line["succeeded"] == len(ids + later)


def test_database_unavailable_for_30s_then_resumes(fault_config, app, start_worker, redis_server, fault_report):
    ids = enqueue_tallies(app, 150, 0.05)
    worker = start_worker(concurrency=4)
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) >= 10, message="some progress")
    with app.app_context():
        outage = DatabaseOutage(db.engine)
    outage.begin()
    time.sleep(30)
    outage.end()
    wait_for(lambda: all_succeeded(app, ids), timeout=60, message="resumed after the outage")
    assert worker.alive()
    line = report(app, redis_server.url, "database unavailable 30 s", ids, fault_report)
    assert line["lost"] == 0


class DatabaseOutage:
    """Make the test database refuse work: PostgreSQL refuses connections, SQLite is locked."""

    def __init__(self, engine):
        self.engine = engine
        self.holder = None

    def begin(self) -> None:
        if self.engine.dialect.name == "postgresql":
            name = self.engine.url.database
            with self.admin() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        else:
            import sqlite3

            self.holder = sqlite3.connect(self.engine.url.database, isolation_level=None, check_same_thread=False)
            self.holder.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.engine.dialect.name == "postgresql":
            with self.admin() as conn:
                conn.execute(text(f'ALTER DATABASE "{self.engine.url.database}" WITH ALLOW_CONNECTIONS true'))
            self.engine.dispose()
        else:
            self.holder.execute("ROLLBACK")
            self.holder.close()

    def admin(self):
        from sqlalchemy import create_engine

        url = self.engine.url.set(database="postgres")
        return create_engine(url, isolation_level="AUTOCOMMIT").connect()


def test_poison_messages_fail_and_the_worker_lives(fault_config, app, start_worker, redis_server, fault_report):
    good = enqueue_tallies(app, 50, 0.0)
    undecodable = [insert_raw(app, "demo.noop", payload=b"\xff\xfe garbage") for _ in range(5)]
    unknown = [insert_raw(app, "nobody.knows") for _ in range(5)]
    orphan = []
    for _ in range(5):  # a message whose ledger row is missing
        job_id = insert_raw(app, "demo.noop")
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("DELETE FROM job_states WHERE job_id = :i"), {"i": job_id})
                conn.execute(text("DELETE FROM jobs WHERE id = :i"), {"i": job_id})
        orphan.append(job_id)
    worker = start_worker(concurrency=2)
    wait_for(lambda: all_succeeded(app, good), timeout=30)
    poison = undecodable + unknown + orphan
    wait_for(lambda: counts_by_state(app, poison).get(lifecycle.FAILED, 0) == 15, timeout=30,
             message="poison recorded as Failed")
    with app.app_context():
        reasons = {j.id: j.exception_message for j in db.session.scalars(select(Job).where(Job.id.in_(orphan)))}
    assert all("dead letter" in r for r in reasons.values())
    assert worker.alive()
    fault_report(f"poison messages: 15 sent / 15 Failed with a reason / worker alive; "
                 f"{len(good)} good jobs succeeded")


def test_a_job_without_retries_still_runs_again_after_its_worker_dies(fault_config, app, start_worker,
                                                                       fault_report):
    from tests.jobs import nap

    with app.app_context():
        job_id = nap.enqueue(3.0)  # retries=0: a lost worker must not cost it its run
    victim = start_worker(concurrency=1)
    wait_for(lambda: job_state(app, job_id) == lifecycle.PROCESSING, message="job started")
    start_worker(concurrency=1)
    victim.kill()
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=30, message="re-run after the loss")
    with app.app_context():
        assert db.session.get(Job, job_id).attempt == 2
    fault_report("kill -9 of a job with retries=0: run again, Succeeded on attempt 2")
