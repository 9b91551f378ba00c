"""The fetcher: takes jobs from the transport, claims them in the ledger, hands them to threads.

One thread per worker process. It keeps the worker's threads fed without hoarding:

* **slots** — it holds at most one job per idle thread, plus a **prefetch** sized by
  evidence: the worker's moving average of run time decides how many jobs fit in
  ``JOBS_PREFETCH_BUDGET`` seconds of work per thread (short jobs: several per thread;
  long jobs, or none seen yet: none). A fetched job that would wait behind busy threads
  while its task is long or unknown goes straight back to its queue, unclaimed.
* **claims** — every fetched job is claimed (→ Processing) through the completer before
  it may run; a job deleted or finished in the ledger meanwhile is refused there and
  never runs. The next batch is fetched and claimed while the current one runs.
* **hold limit** — a claimed job not started within ``JOBS_HOLD_LIMIT`` seconds is handed
  back (→ Enqueued) so another worker can start it. The dashboard's Processing therefore
  means a thread has the job, or will within that limit (usually within milliseconds).
* **poison** — a message that can't run (undecodable, unknown task, lost its worker too
  often) is recorded as Failed with the reason and dropped; the others carry on.
"""
from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import replace

from tasks import ledger, lifecycle, registry
from tasks.codec import PoisonMessage, decode
from tasks.completer import Completer, Pending, handed_back, poisoned
from tasks.lifecycle import Transition
from tasks.processor import Claimed
from tasks.transport import Fetched, Transport

log = logging.getLogger("tasks.fetcher")

#: A job whose worker died under it more often than this is failed rather than redelivered
#: again (it probably kills its worker); below it, a lost worker never costs a job its run.
MAX_REDELIVERIES = 5
#: At most this many jobs per thread are held ahead, however short the jobs are.
MAX_PREFETCH_PER_THREAD = 16
#: How long an idle fetch blocks on the transport waiting for a wake-up (seconds).
IDLE_WAIT = 1.0


class Estimates:
    """Moving averages of run time, per task and for the whole worker: the evidence for prefetch."""

    def __init__(self, weight: float = 0.2):
        self.weight = weight
        self.by_task: dict[str, float] = {}
        self.overall: float | None = None

    def record(self, task: str, seconds: float) -> None:
        """Fold one run's duration into the averages."""
        previous = self.by_task.get(task)
        self.by_task[task] = seconds if previous is None else previous + self.weight * (seconds - previous)
        overall = self.overall
        self.overall = seconds if overall is None else overall + self.weight * (seconds - overall)

    def short(self, task: str, budget: float) -> bool:
        """True when ``task`` is known to run in well under ``budget`` seconds."""
        seconds = self.by_task.get(task)
        return seconds is not None and seconds < budget

    def per_thread(self, budget: float) -> int:
        """Jobs a thread may hold ahead: as many as fit in ``budget`` seconds (0 without evidence)."""
        if self.overall is None or self.overall >= budget:
            return 0
        return min(MAX_PREFETCH_PER_THREAD, int(budget / max(self.overall, 1e-4)))


class Mutexes:
    """Mutex leases held by this worker's running jobs (renewed with each heartbeat)."""

    def __init__(self, transport: Transport, ttl: float):
        self.transport, self.ttl = transport, ttl
        self.held: dict[str, str] = {}  # key -> job id

    def acquire(self, key: str, job_id: str) -> bool:
        """Take ``key`` for ``job_id``; False when another job holds it."""
        if self.transport.lead(key, job_id, self.ttl):
            self.held[key] = job_id
            return True
        return False

    def release(self, key: str, job_id: str) -> None:
        """Let the next job with this key run."""
        self.held.pop(key, None)
        try:
            self.transport.release(key, job_id)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            log.warning("could not release %s: %s", key, exc)

    def renew(self) -> None:
        """Extend every held lease (called by the heartbeat)."""
        for key, job_id in list(self.held.items()):
            self.transport.lead(key, job_id, self.ttl)


