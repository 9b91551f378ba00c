"""The job engine bound to one Flask app: transport + ledger + dispatch.

This is the *client* side (Hangfire's BackgroundJobClient): it validates, writes
the ledger and pushes messages. The worker side lives in ``tasks.server``.

A call outside a request costs one ledger commit and one transport round trip; inside
a request with pending writes it joins the request's transaction (no commit of its own)
and pushes after that commit.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, write_transaction
from tasks import continuations, ledger, lifecycle, queues, registry, tracing, unique
from tasks.context import current_context
from tasks.codec import Delivery, check_arguments, encode_arguments
from tasks.ledger import NewJob
from tasks.registry import JobDefinition
from tasks.transport import Outgoing, Transport, open_huey, transport_url

PENDING_KEY = "jobs_pending_dispatch"
WROTE_KEY = "jobs_session_wrote"


class _CurrentTenant:
    """The default of ``tenant=``: whoever is acting now (see :func:`current_tenant`)."""

    def __repr__(self) -> str:
        return "CURRENT_TENANT"


CURRENT_TENANT: Any = _CurrentTenant()


@dataclass
class Settings:
    """Engine settings read from the app config."""

    default_queues: tuple[str, ...] = ("default",)
    dead_after: float = 4.0  # seconds without a heartbeat before a worker is declared dead
    heartbeat_interval: float = 1.0
    shutdown_grace: float = 25.0  # Heroku sends SIGKILL 30 s after SIGTERM
    retention_seconds: float = 86400.0
    reconcile_interval: float = 30.0
    reconcile_grace: float = 10.0  # don't re-dispatch jobs younger than this
    backoff_scale: float = 1.0  # multiplies every retry delay (staging and tests retry faster)
    max_args_bytes: int = 256 * 1024  # arguments larger than this as JSON are refused at enqueue
    prefetch_budget: float = 0.05  # seconds of expected work a worker may hold per thread beyond running jobs
    hold_limit: float = 1.0  # a claimed job not started within this many seconds is handed back

    @classmethod
    def from_config(cls, config: Mapping) -> "Settings":
        """Settings from ``JOBS_*`` config keys."""
        queues = config.get("JOBS_QUEUES") or "default"
        return cls(
            default_queues=tuple(q.strip() for q in str(queues).split(",") if q.strip()),
            dead_after=float(config.get("JOBS_DEAD_AFTER", 4.0)),
            heartbeat_interval=float(config.get("JOBS_HEARTBEAT_INTERVAL", 1.0)),
            shutdown_grace=float(config.get("JOBS_SHUTDOWN_GRACE", 25.0)),
            retention_seconds=float(config.get("JOBS_RETENTION_SECONDS", 86400)),
            reconcile_interval=float(config.get("JOBS_RECONCILE_INTERVAL", 30.0)),
            reconcile_grace=float(config.get("JOBS_RECONCILE_GRACE", 10.0)),
            backoff_scale=float(config.get("JOBS_BACKOFF_SCALE", 1.0)),
            max_args_bytes=int(config.get("JOBS_MAX_ARGS_BYTES", 256 * 1024)),
            prefetch_budget=float(config.get("JOBS_PREFETCH_BUDGET", 0.05)),
            hold_limit=float(config.get("JOBS_HOLD_LIMIT", 1.0)),
        )


class JobEngine:
    """Enqueue-side engine: one per Flask app (``app.extensions["jobs"]``)."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings = Settings.from_config(app.config)
        self._huey = open_huey(transport_url(app.config, app.instance_path))
        self._huey_synced = -1  # registry.declarations() when the Huey registry was last brought up to date
        self.transport: Transport = self._huey.storage
        self._declared: set[str] = set()  # queues seen declared in the ledger (cached)

    @property
    def huey(self):
        """This engine's Huey instance (its storage is ``transport``), every declared job registered on it."""
        if self._huey_synced != registry.declarations():
            self._huey_synced = registry.declarations()
            for definition in list(registry.REGISTRY.values()):
                self._huey.register_job(definition.name, definition.func, definition.retry.attempts - 1,
                                        definition.priority)
        return self._huey

    # -- enqueue -----------------------------------------------------------
    def enqueue_many(self, job: JobDefinition, calls: Sequence[tuple[Sequence, Mapping]], *,
                     queue: str | None = None, priority: int | None = None, due: float | None = None,
                     enqueued_by: str | None = None, recurring_id: str | None = None,
                     after: str | None = None, continue_on: str = continuations.ON_SUCCESS, occurrence=None,
                     tenant: Any = CURRENT_TENANT) -> list[str]:
        """Validate, record in the ledger and dispatch ``calls`` of ``job``; returns ids.

        ``tenant`` names the tenant the jobs belong to (None: the host); by default they belong to
        the signed-in user's tenant inside a request, to the running job's tenant inside a job, and
        to the host elsewhere.
        ``after`` makes each call a continuation of that job (Awaiting until it finishes);
        ``occurrence`` records which run of a recurring job this is (as ``scheduled_for``).
        A unique job returns the id of the pending duplicate instead of creating one.
        """
        queue = queue or job.queue
        priority = job.priority if priority is None else int(priority)
        self.check_queue(queue)
        check_due(due)
        if continue_on not in continuations.CONTINUE_ON:
            raise ValueError(f"continue_on must be one of {', '.join(continuations.CONTINUE_ON)}")
        state = lifecycle.AWAITING if after else lifecycle.SCHEDULED if due else lifecycle.ENQUEUED
        who = enqueued_by or current_username()
        owner = current_tenant() if tenant is CURRENT_TENANT else checked_tenant(tenant)
        names = job.parameter_names()
        with tracing.enqueue_span(job.name, queue, len(calls)) as traceparent:
            batch = Batch()
            created = time.time()
            allow_nul = db.engine.dialect.name != "postgresql"
            for args, kwargs in calls:
                args, kwargs = list(args), dict(kwargs or {})
                check_arguments(args, kwargs, names, allow_nul)
                encoded = encode_arguments(args, kwargs, self.settings.max_args_bytes)
                job.check_call(args, kwargs)
                job.check_keys(args, kwargs)
                job_id = ledger.new_job_id()
                batch.jobs.append(NewJob(
                    job_id, job.name, job.describe(args, kwargs), queue, priority, args, kwargs, state,
                    job.retry.attempts, ledger.from_epoch(due) or occurrence, who,
                    reason=("Scheduled by client" if due else
                            f"Recurring job {recurring_id}" if recurring_id else ""),
                    parent_id=after, continue_on=continue_on if after else None, recurring_id=recurring_id,
                    tenant=owner, encoded=encoded))
                batch.keys.append(unique.key_for(job.name, job.unique, args, kwargs) if job.unique else None)
                if not after:
                    batch.deliveries[job_id] = Delivery(job_id, job.name, queue, priority, args, kwargs, 1,
                                                        job.retry.attempts, due, created,
                                                        traceparent=traceparent, tenant=owner)
            batch.window = job.unique_window
            return self.record_and_dispatch(batch)

    def known_queues(self) -> set[str]:
        """Queues jobs may be sent to: ``JOBS_QUEUES``, every job definition's own, and declared ones."""
        return set(self.settings.default_queues) | {d.queue for d in registry.REGISTRY.values()} | \
            self._declared | set(queues.declared())

    def check_queue(self, queue) -> None:
        """Raise ``ValueError`` listing the known queues unless ``queue`` is one of them."""
        if not isinstance(queue, str) or not queue or len(queue) > 64:
            raise ValueError(f"queue must be a non-empty name of at most 64 characters, got {queue!r}")
        if queue in self.settings.default_queues or queue in self._declared:
            return
        if any(d.queue == queue for d in registry.REGISTRY.values()) or queue in queues.declared():
            self._declared.add(queue)
            return
        raise ValueError(f"unknown queue {queue!r}; known queues: {', '.join(sorted(self.known_queues()))} "
                         f"(declare one with JOBS_QUEUES, a job's queue= or 'jobs queues declare NAME')")

    def record_and_dispatch(self, batch: "Batch") -> list[str]:
        """Write the ledger rows, then push: after the request's commit when it has pending writes."""
        session = db.session
        if session_has_writes(session):
            ids, outgoing_now = self.record(session.connection(), batch)
            session.info.setdefault(PENDING_KEY, []).append((self, outgoing_now))
            return ids
        with write_transaction() as conn:
            ids, outgoing_now = self.record(conn, batch)
        self.dispatch(outgoing_now)
        return ids

    def record(self, conn, batch: "Batch") -> tuple[list[str], list[Delivery]]:
        """Insert the batch on ``conn`` (deduplicating unique jobs); returns ids and messages to push."""
        ids, fresh = [], []
        now = ledger.utcnow()
        for new, key in zip(batch.jobs, batch.keys):
            holder = unique.claim(conn, key, new.id, batch.window, now) if key else None
            ids.append(holder or new.id)
            if holder is None:
                fresh.append(new)
        ledger.insert_jobs(conn, fresh)
        messages = [batch.deliveries[j.id] for j in fresh if j.id in batch.deliveries]
        parents = {j.parent_id for j in fresh if j.parent_id}
        if parents:
            missing = parents - set(continuations.known(conn, parents, batch.jobs[0].tenant))
            if missing:
                raise ValueError(f"no job {sorted(missing)[0]} to continue after")
            messages += continuations.resolve(conn, continuations.final_parents(conn, parents))
        return ids, messages

    def dispatch(self, deliveries: list[Delivery]) -> None:
        """Push messages to the transport (one pipelined round trip).

        If this fails after the ledger commit, the reconciler re-dispatches the
        jobs from the ledger; the caller still gets its ids.
        """
        try:
            self.transport.push([outgoing(d) for d in deliveries])
        except Exception:  # noqa: BLE001 - the ledger has them; the reconciler will push them
            self.app.logger.exception("transport push failed for %d job(s); reconciler will retry",
                                      len(deliveries))


