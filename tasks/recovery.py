"""Recovery and upkeep: nothing in the ledger is lost because the transport forgot it.

Run by every worker's scheduler thread (``Maintenance.tick``):

* **due jobs** — the transport moves due scheduled jobs atomically; we record it;
* **dead workers** — a worker whose heartbeat is older than ``JOBS_DEAD_AFTER``
  seconds is claimed by one live worker, which re-enqueues its in-flight jobs
  (same id, next attempt); long jobs on live workers are never touched, because
  leases follow heartbeats, not a fixed timeout;
* **reconciler** (one leader at a time) — jobs the ledger says are Enqueued,
  Scheduled or Processing that the transport no longer holds (Redis restarted
  without persistence, FLUSHALL, failover, a crash between commit and push) are
  dispatched again from the ledger;
* **janitor** (one leader at a time) — Succeeded and Deleted jobs older than the
  retention period are deleted in small batches; counters are compacted.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from sqlalchemy import delete, select

from app.extensions import db, write_transaction
from tasks import continuations, idempotency, ledger, lifecycle, recurring, unique
from tasks.codec import Delivery
from tasks.engine import outgoing
from tasks.ledger import jobs_table, states_table
from tasks.lifecycle import Transition
from tasks.writer import Pending

log = logging.getLogger("tasks.recovery")

LEADER_ROLE = "maintenance"  # one worker at a time reconciles and cleans


def record_due(runtime, job_ids: list[str]) -> None:
    """Record Scheduled → Enqueued for jobs the transport moved to their queues."""
    at = ledger.utcnow()
    for job_id in job_ids:
        runtime.writer.submit(Pending(Transition(job_id, lifecycle.ENQUEUED, at, "Due", fields={"enqueued_at": at},
                                                 expected=frozenset({lifecycle.SCHEDULED}))))


def recover_dead_workers(runtime) -> list[str]:
    """Re-enqueue the in-flight jobs of workers that stopped beating; returns the job ids."""
    transport, settings = runtime.transport, runtime.engine.settings
    dead = transport.claim_dead(settings.dead_after)
    live = {w["id"] for w in transport.workers()} | {runtime.worker_id}
    dead += [w for w in transport.orphaned_inflight(live) if w not in dead]
    recovered: list[str] = []
    at = ledger.utcnow()
    for worker_id in dead:
        moved = transport.hand_back(worker_id, None, lost=True)
        if moved:
            log.warning("worker %s is dead; re-enqueued %d job(s)", worker_id, len(moved))
        for job_id in moved:
            runtime.writer.submit(Pending(Transition(
                job_id, lifecycle.ENQUEUED, at, f"Worker {worker_id} lost; re-enqueued",
                expected=frozenset({lifecycle.PROCESSING}), expected_worker=worker_id,
                fields={"enqueued_at": at}, data={"lost_worker": worker_id})))
        recovered += moved
    return recovered


def redelivery(row) -> Delivery:
    """The message to send again for a ledger row the transport lost."""
    if row.state == lifecycle.SCHEDULED:
        attempt, eta = row.attempt + 1, ledger.to_epoch(row.scheduled_for)
    elif row.state == lifecycle.PROCESSING:
        attempt, eta = row.attempt + 1, None
    else:
        attempt, eta = max(1, row.attempt), None
    return Delivery(row.id, row.task, row.queue, row.priority, json.loads(row.args), json.loads(row.kwargs),
                    attempt, max(row.max_attempts, attempt), eta, time.time())


def reconcile(runtime, batch: int = 500) -> list[str]:
    """Dispatch again every live ledger job the transport no longer holds; returns their ids."""
    transport, settings = runtime.transport, runtime.engine.settings
    cutoff = ledger.utcnow() - timedelta(seconds=settings.reconcile_grace)
    live_workers = {w["id"] for w in transport.workers()}
    c = jobs_table.c
    query = (select(c.id, c.task, c.queue, c.priority, c.args, c.kwargs, c.state, c.attempt, c.max_attempts,
                    c.scheduled_for, c.worker)
             .where(c.state.in_(lifecycle.LIVE_STATES), c.state_changed_at < cutoff).order_by(c.id).limit(batch))
    dispatched: list[str] = []
    with write_transaction() as conn:
        released = continuations.resolve(conn, continuations.stranded(conn))
    runtime.engine.dispatch(released)
    after = ""
    while True:
        with db.engine.connect() as conn:
            rows = list(conn.execute(query.where(c.id > after)))
        if not rows:
            return dispatched
        after = rows[-1].id
        held = transport.holds([r.id for r in rows])
        lost = [r for r in rows if r.id not in held
                and not (r.state == lifecycle.PROCESSING and r.worker in live_workers)]
        if lost:
            resend(runtime, lost)
            dispatched += [r.id for r in lost]


def resend(runtime, rows) -> None:
    """Record and push again jobs the transport lost."""
    at = ledger.utcnow()
    lost_processing = [r for r in rows if r.state == lifecycle.PROCESSING]
    with write_transaction() as conn:
        ledger.apply(conn, [Transition(r.id, lifecycle.ENQUEUED, at,
                                       f"Reconciler: transport lost the job (worker {r.worker} gone)",
                                       expected=frozenset({lifecycle.PROCESSING}), expected_worker=r.worker,
                                       fields={"enqueued_at": at}, data={"lost_worker": r.worker})
                            for r in lost_processing])
    runtime.transport.push([outgoing(redelivery(r)) for r in rows])
    log.warning("reconciler re-dispatched %d job(s) the transport had lost", len(rows))


def expire_finished(retention: timedelta, batch: int = 1000, budget: float = 2.0) -> int:
    """Delete Succeeded/Deleted jobs older than ``retention`` in batches, for at most ``budget`` s."""
    cutoff = ledger.utcnow() - retention
    deadline = time.monotonic() + budget
    removed = 0
    c = jobs_table.c
    for state in sorted(lifecycle.EXPIRING_STATES):
        while time.monotonic() < deadline:
            with write_transaction() as conn:
                ids = [r.id for r in conn.execute(select(c.id).where(c.state == state, c.state_changed_at < cutoff)
                                                  .limit(batch))]
                if not ids:
                    break
                conn.execute(delete(states_table).where(states_table.c.job_id.in_(ids)))
                gone = conn.execute(delete(jobs_table).where(c.id.in_(ids), c.state == state)).rowcount
                ledger.add_counts(conn, {state: -gone})
                removed += gone
            if len(ids) < batch:
                break
    return removed


class Maintenance:
    """Periodic duties of a worker's scheduler thread, each on its own interval."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.settings = runtime.engine.settings
        self.next_run: dict[str, float] = {}

    def due(self, duty: str, interval: float) -> bool:
        """True when ``duty`` should run now (and schedules its next run)."""
        now = time.monotonic()
        if now < self.next_run.get(duty, 0):
            return False
        self.next_run[duty] = now + interval
        return True

    def leads(self) -> bool:
        """Take or renew the maintenance lease; True while this worker is the leader.

        Renewed every tick with a lease of twice the dead-worker threshold, so a
        dead leader is replaced about as fast as a dead worker is recovered.
        """
        return self.runtime.transport.lead(LEADER_ROLE, self.runtime.worker_id, 2 * self.settings.dead_after)

    def tick(self) -> None:
        """Run whatever is due; each duty's failure is logged, never raised."""
        runtime = self.runtime
        with runtime.app.app_context():
            self.guard("due jobs", lambda: record_due(runtime, runtime.transport.move_due()))
            if self.due("recover", 1.0):
                self.guard("recovery", lambda: recover_dead_workers(runtime))
            leader = self.guard("leader lease", self.leads)
            if leader and self.due("recurring sync", 300.0):
                self.guard("recurring sync", recurring.sync)
            if leader:
                self.guard("recurring jobs", recurring.run_due)
            if leader and self.due("reconcile", self.settings.reconcile_interval):
                self.guard("reconciler", lambda: reconcile(runtime))
            if leader and self.due("janitor", 60.0):
                self.guard("janitor", self.clean)

    def clean(self) -> None:
        """Expire old finished jobs and idempotency keys; compact counters."""
        retention = timedelta(seconds=self.settings.retention_seconds)
        removed = expire_finished(retention)
        idempotency.forget_before(ledger.utcnow() - max(retention, timedelta(days=7)))
        unique.forget_expired(ledger.utcnow())
        now = ledger.utcnow()
        with db.engine.begin() as conn:
            ledger.compact_counts(conn)
            ledger.fold_throughput(conn, older_than=now - timedelta(minutes=1), roll_up_before=now - timedelta(hours=1))
            conn.execute(delete(ledger.throughput_table).where(ledger.throughput_table.c.bucket
                                                               < now - timedelta(days=8)))
        if removed:
            log.info("janitor expired %d finished job(s)", removed)

    def guard(self, duty: str, action):
        """Run ``action`` and return its value; log its failure (None) so the scheduler keeps running."""
        try:
            return action()
        except Exception:  # noqa: BLE001
            log.exception("%s failed; will retry", duty)
            db.session.rollback()
            return None