class Fetcher:
    """Feeds claimed jobs to ``threads`` worker threads (see the module docstring)."""

    def __init__(self, transport: Transport, completer: Completer, worker_id: str, queues: list[str],
                 threads: int, settings, dead_letter):
        self.transport, self.completer, self.worker_id = transport, completer, worker_id
        self.queues, self.threads, self.settings = queues, threads, settings
        self.dead_letter = dead_letter
        self.estimates = Estimates()
        self.mutexes = Mutexes(transport, 2 * settings.dead_after)
        self.ready: collections.deque[Claimed] = collections.deque()
        self.cond = threading.Condition()
        self.running = 0  # jobs a thread is running
        self.claiming = 0  # jobs fetched and not yet ready or dropped
        self.blocked = False  # a job was just handed back for want of a thread: no prefetch until one frees
        self.stopping = threading.Event()
        self._paused: set[str] = set()
        self._paused_checked = 0.0
        self._thread = threading.Thread(target=self._loop, name="fetcher", daemon=True)

    def start(self) -> None:
        """Start fetching."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop fetching and hand back every claimed job no thread has started."""
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        self._thread.join(timeout)
        self.hand_back_unstarted(0.0, "Worker shutting down before the job started")

    # -- for worker threads ---------------------------------------------------
    def take(self, timeout: float) -> Claimed | None:
        """The next claimed job for a thread, or None after ``timeout`` seconds (or when stopping)."""
        with self.cond:
            if not self.ready and not self.stopping.is_set():
                self.cond.wait(timeout)
            if not self.ready or self.stopping.is_set():
                return None
            job = self.ready.popleft()
            self.running += 1
            self.cond.notify_all()
            return job

    def finished(self, job: Claimed, seconds: float) -> None:
        """A thread is done with ``job``: free its slot and mutex, learn its run time."""
        if job.mutex:
            self.mutexes.release(job.mutex, job.delivery.id)
        with self.cond:
            self.running -= 1
            self.estimates.record(job.delivery.task, seconds)
            self.blocked = False
            self.cond.notify_all()

    # -- the loop -----------------------------------------------------------------
    def wanted(self) -> int:
        """Jobs to fetch now: idle threads plus the prefetch the evidence allows, minus what is held."""
        with self.cond:
            per_thread = self.estimates.per_thread(self.settings.prefetch_budget)
            ahead = 0 if self.blocked else self.threads * per_thread
            return max(0, self.threads + ahead - self.running - len(self.ready) - self.claiming)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.hand_back_unstarted(self.settings.hold_limit, f"Not started within "
                                         f"{self.settings.hold_limit:g}s by {self.worker_id}; handed back")
                if not self.completer.healthy or self.completer.backlog > 5000:
                    self.stopping.wait(0.1)  # the ledger is away or far behind: take nothing more
                    continue
                want = self.wanted()
                if want <= 0:
                    with self.cond:
                        self.cond.wait(0.05)
                    continue
                held = self.running or self.ready
                batch = self.transport.fetch(self.worker_id, self.active_queues(), limit=want,
                                             wait=0.05 if held else IDLE_WAIT)
                if batch:
                    self.admit(batch)
            except Exception:  # noqa: BLE001 - transport or ledger trouble: back off, keep the worker alive
                log.exception("fetch failed; retrying")
                self.stopping.wait(0.5)

    def active_queues(self) -> list[str]:
        """This worker's queues minus paused ones (the paused set is re-read at most once a second)."""
        if time.monotonic() >= self._paused_checked + 1.0:
            try:
                self._paused = self.transport.paused()
            except Exception as exc:  # noqa: BLE001 - keep the last known set
                log.warning("could not read paused queues: %s", exc)
            self._paused_checked = time.monotonic()
        return [q for q in self.queues if q not in self._paused]

    # -- admitting fetched jobs ---------------------------------------------------
    def admit(self, batch: list[Fetched]) -> None:
        """Validate, lock and claim fetched jobs; queue the claimed ones for the threads.

        Every fetched job ends claimed and ready, handed back, or recorded and dropped,
        whatever happens here; an unexpected error hands the rest back.
        """
        with self.cond:
            self.claiming += len(batch)
        placed: set[str] = set()
        try:
            jobs = [job for job in (self.validate(f, placed) for f in batch) if job is not None]
            jobs = self.keep_or_return(jobs, placed)
            jobs = [job for job in jobs if self.lock(job, placed)]
            self.claim(jobs, placed)
        except Exception:  # noqa: BLE001 - never lose the fetcher; the jobs go back to their queues
            log.exception("could not start %d fetched job(s); handing them back", len(batch))
            rest = [f.job_id for f in batch if f.job_id not in placed]
            self.transport.hand_back(self.worker_id, rest)
        finally:
            with self.cond:
                self.claiming -= len(batch)
                self.cond.notify_all()

    def validate(self, fetched: Fetched, placed: set[str]) -> Claimed | None:
        """Decode a message into a runnable job, or record it as Failed (poison) and drop it."""
        reason, delivery = None, None
        try:
            delivery = decode(fetched.payload, fetched.job_id)
        except PoisonMessage as poison:
            reason = poison.reason
        if delivery is not None and delivery.id != fetched.job_id:
            reason = f"message id {delivery.id!r:.40} doesn't match its transport id"
        elif delivery is not None and delivery.task not in registry.REGISTRY:
            reason = f"unknown task {delivery.task!r}: no job is registered under that name"
        elif fetched.redeliveries > MAX_REDELIVERIES:
            reason = (f"worker lost {fetched.redeliveries} times while running this job "
                      f"(more than {MAX_REDELIVERIES}): it probably kills its worker")
        if reason is not None:
            placed.add(fetched.job_id)
            self.completer.submit(poisoned(fetched.job_id, self.worker_id, reason))
            return None
        attempt = delivery.attempt + fetched.redeliveries  # a lost worker's job runs as the next attempt
        return Claimed(registry.REGISTRY[delivery.task], delivery, attempt, fetched.redeliveries)

    def keep_or_return(self, jobs: list[Claimed], placed: set[str]) -> list[Claimed]:
        """Hand back, unclaimed, jobs that would wait behind busy threads although long or unknown."""
        with self.cond:
            idle = max(0, self.threads - self.running - len(self.ready))
        keep, back = [], []
        for job in jobs:
            if idle > 0:
                idle -= 1
                keep.append(job)
            elif self.estimates.short(job.delivery.task, self.settings.prefetch_budget):
                keep.append(job)
            else:
                back.append(job.delivery.id)
        if back:
            self.transport.hand_back(self.worker_id, back)
            placed.update(back)
            with self.cond:
                self.blocked = True
        return keep

    def lock(self, job: Claimed, placed: set[str]) -> bool:
        """Take the job's mutex if it has one; when another job holds it, reschedule this one (not failed)."""
        definition, delivery = job.definition, job.delivery
        if not definition.mutex:
            return True
        key = "mutex:" + definition.mutex.format(*delivery.args, **delivery.kwargs)
        if self.mutexes.acquire(key, delivery.id):
            job.mutex = key
            return True
        wait = 1.0 + random.random()
        at = ledger.utcnow()
        self.completer.submit(Pending(Transition(
            delivery.id, lifecycle.SCHEDULED, at, f"Waiting for mutex {key[6:]!r}",
            expected=frozenset({lifecycle.ENQUEUED, lifecycle.PROCESSING}),
            fields={"scheduled_for": ledger.from_epoch(time.time() + wait)}, data={"mutex": key[6:]},
        ), retry=replace(delivery, eta=time.time() + wait)))
        placed.add(delivery.id)
        return False

    def claim(self, jobs: list[Claimed], placed: set[str]) -> None:
        """Claim ``jobs`` (→ Processing) in the next ledger batch; queue the accepted ones for the threads."""
        pending = [self.claim_pending(job) for job in jobs]
        for p in pending:
            self.completer.submit(p)
        refused: list[str] = []
        for job, p in zip(jobs, pending):
            while not p.done.wait(0.5):
                if self.stopping.is_set() and not self.completer.healthy:
                    return  # shutting down with the ledger away: recovery sorts these out
            placed.add(job.delivery.id)
            if p.outcome.applied:
                job.claimed_at = time.monotonic()
                with self.cond:
                    self.ready.append(job)
                    self.cond.notify()
                continue
            if job.mutex:
                self.mutexes.release(job.mutex, job.delivery.id)
            if p.outcome.previous is None:
                self.dead_letter(job.delivery.id, "message has no ledger row (dead letter): the job was "
                                                  "never recorded or has expired")
            else:
                log.info("job %s is %s in the ledger; not running it", job.delivery.id, p.outcome.previous)
            refused.append(job.delivery.id)
        if refused:
            self.transport.ack(self.worker_id, refused)

    def claim_pending(self, job: Claimed) -> Pending:
        """The Processing transition that claims ``job`` (it runs only if the ledger accepts it)."""
        delivery, attempt = job.delivery, job.attempt
        started = ledger.utcnow()
        queued_at = delivery.eta or delivery.created
        latency = {"latency_ms": round((time.time() - queued_at) * 1000, 1)} if queued_at else {}
        reason = f"Attempt {attempt} of {delivery.max_attempts}"
        if job.redeliveries:
            reason += f" (redelivered {job.redeliveries}×)"
        return Pending(Transition(
            delivery.id, lifecycle.PROCESSING, started, reason,
            fields={"started_at": started, "worker": self.worker_id, "attempt": attempt, "progress": None,
                    "progress_message": None},
            data={"worker": self.worker_id, "queue": delivery.queue, "attempt": attempt, **latency},
        ), done=threading.Event())

    def hand_back_unstarted(self, older_than: float, reason: str) -> list[str]:
        """Hand back claimed jobs no thread started within ``older_than`` seconds (→ Enqueued)."""
        cutoff = time.monotonic() - older_than
        with self.cond:
            stale = [job for job in self.ready if job.claimed_at <= cutoff]
            for job in stale:
                self.ready.remove(job)
            if stale and older_than:
                self.blocked = True  # the evidence was wrong: hold nothing ahead until a thread frees
        if not stale:
            return []
        for job in stale:
            if job.mutex:
                self.mutexes.release(job.mutex, job.delivery.id)
        moved = self.transport.hand_back(self.worker_id, [job.delivery.id for job in stale])
        for job_id in moved:
            self.completer.submit(handed_back(job_id, self.worker_id, reason))
        log.info("handed back %d claimed job(s) no thread started", len(moved))
        return moved