@dataclass
class Batch:
    """New jobs on their way to the ledger, with their uniqueness keys and messages."""

    jobs: list[NewJob] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    window: float = 86400.0


#: The latest due time accepted (year 9000): later ones are almost certainly mistakes.
MAX_DUE = 221845392000.0


def check_due(due: float | None) -> None:
    """Raise ``ValueError`` for a due time that isn't a finite moment before the year 9000."""
    if due is not None and (not math.isfinite(due) or not 0 <= due <= MAX_DUE):
        raise ValueError(f"due time {due!r} is out of range: give a delay or eta before the year 9000")


def outgoing(delivery: Delivery) -> Outgoing:
    """The transport form of a delivery."""
    return Outgoing(delivery.id, delivery.queue, delivery.priority, delivery.encode(), delivery.eta)


def current_tenant() -> str | None:
    """The tenant acting now: the signed-in user's in a request, the running job's in a job, else None."""
    if has_request_context():
        from app.tenants import request_tenant

        return request_tenant()
    running = current_context()
    return running.tenant if running is not None else None


def checked_tenant(tenant: Any) -> str | None:
    """An explicit ``tenant=``: None (the host) or the name of an existing tenant (``ValueError`` else)."""
    if tenant is None:
        return None
    from app.models import Tenant

    if not isinstance(tenant, str) or Tenant.by_name(tenant) is None:
        raise ValueError(f"tenant: no tenant named {tenant!r} (None means the host)")
    return Tenant.by_name(tenant).name


def current_username() -> str | None:
    """The signed-in user's name inside a request, else None."""
    if not has_request_context():
        return None
    from flask_login import current_user

    return current_user.username if getattr(current_user, "is_authenticated", False) else None


def current_engine() -> JobEngine:
    """The engine of the current Flask app."""
    if not has_app_context():
        raise RuntimeError("the job engine needs an application context (with app.app_context(): ...)")
    return current_app.extensions["jobs"]


# -- transactional enqueue: session hooks ---------------------------------------
def session_has_writes(session) -> bool:
    """True when the session has unflushed changes or flushed writes not yet committed."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(WROTE_KEY))


@event.listens_for(Session, "after_flush")
def _remember_writes(session, flush_context) -> None:
    session.info[WROTE_KEY] = True


@event.listens_for(Session, "do_orm_execute")
def _remember_statement_writes(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[WROTE_KEY] = True


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session) -> None:
    session.info.pop(WROTE_KEY, None)
    for engine, deliveries in session.info.pop(PENDING_KEY, []):
        engine.dispatch(deliveries)


@event.listens_for(Session, "after_rollback")
def _discard_after_rollback(session) -> None:
    session.info.pop(WROTE_KEY, None)
    session.info.pop(PENDING_KEY, None)
