"""Recovery and upkeep: nothing in the ledger is lost because the transport forgot it.

Run once a second by each worker's maintenance thread (``Maintenance.tick``):

* **due jobs** — the transport moves due scheduled jobs atomically; we record it;
* **dead workers** — a worker whose heartbeat is older than ``JOBS_DEAD_AFTER``
  seconds is claimed by one live worker, which re-enqueues its in-flight jobs
  (same id, next attempt); long jobs on live workers are never touched, because
  leases follow heartbeats, not a fixed timeout;
* **reconciler** (one leader at a time) — jobs the ledger says are Enqueued,
  Scheduled or Processing that the transport no longer holds (Redis restarted
  without persistence, FLUSHALL, failover, a deleted transport file, a crash between
  commit and push) are dispatched again from the ledger;
* **janitor** (one leader at a time) — Succeeded and Deleted jobs older than the
  retention period are deleted in short batches (``tasks.retention``); counters are compacted.
  Every few seconds the leader also folds the job metrics (``tasks.metrics.fold``).

Every duty survives a single bad row or message: that job goes to Failed with the
reason and the others carry on in the same run.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select

from app.extensions import db, write_transaction
from tasks import continuations, idempotency, ledger, lifecycle, metrics, recurring, unique
from tasks.codec import Delivery, PoisonMessage, delivery_from_row
from tasks.completer import Completer, Pending, handed_back
from tasks.engine import outgoing
from tasks.retention import expire_finished  # noqa: F401  (the janitor's duty, imported by tests)
from tasks.ledger import jobs_table
from tasks.lifecycle import Transition
from tasks.transport import Transport

log = logging.getLogger("tasks.recovery")

LEADER_ROLE = "maintenance"  # one worker at a time reconciles and cleans
METRICS_FOLD_INTERVAL = 5.0  # seconds: a scrape sums at most a few seconds of unfolded metric rows
#: duties the application adds to the leader's round: name → (interval in seconds, read in the app
#: context each tick; 0 skips it — and the duty)
LEADER_DUTIES: dict[str, tuple[Callable[[], float], Callable[[], object]]] = {}


def leader_duty(name: str, interval: Callable[[], float]):
    """Register a function the maintenance leader runs every ``interval()`` seconds (app context)."""
    def register(action: Callable[[], object]) -> Callable[[], object]:
        LEADER_DUTIES[name] = (interval, action)
        return action
    return register


def record_due(completer: Completer, job_ids: list[str]) -> None:
    """Record Scheduled → Enqueued for jobs the transport moved to their queues."""
    at = ledger.utcnow()
    for job_id in job_ids:
        completer.submit(Pending(Transition(job_id, lifecycle.ENQUEUED, at, "Due", fields={"enqueued_at": at},
                                            expected=frozenset({lifecycle.SCHEDULED}))))


def recover_dead_workers(transport: Transport, completer: Completer, worker_id: str,
                         dead_after: float) -> list[str]:
    """Re-enqueue the in-flight jobs of workers that stopped beating; returns the job ids."""
    dead = transport.claim_dead(dead_after)
    live = {w["id"] for w in transport.workers()} | {worker_id}
    dead += [w for w in transport.orphaned_inflight(live) if w not in dead]
    recovered: list[str] = []
    for lost in dead:
        if not record_lost(completer, lost, transport.inflight(lost)):
            continue  # the ledger is away: the worker's jobs stay where they are until the next tick
        moved = transport.hand_back(lost, None, lost=True)
        if moved:
            log.warning("worker %s is dead; re-enqueued %d job(s)", lost, len(moved))
        recovered += moved
    return recovered


def record_lost(completer: Completer, lost: str, job_ids: list[str], timeout: float = 5.0) -> bool:
    """Commit Processing → Enqueued for the jobs dead worker ``lost`` held, *before* their messages go
    back to a queue: else a live worker could fetch and claim one first, and the history would never
    say it was lost. True once every transition is written (applied or refused as stale)."""
    pending = []
    for job_id in job_ids:
        entry = handed_back(job_id, lost, f"Worker {lost} lost; re-enqueued", lost=True)
        entry.done = threading.Event()
        completer.submit(entry)
        pending.append(entry)
    deadline = time.monotonic() + timeout
    return all(entry.done.wait(max(0.0, deadline - time.monotonic())) for entry in pending)


def redelivery(row) -> Delivery:
    """The message to send again for a ledger row the transport lost (``PoisonMessage`` if it can't be)."""
    if row.state == lifecycle.SCHEDULED:
        attempt, eta = row.attempt + 1, ledger.to_epoch(row.scheduled_for)
    elif row.state == lifecycle.PROCESSING:
        attempt, eta = row.attempt + 1, None
    else:
        attempt, eta = max(1, row.attempt), None
    return delivery_from_row(row, attempt, eta)


def reconcile(transport: Transport, grace: float, batch: int = 500) -> list[str]:
    """Dispatch again every live ledger job the transport no longer holds; returns their ids."""
    cutoff = ledger.utcnow() - timedelta(seconds=grace)
    live_workers = {w["id"] for w in transport.workers()}
    c = jobs_table.c
    query = (select(c.id, c.task, c.queue, c.priority, c.args, c.kwargs, c.state, c.attempt, c.max_attempts,
                    c.scheduled_for, c.worker, c.tenant)
             .where(c.state.in_(lifecycle.LIVE_STATES), c.state_changed_at < cutoff)
             .order_by(c.id).limit(batch))
    with write_transaction() as conn:
        released = continuations.resolve(conn, continuations.stranded(conn))
    transport.push([outgoing(d) for d in released])
    dispatched: list[str] = []
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
            dispatched += resend(transport, lost)


def resend(transport: Transport, rows) -> list[str]:
    """Record and push again jobs the transport lost; a row that can't become a message goes to Failed."""
    at = ledger.utcnow()
    messages, transitions, poisoned = [], [], []
    for row in rows:
        try:
            messages.append(outgoing(redelivery(row)))
        except PoisonMessage as poison:
            poisoned.append(row.id)
            transitions.append(ledger_poison(row.id, at, f"Reconciler: {poison.reason}"))
            continue
        if row.state == lifecycle.PROCESSING:
            transitions.append(Transition(row.id, lifecycle.ENQUEUED, at,
                                          f"Reconciler: transport lost the job (worker {row.worker} gone)",
                                          expected=frozenset({lifecycle.PROCESSING}),
                                          expected_worker=row.worker,
                                          fields={"enqueued_at": at}, data={"lost_worker": row.worker}))
    with write_transaction() as conn:
        ledger.apply(conn, transitions)
    transport.push(messages)
    if poisoned:
        log.error("reconciler failed %d job(s) whose ledger rows can't become messages", len(poisoned))
    log.warning("reconciler re-dispatched %d job(s) the transport had lost", len(messages))
    return [m.job_id for m in messages]


def ledger_poison(job_id: str, at, reason: str) -> Transition:
    """A live job whose ledger row can't become a message: Failed with the reason."""
    return Transition(job_id, lifecycle.FAILED, at, ledger.clip(reason, 1000),
                      expected=lifecycle.LIVE_STATES | {lifecycle.AWAITING},
                      fields={"finished_at": at, "exception_type": "PoisonMessage",
                              "exception_message": reason}, data={"exception_type": "PoisonMessage"})


class Maintenance:
    """Periodic duties of a worker, each on its own interval, given only what they need."""

    def __init__(self, app, transport: Transport, completer: Completer, worker_id: str, settings):
        self.app, self.transport, self.completer = app, transport, completer
        self.worker_id, self.settings = worker_id, settings
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
        return self.transport.lead(LEADER_ROLE, self.worker_id, 2 * self.settings.dead_after)

    def tick(self) -> None:
        """Run whatever is due; each duty's failure is logged, never raised."""
        settings = self.settings
        with self.app.app_context():
            self.guard("due jobs", lambda: record_due(self.completer, self.transport.move_due()))
            if self.due("recover", 1.0):
                self.guard("recovery", lambda: recover_dead_workers(self.transport, self.completer,
                                                                    self.worker_id, settings.dead_after))
            leader = self.guard("leader lease", self.leads)
            if leader and self.due("recurring sync", 300.0):
                self.guard("recurring sync", recurring.sync)
            if leader:
                self.guard("recurring jobs", recurring.run_due)
            if leader and self.due("reconcile", settings.reconcile_interval):
                self.guard("reconciler", lambda: reconcile(self.transport, settings.reconcile_grace))
            if leader and self.due("janitor", 60.0):
                self.guard("janitor", self.clean)
            if leader and self.due("metrics", METRICS_FOLD_INTERVAL):
                self.guard("metrics", fold_metrics)
            if leader:
                for name, (interval, action) in LEADER_DUTIES.items():
                    seconds = self.guard(name, interval) or 0
                    if seconds > 0 and self.due(name, seconds):
                        self.guard(name, action)

    def clean(self) -> None:
        """Expire old finished jobs and idempotency keys; compact counters."""
        retention = timedelta(seconds=self.settings.retention_seconds)
        removed = self.guard("retention", lambda: expire_finished(retention))
        self.guard("idempotency keys", lambda: idempotency.forget_before(
            ledger.utcnow() - max(retention, timedelta(days=7))))
        self.guard("unique keys", lambda: unique.forget_expired(ledger.utcnow()))
        self.guard("counters", compact)
        if removed:
            log.info("janitor expired %d finished job(s)", removed)

    def guard(self, duty: str, action):
        """Run ``action`` and return its value; log its failure (None) so maintenance keeps running."""
        try:
            return action()
        except Exception:  # noqa: BLE001
            log.exception("%s failed; will retry", duty)
            db.session.rollback()
            return None


def compact() -> None:
    """Fold counter deltas and throughput buckets; drop throughput older than 8 days."""
    now = ledger.utcnow()
    with db.engine.begin() as conn:
        ledger.compact_counts(conn)
        ledger.fold_throughput(conn, older_than=now - timedelta(minutes=1),
                               roll_up_before=now - timedelta(hours=1))
        conn.execute(delete(ledger.throughput_table).where(ledger.throughput_table.c.bucket
                                                           < now - timedelta(days=8)))


def fold_metrics() -> int:
    """Fold the job metrics rows of past minutes into their totals (see ``tasks.metrics``)."""
    with write_transaction() as conn:
        return metrics.fold(conn, ledger.utcnow())
