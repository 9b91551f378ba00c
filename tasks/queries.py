"""Read side of the ledger for the dashboard, the CLI and the JSON API.

Lists use keyset pagination on ``(state_changed_at, id)`` so a page stays
stable while new jobs arrive; counts come from counter deltas, never a full COUNT.

Every read here applies the tenant scope (``tasks.tenancy``): a tenant user's request and a
tenant's job see that tenant's jobs only, whichever function they call.
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal_column, or_, select

from app.extensions import db
from tasks import ledger, lifecycle, search
from tasks.audit import audit_log  # noqa: F401  (part of the read API)
from tasks.ledger import Job, JobState, throughput_table
from tasks.tenancy import current_scope, scope_clauses


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
    tasks: tuple[str, ...] = ()  # any of these tasks (e.g. every task whose name starts "reports.")
    id_prefix: str | None = None  # ids starting with this (lower-case hex)
    tenant: str | None = None  # jobs of this tenant only (a host user's filter)

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
        for key in ("states", "tasks"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def __post_init__(self) -> None:
        for state in (self.state, *self.states):
            if state and state not in lifecycle.STATES:
                raise ValueError(f"unknown state {state!r}; one of {', '.join(lifecycle.STATES)}")

    def clauses(self, with_text: bool = True) -> list:
        """SQL conditions for this filter, within the current tenant scope (``with_text=False``: all but
        the text search)."""
        c = Job.__table__.c
        where = scope_clauses(c)
        if self.tenant:
            where.append(c.tenant == self.tenant)
        if self.state:
            where.append(c.state == self.state)
        if self.states:
            where.append(c.state.in_(self.states))
        if self.queue:
            where.append(c.queue == self.queue)
        if self.task:
            where.append(c.task == self.task)
        if self.tasks:
            where.append(c.task.in_(self.tasks))
        if self.id_prefix:  # ids are hex: "g" sorts after every digit that can follow the prefix
            where += [c.id >= self.id_prefix, c.id < self.id_prefix + "g"]
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
        if self.text and with_text:
            where.append(search.text_condition(self.text, c))
        return where


@dataclass
class Page:
    """One page of jobs and the cursor of the next (None at the end)."""

    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None


#: list orders: the columns a list is sorted by (each ascending or not), the job id breaking ties
ORDERS: dict[str, tuple[tuple[str, bool], ...]] = {
    "changed": (("state_changed_at", False),),  # newest change first
    "due": (("scheduled_for", True),),  # Scheduled: soonest due first
    "run": (("priority", False), ("enqueued_at", True)),  # Enqueued: as workers take them within a queue
}
MAX_CURSOR_LENGTH = 512


def sort_values(job: Job, order: str) -> list:
    """The values of ``job``'s sort columns in ``order`` (times as ISO text)."""
    values = [getattr(job, column) for column, _ in ORDERS[order]]
    return [v.isoformat() if isinstance(v, datetime) else v for v in values]


