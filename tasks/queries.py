"""Read side of the ledger for the dashboard, the CLI and the JSON API.

Lists use keyset pagination on ``(state_changed_at, id)`` so a page stays
stable while new jobs arrive; counts come from counter deltas, never a full COUNT.
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal_column, or_, select

from app.extensions import db
from tasks import ledger, lifecycle
from tasks.audit import audit_log  # noqa: F401  (part of the read API)
from tasks.ledger import Job, JobState, throughput_table


class BadCursor(ValueError):
    """A pagination cursor that wasn't produced by ``list_jobs``."""


@dataclass
class JobFilter:
    """What a list shows: every field optional."""

    state: str | None = None
    queue: str | None = None
    task: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # in arguments or exception
    enqueued_by: str | None = None
    retrying: bool = False  # Scheduled jobs waiting for another attempt
    recurring_id: str | None = None  # runs of one recurring job
    states: tuple[str, ...] = ()  # any of these states (an action's states, narrowing ``state``)

    def to_dict(self) -> dict:
        """JSON-ready form (for bulk jobs and the audit log)."""
        return {k: (v.isoformat() if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if v not in (None, False, "", ())}

    @classmethod
    def from_dict(cls, data: dict) -> "JobFilter":
        """Inverse of ``to_dict``."""
        data = dict(data)
        for key in ("since", "until"):
            if data.get(key):
                data[key] = datetime.fromisoformat(data[key])
        if "states" in data:
            data["states"] = tuple(data["states"])
        return cls(**data)

    def __post_init__(self) -> None:
        for state in (self.state, *self.states):
            if state and state not in lifecycle.STATES:
                raise ValueError(f"unknown state {state!r}; one of {', '.join(lifecycle.STATES)}")

    def clauses(self) -> list:
        """SQL conditions for this filter."""
        c = Job.__table__.c
        where = []
        if self.state:
            where.append(c.state == self.state)
        if self.states:
            where.append(c.state.in_(self.states))
        if self.queue:
            where.append(c.queue == self.queue)
        if self.task:
            where.append(c.task == self.task)
        if self.since:
            where.append(c.state_changed_at >= self.since)
        if self.until:
            where.append(c.state_changed_at < self.until)
        if self.enqueued_by:
            where.append(c.enqueued_by == self.enqueued_by)
        if self.retrying:
            where += [c.state == lifecycle.SCHEDULED, c.attempt >= 1]
        if self.recurring_id:
            where.append(c.recurring_id == self.recurring_id)
        if self.text:
            pattern = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(or_(c.args.like(pattern, escape="\\"), c.kwargs.like(pattern, escape="\\"),
                             c.exception_message.like(pattern, escape="\\"),
                             c.exception_type.like(pattern, escape="\\")))
        return where


@dataclass
class Page:
    """One page of jobs and the cursor of the next (None at the end)."""

    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(job: Job) -> str:
    """Opaque cursor pointing just after ``job``."""
    raw = json.dumps([job.state_changed_at.isoformat(), job.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_cursor``; ``BadCursor`` when tampered with."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(at), str(job_id)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"invalid cursor: {exc}") from None


def newest_first(job_filter: JobFilter | None) -> list:
    """ORDER BY for lists: newest change first.

    A text search across every state on SQLite orders by ``+column``, which stops SQLite
    walking the whole table in index order looking for a rare term (a scan and a sort
    of the matches is much faster there); PostgreSQL has trigram indexes for it.
    """
    c = Job.__table__.c
    if job_filter and job_filter.text and not job_filter.state and db.engine.dialect.name == "sqlite":
        return [literal_column("+jobs.state_changed_at").desc(), literal_column("+jobs.id").desc()]
    return [c.state_changed_at.desc(), c.id.desc()]


def list_jobs(job_filter: JobFilter | None = None, limit: int = 50, cursor: str | None = None) -> Page:
    """Newest-changed first, ``limit`` per page, continuing after ``cursor``."""
    limit = max(1, min(int(limit), 1000))
    c = Job.__table__.c
    query = select(Job).where(*(job_filter or JobFilter()).clauses())
    if cursor:
        at, job_id = decode_cursor(cursor)
        query = query.where(or_(c.state_changed_at < at, and_(c.state_changed_at == at, c.id < job_id)))
    rows = list(db.session.scalars(query.order_by(*newest_first(job_filter)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def get_job(job_id: str) -> Job | None:
    """A job with its history, or None."""
    return db.session.get(Job, job_id)


def history(job_id: str) -> list[JobState]:
    """Every state a job went through, oldest first."""
    return list(db.session.scalars(select(JobState).where(JobState.job_id == job_id).order_by(JobState.id)))


def state_counts() -> dict[str, int]:
    """Jobs per state (cheap at any size)."""
    with db.engine.connect() as conn:
        return ledger.counts(conn)


def job_summary(job: Job) -> dict:
    """The JSON form of a job for listings and ``--json`` output."""
    iso = lambda v: v.isoformat() + "Z" if v else None  # noqa: E731
    return {
        "id": job.id, "task": job.task, "display_name": job.display_name, "queue": job.queue,
        "priority": job.priority, "state": job.state, "reason": job.state_reason, "attempt": job.attempt,
        "max_attempts": job.max_attempts, "created_at": iso(job.created_at), "enqueued_at": iso(job.enqueued_at),
        "scheduled_for": iso(job.scheduled_for), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at), "state_changed_at": iso(job.state_changed_at),
        "worker": job.worker, "enqueued_by": job.enqueued_by, "exception_type": job.exception_type,
        "exception_message": job.exception_message,
    }


def job_detail(job: Job) -> dict:
    """Everything about a job, history included, as JSON."""
    return {
        **job_summary(job), **job.arguments,
        "result": json.loads(job.result) if job.result else None,
        "exception_traceback": job.exception_traceback,
        "history": [{"state": h.state, "reason": h.reason, "at": h.created_at.isoformat() + "Z", "data": h.details}
                    for h in history(job.id)],
    }


def count_jobs(job_filter: JobFilter | None = None, cap: int = 10_000) -> tuple[int, bool]:
    """How many jobs match, counting at most ``cap`` (returns the count and whether it was capped)."""
    query = select(Job.id).where(*(job_filter or JobFilter()).clauses())
    if db.engine.dialect.name == "postgresql":  # ordered like the list: the planner walks its index
        query = query.order_by(*newest_first(job_filter))
    inner = query.limit(cap + 1).subquery()
    total = db.session.scalar(select(func.count()).select_from(inner)) or 0
    return min(total, cap), total > cap


def throughput(since: datetime, bucket_seconds: int) -> list[dict]:
    """Succeeded and failed jobs per ``bucket_seconds`` since ``since`` (zeros filled), oldest first."""
    bucket_seconds = max(ledger.BUCKET_SECONDS, int(bucket_seconds))
    start = ledger.bucket_of(since, bucket_seconds)
    c = throughput_table.c
    rows = db.session.execute(select(c.bucket, c.state, func.sum(c.count)).where(c.bucket >= start)
                              .group_by(c.bucket, c.state))
    series: dict[datetime, dict] = {}
    at, end = start, ledger.utcnow()
    while at <= end:
        series[at] = {"start": at, "succeeded": 0, "failed": 0}
        at += timedelta(seconds=bucket_seconds)
    for bucket, state, total in rows:
        slot = series.get(ledger.bucket_of(bucket, bucket_seconds))
        if slot is not None:
            slot["succeeded" if state == lifecycle.SUCCEEDED else "failed"] += int(total or 0)
    return list(series.values())


def queue_overview() -> list[dict]:
    """Every known queue: waiting jobs, age of the oldest, paused or not."""
    from tasks.engine import current_engine

    transport = current_engine().transport
    stats, paused = transport.queue_stats(), transport.paused()
    known = set(stats) | paused | set(current_engine().settings.default_queues)
    now = ledger.to_epoch(ledger.utcnow())
    return [{"name": name, "length": stats.get(name, (0, None))[0],
             "oldest_age_seconds": (now - stats[name][1]) if stats.get(name, (0, None))[1] else None,
             "paused": name in paused} for name in sorted(known)]


def workers_overview() -> list[dict]:
    """Registered workers, newest first; ``alive`` is false once a heartbeat is overdue."""
    from tasks.engine import current_engine

    engine = current_engine()
    now = ledger.to_epoch(ledger.utcnow())
    workers = []
    for info in engine.transport.workers():
        workers.append({
            "id": info["id"], "host": info.get("host"), "pid": info.get("pid"), "queues": info.get("queues", []),
            "concurrency": info.get("concurrency"), "in_flight": info.get("in_flight", 0),
            "started": ledger.from_epoch(info.get("started")), "last_beat": ledger.from_epoch(info["last_beat"]),
            "alive": now - info["last_beat"] < engine.settings.dead_after,
        })
    return sorted(workers, key=lambda w: w["started"] or datetime.min, reverse=True)


def recurring_overview() -> list[dict]:
    """Every recurring job with its schedule in words, next run, and last run's state."""
    from tasks.recurring import RecurringJob

    rows = list(db.session.scalars(select(RecurringJob).order_by(RecurringJob.id)))
    last_ids = [r.last_job_id for r in rows if r.last_job_id]
    states = dict(db.session.execute(select(Job.id, Job.state).where(Job.id.in_(last_ids))).all()) if last_ids else {}
    return [{"id": r.id, "task": r.task, "cron": r.cron, "description": r.description, "timezone": r.timezone,
             "queue": r.queue, "misfire": r.misfire, "enabled": r.enabled, "next_run_at": r.next_run_at,
             "last_run_at": r.last_run_at, "last_job_id": r.last_job_id,
             "last_state": states.get(r.last_job_id), "error": r.error} for r in rows]
