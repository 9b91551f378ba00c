"""Fault suite: real worker processes, real signals, a transport we kill, flush or delete.

Every scenario runs on both transports (Redis, and the embedded SQLite one) and prints
one line through ``fault_report``: enqueued / succeeded / lost / run more than once, plus
whatever figure it measured. Waits are on evidence (ledger rows, the jobs' own files),
never on a clock.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest
import redis
from sqlalchemy import func, select, text, update

from app.extensions import db
from tasks import enqueue_many, lifecycle
from tasks.ledger import Job
from tasks.queries import history
from tests.helpers.faults import DatabaseOutage, completed_runs, lines, running_on, starts
from tests.helpers.ledger import insert_raw, job_state, load_job, transport_of
from tests.jobs import gate, tally
from tests.workers import wait_for

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(600)]

FAST_RECOVERY = {"JOBS_DEAD_AFTER": "2", "JOBS_RECONCILE_INTERVAL": "2", "JOBS_RECONCILE_GRACE": "2"}


@pytest.fixture(params=["redis", "sqlite"])
def fault_config(request, app_config):
    """Fast recovery settings, on Redis and on the embedded SQLite transport."""
    app_config.update(FAST_RECOVERY)
    if request.param == "sqlite":
        app_config["REDIS_URL"] = None
    return app_config


def transport_name(app) -> str:
    return "redis" if app.config.get("REDIS_URL") else "sqlite"


def counts_by_state(app, ids: list[str]) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(Job.state, func.count()).where(Job.id.in_(ids)).group_by(Job.state))
        return dict(rows.all())


def all_succeeded(app, ids: list[str]) -> bool:
    return counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) == len(ids)


def report(app, scenario: str, ids: list[str], fault_report, **figures) -> dict:
    runs = completed_runs(app)
    line = {"enqueued": len(ids), "succeeded": counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0),
            "lost": sum(1 for i in ids if runs.get(i, 0) == 0),
            "run more than once": sum(1 for i in ids if runs.get(i, 0) > 1), **figures}
    fault_report(f"[{transport_name(app)}] {scenario}: " + " / ".join(f"{k} {v}" for k, v in line.items()))
    return line


def enqueue_tallies(app, count: int, seconds: float) -> list[str]:
    with app.app_context():
        return enqueue_many(tally, [((seconds,), {})] * count)


def worker_running(app, job_id: str, workers: list):
    """The one of ``workers`` the ledger names as running ``job_id`` (None until it does)."""
    holder = load_job(app, job_id).worker or ""
    return next((worker for worker in workers if f":{worker.pid}:" in holder), None)


def test_kill_9_repeatedly_under_load_loses_nothing(fault_config, app, start_worker, fault_report):
    ids = enqueue_tallies(app, 300, 0.05)
    workers = [start_worker(concurrency=4), start_worker(concurrency=4)]
    interrupted: list[str] = []
    gates = []
    for kill in range(4):
        # evidence, not a clock: a gate job (it runs until the test opens it) is running on the victim
        with app.app_context():
            gates += enqueue_many(gate, [((f"kill-{kill}",), {})], priority=10)
        wait_for(lambda: gates[-1] in lines(app, f"kill-{kill}.started"), timeout=60,
                 message="the gate job running")
        victim = wait_for(lambda: worker_running(app, gates[-1], workers), message="the gate job's worker")
        workers.remove(victim)
        running = running_on(app, victim.pid)
        victim.kill()  # kill -9 of the whole worker process group, mid-job
        assert not lines(app, f"kill-{kill}.done"), "the gate job finished before the kill"
        interrupted += [job_id for job_id in running if not completed_runs(app).get(job_id)]
        workers.append(start_worker(concurrency=4))
    for kill in range(4):
        open(os.path.join(app.instance_path, f"kill-{kill}.open"), "w").close()
    wait_for(lambda: all_succeeded(app, ids + gates), timeout=120,
             message="every job Succeeded after kill -9s")
    line = report(app, "kill -9 ×4 under load", ids, fault_report,
                  **{"kills that hit a running job": len(gates), "tally runs interrupted": len(interrupted)})
    assert line["lost"] == 0 and line["succeeded"] == 300
    assert all(completed_runs(app)[job_id] >= 1 for job_id in interrupted)
    # each gate ran at least twice (killed, then again) and finished once
    for kill, job_id in enumerate(gates):
        assert lines(app, f"kill-{kill}.started").count(job_id) >= 2
        assert lines(app, f"kill-{kill}.done") == [job_id]


def test_recovery_after_kill_9(fault_config, app, start_worker, fault_report):
    with app.app_context():
        job_id = gate.enqueue("recovery")  # runs until the test opens its gate: the kill surely hits it
    victim = start_worker(concurrency=1)
    wait_for(lambda: lines(app, "recovery.started") == [job_id], message="the job running on the victim")
    rescuer = start_worker(concurrency=1)
    wait_for(lambda: len(transport_of(app).workers()) == 2, message="the rescuer beating")
    victim.kill()
    killed = time.monotonic()
    try:
        wait_for(lambda: redelivered(app, job_id), timeout=120, message="the lost job re-enqueued")
    except AssertionError as missing:  # keep what the rescuer said, to see why
        raise AssertionError(f"{missing}; rescuer's log:\n{rescuer.output()[-3000:]}") from None
    recovered_after = time.monotonic() - killed
    open(os.path.join(app.instance_path, "recovery.open"), "w").close()
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=60, message="run again")
    assert lines(app, "recovery.started") == [job_id, job_id] and lines(app, "recovery.done") == [job_id]
    with app.app_context():
        job = db.session.get(Job, job_id)
        # retries=0: a lost worker costs no attempt
        assert job.attempt == 2 and f":{rescuer.pid}:" in job.worker
    fault_report(f"[{transport_name(app)}] recovery after kill -9 (dead after 2 s): the interrupted job was "
                 f"re-enqueued after {recovered_after:.1f} s and succeeded on the rescuer")
    assert rescuer.alive()


def redelivered(app, job_id) -> bool:
    with app.app_context():
        return any("lost" in h.reason for h in history(job_id))


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_sigterm_lets_running_jobs_finish(fault_config, app, start_worker, processes, fault_report):
    ids = enqueue_tallies(app, 2, 2.0)
    worker = start_worker(concurrency=2, processes=processes)
    wait_for(lambda: len(starts(app)) == 2, message="both jobs running")
    worker.signal(signal.SIGTERM)
    worker.process.wait(30)
    assert all_succeeded(app, ids), counts_by_state(app, ids)
    report(app, f"SIGTERM mid-job ({'processes' if processes else 'threads'}), finished", ids, fault_report)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_sigterm_past_the_grace_period_hands_jobs_back(fault_config, app, start_worker, processes,
                                                       fault_report):
    ids = enqueue_tallies(app, 2, 6.0)
    worker = start_worker(concurrency=2, processes=processes, JOBS_SHUTDOWN_GRACE="1")
    wait_for(lambda: len(starts(app)) == 2, message="both jobs running")
    worker.signal(signal.SIGTERM)
    worker.process.wait(60)  # a slow machine may need the whole shutdown write budget
    assert counts_by_state(app, ids) == {lifecycle.ENQUEUED: 2}, worker.output()[-4000:]
    assert transport_of(app).holds(ids) == set(ids)
    start_worker(concurrency=2)
    wait_for(lambda: all_succeeded(app, ids), timeout=30)
    report(app, f"SIGTERM past grace ({'processes' if processes else 'threads'}), handed back", ids,
           fault_report)


def lose_transport(app, redis_server, fault: str) -> None:
    """Make the transport forget everything: Redis restarted or flushed, the SQLite tables dropped."""
    if transport_name(app) == "redis":
        if fault == "restart":
            redis_server.stop(kill=True)
            redis_server.start()  # no persistence: every queue, schedule and payload is gone
        else:
            redis.Redis.from_url(redis_server.url).flushall()
        return
    conn = sqlite3.connect(transport_of(app).filename, timeout=30, isolation_level=None)
    if fault == "restart":
        conn.execute("delete from job_messages")
        conn.execute("delete from job_workers")
    else:
        conn.execute("drop table job_messages")  # the transport creates it again when it misses it
    conn.close()


@pytest.mark.parametrize("fault", ["restart", "flushall"])
def test_transport_loss_mid_run_is_repaired_by_the_reconciler(fault_config, app, start_worker, redis_server,
                                                              fault, fault_report):
    ids = enqueue_tallies(app, 200, 0.01)
    with app.app_context():
        later = [tally.schedule(args=(0.01,), delay=2) for _ in range(20)]
    start_worker(concurrency=4)
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) >= 20, message="some progress")
    lose_transport(app, redis_server, fault)
    wait_for(lambda: all_succeeded(app, ids + later), timeout=90, message="reconciler re-dispatched")
    name = {"restart": "restart (everything lost)", "flushall": "FLUSHALL / message table dropped"}[fault]
    line = report(app, f"transport {name} mid-run", ids + later, fault_report)
    assert line["succeeded"] == len(ids + later) and line["lost"] == 0


def test_database_unavailable_then_resumes(fault_config, app, start_worker, fault_report):
    ids = enqueue_tallies(app, 200, 0.2)  # about 10 s of work: plenty is left when the outage begins
    worker = start_worker(concurrency=4)
    wait_for(lambda: counts_by_state(app, ids).get(lifecycle.SUCCEEDED, 0) >= 10, message="some progress")
    with app.app_context():
        outage = DatabaseOutage(db.engine)
    outage.begin()
    try:
        # evidence that the worker met the outage, instead of a fixed wait
        wait_for(lambda: "ledger write failed" in worker.output(), timeout=90,
                 message="the worker to see the outage")
    finally:
        outage.end()
    wait_for(lambda: all_succeeded(app, ids), timeout=120, message="resumed after the outage")
    assert worker.alive()
    line = report(app, "database unavailable", ids, fault_report)
    assert line["lost"] == 0


def test_poison_messages_fail_and_the_worker_lives(fault_config, app, start_worker, fault_report):
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
        reasons = {j.id: j.exception_message
                   for j in db.session.scalars(select(Job).where(Job.id.in_(orphan)))}
    assert all("dead letter" in r for r in reasons.values())
    assert worker.alive()
    report(app, "poison messages (15 sent, 15 Failed with a reason, worker alive)", good, fault_report)


def test_poison_rows_and_messages_never_stop_recovery(fault_config, app, start_worker, redis_server,
                                                      fault_report):
    """Corrupt ledger rows and undecodable messages among good jobs, then the transport loses everything."""
    good = enqueue_tallies(app, 30, 0.0)
    corrupt = enqueue_tallies(app, 3, 0.0)
    unsendable = enqueue_tallies(app, 3, 0.0)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(update(Job).where(Job.id.in_(corrupt)).values(args="[0.0, not json"))
            conn.execute(update(Job).where(Job.id.in_(unsendable)).values(args='["\\ud800"]'))
    lose_transport(app, redis_server, "flushall")
    undecodable = [insert_raw(app, "demo.noop", payload=b"\xff not json") for _ in range(3)]
    worker = start_worker(concurrency=2)
    bad = corrupt + unsendable + undecodable
    wait_for(lambda: all_succeeded(app, good), timeout=90, message="every good job re-dispatched and run")
    wait_for(lambda: counts_by_state(app, bad).get(lifecycle.FAILED, 0) == len(bad), timeout=60,
             message="every bad one Failed")
    with app.app_context():
        reasons = {j.id: j.exception_message or ""
                   for j in db.session.scalars(select(Job).where(Job.id.in_(bad)))}
    assert all("not valid JSON" in reasons[i] for i in corrupt)
    assert all("can't be sent" in reasons[i] for i in unsendable)
    assert all("undecodable" in reasons[i] for i in undecodable)
    line = report(app, "poison rows + messages after transport loss", good, fault_report,
                  **{"bad Failed with a reason": len(bad)})
    assert line["run more than once"] == 0 and line["lost"] == 0
    assert worker.alive()


def test_leader_lease_moves_to_a_live_worker_when_the_leader_dies(fault_config, app, start_worker,
                                                                  fault_report):
    from tasks.recovery import LEADER_ROLE

    transport = transport_of(app)
    first = start_worker(concurrency=1)
    leader = wait_for(lambda: transport.holder(LEADER_ROLE), message="a leader")
    assert f":{first.pid}:" in leader
    second = start_worker(concurrency=1)
    wait_for(lambda: any(f":{second.pid}:" in w["id"] for w in transport.workers()),
             message="the second worker")
    assert transport.holder(LEADER_ROLE) == leader  # a live leader keeps its lease
    first.kill()
    killed = time.monotonic()
    wait_for(lambda: f":{second.pid}:" in (transport.holder(LEADER_ROLE) or ""), timeout=60,
             message="the lease handed over")
    fault_report(f"[{transport_name(app)}] leader killed: lease taken over after "
                 f"{time.monotonic() - killed:.1f} s (lease 2 × JOBS_DEAD_AFTER)")