def encode_cursor(job: Job, order: str = "changed") -> str:
    """Opaque cursor pointing just after ``job`` in a list sorted by ``order``."""
    values = sort_values(job, order)
    raw = [*values, job.id] if order == "changed" else [order, values, job.id]
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: str = "changed") -> tuple[list, str]:
    """The sort values and id a cursor of ``order`` points after; ``BadCursor`` when it isn't one."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if order == "changed":
            at, job_id = raw
            values = [at]
        else:
            named, values, job_id = raw
            if named != order or not isinstance(values, list) or len(values) != len(ORDERS[order]):
                raise ValueError(f"not a cursor of this list (sorted by {order})")
        return [parse_value(column, v) for (column, _), v in zip(ORDERS[order], values)], checked_id(job_id)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"invalid cursor: {exc}") from None


def parse_value(column: str, value):
    """A cursor's value for ``column`` back in the column's type (``ValueError`` when it can't be one)."""
    if value is None:
        return None
    if column == "priority":
        number = int(value)
        if abs(number) >= 2 ** 31:
            raise ValueError("priority out of range")
        return number
    return datetime.fromisoformat(value)


def checked_id(job_id) -> str:
    """A cursor's job id: printable text of at most 64 characters (``ValueError`` otherwise)."""
    if not isinstance(job_id, str) or len(job_id) > 64 or not job_id.isprintable():
        raise ValueError("not a job id")
    return job_id


def sort_columns(order: str, c) -> list:
    """ORDER BY for a list sorted by ``order`` over the columns ``c`` (the id breaks ties in the last
    column's direction)."""
    columns = [c[name].asc() if ascending else c[name].desc() for name, ascending in ORDERS[order]]
    return columns + [c.id.asc() if ORDERS[order][-1][1] else c.id.desc()]


def order_by(job_filter: JobFilter | None, order: str) -> list:
    """ORDER BY for a list sorted by ``order``."""
    return sort_columns(order, Job.__table__.c)


def after_cursor(order: str, values: list, job_id: str):
    """The condition "comes after (values, job_id)" in a list sorted by ``order`` (keyset paging)."""
    c = Job.__table__.c
    keys = ORDERS[order]
    id_after = c.id > job_id if keys[-1][1] else c.id < job_id
    condition = id_after
    for (name, ascending), value in reversed(list(zip(keys, values))):
        column = c[name]
        beyond = column > value if ascending else column < value
        condition = or_(beyond, and_(column == value, condition))
    return condition


def list_jobs(job_filter: JobFilter | None = None, limit: int = 50, cursor: str | None = None,
              order: str = "changed") -> Page:
    """A page of jobs sorted by ``order`` (see ``ORDERS``), ``limit`` a page, continuing after ``cursor``."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; one of {', '.join(ORDERS)}")
    limit = max(1, min(int(limit), 1000))
    job_filter = job_filter or JobFilter()
    after = []
    if cursor:
        values, job_id = decode_cursor(cursor, order)
        after.append(after_cursor(order, values, job_id))
    if job_filter.text:
        ids = search.matching_ids(job_filter.text, job_filter.clauses(with_text=False) + after,
                                  lambda columns: sort_columns(order, columns), limit + 1)
        found = {job.id: job for job in db.session.scalars(select(Job).where(Job.id.in_(ids)))}
        rows = [found[job_id] for job_id in ids if job_id in found]
    else:
        query = select(Job).where(*job_filter.clauses(), *after).order_by(*order_by(job_filter, order))
        rows = list(db.session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1], order) if more and rows else None)


def get_job(job_id: str) -> Job | None:
    """A job with its history, or None (also for a job outside the current tenant scope)."""
    job = db.session.get(Job, job_id)
    scope = current_scope()
    return None if job is None or (scope is not None and job.tenant != scope) else job


def job_ids_starting(prefix: str, limit: int = 2) -> list[str]:
    """Ids of jobs whose id starts with ``prefix`` (lower-case hex), in id order: a range on the key."""
    query = select(Job.id).where(*JobFilter(id_prefix=prefix).clauses()).order_by(Job.id).limit(limit)
    return list(db.session.scalars(query))


def job_ids_ending(suffix: str, limit: int = 2) -> list[str]:
    """Ids of jobs whose id ends with ``suffix`` (the short ``#1a2b3c4d`` the dashboard shows)."""
    pattern = "%" + suffix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(Job.id).where(Job.id.like(pattern, escape="\\"), *scope_clauses(Job.__table__.c))
    return list(db.session.scalars(query.limit(limit)))


def continuations(job_id: str, limit: int = 50) -> list[Job]:
    """The jobs that wait (or waited) for ``job_id`` to finish, oldest first."""
    query = (select(Job).where(Job.parent_id == job_id, *scope_clauses(Job.__table__.c))
             .order_by(Job.created_at, Job.id).limit(limit))
    return list(db.session.scalars(query))


def history(job_id: str) -> list[JobState]:
    """Every state a job went through, oldest first."""
    return list(db.session.scalars(select(JobState).where(JobState.job_id == job_id).order_by(JobState.id)))


def state_counts() -> dict[str, int]:
    """Jobs per state: from the counter deltas (cheap at any size), or for a tenant scope counted on the
    tenant's index."""
    if current_scope() is None:
        with db.engine.connect() as conn:
            return ledger.counts(conn)
    c = Job.__table__.c
    totals = {state: 0 for state in lifecycle.STATES}
    rows = db.session.execute(select(c.state, func.count()).where(*scope_clauses(c)).group_by(c.state))
    totals.update({state: int(count) for state, count in rows})
    return totals


def job_summary(job: Job) -> dict:
    """The JSON form of a job for listings and ``--json`` output."""
    iso = lambda v: v.isoformat() + "Z" if v else None  # noqa: E731
    return {
        "id": job.id, "task": job.task, "display_name": job.display_name, "queue": job.queue,
        "priority": job.priority, "state": job.state, "reason": job.state_reason, "attempt": job.attempt,
        "max_attempts": job.max_attempts, "created_at": iso(job.created_at),
        "enqueued_at": iso(job.enqueued_at),
        "scheduled_for": iso(job.scheduled_for), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at), "state_changed_at": iso(job.state_changed_at),
        "worker": job.worker, "enqueued_by": job.enqueued_by, "exception_type": job.exception_type,
        "exception_message": job.exception_message, "tenant": job.tenant,
    }


def job_detail(job: Job) -> dict:
    """Everything about a job, history included, as JSON."""
    return {
        **job_summary(job), **job.arguments,
        "result": json.loads(job.result) if job.result else None,
        "exception_traceback": job.exception_traceback,
        "history": [{"state": h.state, "reason": h.reason, "at": h.created_at.isoformat() + "Z",
                     "data": h.details}
                    for h in history(job.id)],
    }


def count_jobs(job_filter: JobFilter | None = None, cap: int = 10_000) -> tuple[int, bool]:
    """How many jobs match, counting at most ``cap`` (returns the count and whether it was capped)."""
    job_filter = job_filter or JobFilter()
    if job_filter.text:  # counted as the list finds them (see ``tasks.search``)
        found = search.count_matches(job_filter.text, job_filter.clauses(with_text=False),
                                     lambda columns: sort_columns("changed", columns), cap)
        return min(found, cap), found > cap
    query = select(Job.id).where(*job_filter.clauses())
    if db.engine.dialect.name == "postgresql":  # ordered like the list: the planner walks its index
        query = query.order_by(*order_by(job_filter, "changed"))
    inner = query.limit(cap + 1).subquery()
    total = db.session.scalar(select(func.count()).select_from(inner)) or 0
    return min(total, cap), total > cap


def throughput(since: datetime, bucket_seconds: int) -> list[dict]:
    """Succeeded and failed jobs per ``bucket_seconds`` since ``since`` (zeros filled), oldest first."""
    bucket_seconds = max(ledger.BUCKET_SECONDS, int(bucket_seconds))
    start = ledger.bucket_of(since, bucket_seconds)
    if current_scope() is None:
        c = throughput_table.c
        rows = db.session.execute(select(c.bucket, c.state, func.sum(c.count)).where(c.bucket >= start)
                                  .group_by(c.bucket, c.state))
    else:  # a tenant's finished jobs still in the ledger (Succeeded ones expire with their retention)
        rows = tenant_throughput(start, bucket_seconds)
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


def tenant_throughput(start: datetime, bucket_seconds: int) -> list[tuple[datetime, str, int]]:
    """(bucket start, state, jobs) of the scoped tenant's jobs that finished since ``start``, counted by
    the database per ``bucket_seconds`` (a busy tenant has thousands a day: never fetched one by one)."""
    j = Job.__table__.c
    if db.engine.dialect.name == "postgresql":
        number = literal_column(f"FLOOR(EXTRACT(EPOCH FROM jobs.finished_at) / {int(bucket_seconds)})")
    else:
        number = literal_column(f"CAST(strftime('%s', jobs.finished_at) AS INTEGER) / {int(bucket_seconds)}")
    # a finished job's state changed when it finished: the condition on state_changed_at lets the
    # (tenant, state, state_changed_at) index find the rows
    query = (select(number, j.state, func.count()).where(
        *scope_clauses(j), j.state.in_(ledger.THROUGHPUT_STATES), j.state_changed_at >= start,
        j.finished_at >= start).group_by(number, j.state))
    return [(ledger.from_epoch(int(n) * bucket_seconds), state, count)
            for n, state, count in db.session.execute(query)]


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


def ledger_queue_overview() -> list[dict]:
    """Every known queue from the ledger alone (for when the transport can't answer): Enqueued jobs,
    age of the oldest; ``paused`` is unknown (None)."""
    from tasks.engine import current_engine

    c = Job.__table__.c
    rows = db.session.execute(select(c.queue, func.count(), func.min(c.enqueued_at))
                              .where(c.state == lifecycle.ENQUEUED, *scope_clauses(c))
                              .group_by(c.queue)).all()
    stats = {queue: (count, oldest) for queue, count, oldest in rows}
    now = ledger.utcnow()
    known = set(stats) | set(current_engine().settings.default_queues)
    return [{"name": name, "length": stats.get(name, (0, None))[0],
             "oldest_age_seconds": (now - stats[name][1]).total_seconds() if stats.get(name, (0, None))[1]
             else None, "paused": None} for name in sorted(known)]


def workers_overview() -> list[dict]:
    """Registered workers, newest first; ``alive`` is false once a heartbeat is overdue."""
    from tasks.engine import current_engine

    engine = current_engine()
    now = ledger.to_epoch(ledger.utcnow())
    workers = []
    for info in engine.transport.workers():
        workers.append({
            "id": info["id"], "host": info.get("host"), "pid": info.get("pid"),
            "queues": info.get("queues", []),
            "concurrency": info.get("concurrency"), "in_flight": info.get("in_flight", 0),
            "ledger_backlog": info.get("ledger_backlog", 0),
            "started": ledger.from_epoch(info.get("started")),
            "last_beat": ledger.from_epoch(info["last_beat"]),
            "alive": now - info["last_beat"] < engine.settings.dead_after,
        })
    return sorted(workers, key=lambda w: w["started"] or datetime.min, reverse=True)


def recurring_overview() -> list[dict]:
    """Every recurring job with its schedule in words, next run, and last run's state."""
    from tasks.recurring import RecurringJob

    scope = current_scope()  # a tenant sees its own recurring jobs; the host every one
    query = select(RecurringJob).order_by(RecurringJob.id)
    rows = list(db.session.scalars(query if scope is None else query.where(RecurringJob.tenant == scope)))
    last_ids = [r.last_job_id for r in rows if r.last_job_id]
    states = (dict(db.session.execute(select(Job.id, Job.state).where(Job.id.in_(last_ids))).all())
              if last_ids else {})
    return [{"id": r.id, "task": r.task, "cron": r.cron, "description": r.description, "timezone": r.timezone,
             "queue": r.queue, "misfire": r.misfire, "enabled": r.enabled, "next_run_at": r.next_run_at,
             "last_run_at": r.last_run_at, "last_job_id": r.last_job_id,
             "last_state": states.get(r.last_job_id), "error": r.error, "tenant": r.tenant} for r in rows]
