"""What the dashboard shows, read from the engine's query API and shaped for templates and JSON.

Nothing here writes. Times are naive UTC, as the ledger keeps them; :class:`Formats`
turns them into text for the pages.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from admin.dashboard.charts import WIDE, Chart, throughput_chart
from admin.dashboard.formats import Formats
from admin.dashboard.live import queue_rows, worker_counts
from admin.dashboard.lists import (
    COUNT_CAP,
    RETRY_COUNT_CAP,
    TEXT_COUNT_MIN,
    TEXT_COUNT_PAGES,
    STATE_LISTS,
    ListQuery,
    row_action,
)
from app.extensions import db
from tasks import lifecycle, queries
from tasks.actions import JobAction, actions_for
from tasks.ledger import Job, JobState, utcnow
from tasks.progress import JobLog, job_logs
from tasks.queries import JobFilter
from tasks.recurring import RecurringJob

#: history data keys shown elsewhere on the detail page (not repeated in the timeline's table)
EXCEPTION_KEYS = ("exception_type", "exception_message", "exception_traceback")


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def one_line(value: Any) -> str:
    """``value`` as compact JSON on one line."""
    return json.dumps(value, ensure_ascii=False, default=str)


def decoded(text: str | None, default: Any = None) -> Any:
    """JSON text from the ledger decoded; the raw text when it isn't JSON."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return text


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds, or None when either is missing or they are out of order."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def duration_of(job: Job) -> float | None:
    """How long the last run took (started → finished)."""
    return seconds_between(job.started_at, job.finished_at)


def latency_of(job: Job) -> float | None:
    """How long the job waited in its queue before it started."""
    return seconds_between(job.enqueued_at, job.started_at)


# --- overview --------------------------------------------------------------------------------

@dataclass
class Overview:
    """The overview page: counters, workers and the three graphs."""

    counts: dict[str, int]
    retries: int
    retries_capped: bool
    recurring: int
    workers_alive: int | None  # None: unknown (the transport doesn't answer)
    workers_dead: int | None
    unread_queues: list[dict] = field(default_factory=list)  # queues with jobs waiting and no live reader
    charts: list[Chart] = field(default_factory=list)

    def as_json(self) -> dict:
        """The counters as the JSON API's ``stats`` answer."""
        return {"states": self.counts, "retries": self.retries, "retries_capped": self.retries_capped,
                "recurring": self.recurring,
                "workers": {"alive": self.workers_alive, "dead": self.workers_dead},
                "unread_queues": [q["name"] for q in self.unread_queues]}


def retry_count() -> tuple[int, bool]:
    """How many Scheduled jobs wait for another attempt (capped at ``RETRY_COUNT_CAP``)."""
    return queries.count_jobs(JobFilter(retrying=True), cap=RETRY_COUNT_CAP)


def recurring_count() -> int:
    """How many recurring jobs are registered."""
    return db.session.scalar(select(func.count()).select_from(RecurringJob)) or 0


def throughput_charts(now: datetime) -> list[Chart]:
    """Realtime (5 s over 5 min), by hour over a day and by day over a week."""
    return [
        throughput_chart("realtime", "Realtime: last 5 minutes",
                         queries.throughput(now - timedelta(minutes=5), 5), 5, "%H:%M", every=12, width=WIDE),
        throughput_chart("day", "History: last 24 hours", queries.throughput(now - timedelta(hours=23), 3600),
                         3600, "%H:00", every=4, title_format="%Y-%m-%d %H:00"),
        throughput_chart("week", "History: last 7 days", queries.throughput(now - timedelta(days=6), 86400),
                         86400, "%a %d", every=1, title_format="%Y-%m-%d"),
    ]


def overview(with_charts: bool = True) -> Overview:
    """Everything on the overview page (``with_charts=False`` for the JSON stats)."""
    retries, capped = retry_count()
    alive, dead = worker_counts()
    unread = [queue for queue in queue_rows() if queue["unread"] and queue["length"]]
    return Overview(counts=queries.state_counts(), retries=retries, retries_capped=capped,
                    recurring=recurring_count(), workers_alive=alive, workers_dead=dead, unread_queues=unread,
                    charts=throughput_charts(utcnow()) if with_charts else [])


# --- lists -----------------------------------------------------------------------------------

def list_menu(counts: dict[str, int], retries: tuple[int, bool]) -> list[tuple[str, str, str]]:
    """The list menu's entries: (slug, title, count as text), the states in lifecycle order first."""
    entries = [(item.slug, item.title, Formats.count(counts.get(item.state, 0))) for item in STATE_LISTS]
    return entries + [("retries", "Retries", Formats.count(*retries)), ("all", "All jobs", "")]


@dataclass
class JobRow:
    """One job in a list, with what its list's columns need."""

    job: Job
    duration: float | None
    latency: float | None
    action: JobAction | None

    @property
    def arguments_preview(self) -> str:
        """Arguments on one line, cut to 120 characters."""
        args, kwargs = decoded(self.job.args, []), decoded(self.job.kwargs, {})
        parts = [one_line(a) for a in (args if isinstance(args, list) else [args])]
        if isinstance(kwargs, dict):
            parts += [f"{k}={one_line(v)}" for k, v in kwargs.items()]
        text = ", ".join(parts)
        return text if len(text) <= 120 else text[:119] + "…"


@dataclass
class JobPage:
    """A page of a list: its rows, the next cursor and the (capped) number of matches."""

    query: ListQuery
    rows: list[JobRow]
    next_cursor: str | None
    total: int
    capped: bool

    def as_json(self) -> dict:
        """The JSON API's list answer."""
        return {"jobs": [queries.job_summary(row.job) | {"duration_s": row.duration, "latency_s": row.latency}
                         for row in self.rows],
                "next_cursor": self.next_cursor, "count": self.total, "count_capped": self.capped,
                "limit": self.query.limit}


def job_row(job: Job) -> JobRow:
    """The list row of ``job``."""
    return JobRow(job=job, duration=duration_of(job), latency=latency_of(job), action=row_action(job.state))


def count_cap(query: ListQuery) -> int:
    """How far to count a list's matches: ``COUNT_CAP``, or a few pages for a text search."""
    if query.job_filter.text:
        return max(TEXT_COUNT_PAGES * query.limit, TEXT_COUNT_MIN)
    return COUNT_CAP


def job_page(query: ListQuery) -> JobPage:
    """One page of ``query``'s list and how many jobs match in all (capped at ``COUNT_CAP``).

    A first page that holds every match is its own count (no second scan for rare searches).
    """
    page = queries.list_jobs(query.job_filter, limit=query.limit, cursor=query.cursor, order=query.job_list.order)
    if query.cursor is None and page.next_cursor is None:
        total, capped = len(page.jobs), False
    else:
        total, capped = queries.count_jobs(query.job_filter, cap=count_cap(query))
    return JobPage(query=query, rows=[job_row(job) for job in page.jobs], next_cursor=page.next_cursor,
                   total=total, capped=capped)


# --- job detail ------------------------------------------------------------------------------

@dataclass
class Attempt:
    """One failed run of a job, from its history."""

    number: int | None
    at: datetime
    worker: str | None
    exception_type: str
    message: str
    traceback: str | None


@dataclass
class HistoryEntry:
    """One state the job entered: when, why and the state's own data."""

    state: str
    reason: str
    at: datetime
    details: list[tuple[str, str]]
    attempt: Attempt | None


def detail_value(value: Any) -> str:
    """A history data value as text: scalars as they are, the rest as pretty JSON."""
    return str(value) if isinstance(value, (str, int, float, bool)) or value is None else pretty_json(value)


def attempt_of(row: JobState, data: dict) -> Attempt | None:
    """The failure a history row records, if any."""
    if not data.get("exception_type") and not data.get("exception_message"):
        return None
    return Attempt(number=data.get("attempt"), at=row.created_at, worker=data.get("worker"),
                   exception_type=str(data.get("exception_type") or ""),
                   message=str(data.get("exception_message") or ""),
                   traceback=data.get("exception_traceback"))


def history_entry(row: JobState) -> HistoryEntry:
    """A timeline entry for one history row."""
    data = row.details if isinstance(row.details, dict) else {}
    details = [(key, detail_value(value)) for key, value in sorted(data.items()) if key not in EXCEPTION_KEYS]
    return HistoryEntry(state=row.state, reason=row.reason or "", at=row.created_at, details=details,
                        attempt=attempt_of(row, data))


@dataclass
class JobDetail:
    """Everything the job page shows."""

    job: Job
    args_json: str
    kwargs_json: str
    result_json: str | None
    history: list[HistoryEntry]
    attempts: list[Attempt]
    duration: float | None
    latency: float | None
    actions: list[JobAction]
    logs: list[JobLog]

    @property
    def running(self) -> bool:
        """True while the job is Processing (its page then refreshes faster)."""
        return self.job.state == lifecycle.PROCESSING


def recorded_latency(history: list[JobState]) -> float | None:
    """The queue latency the worker measured at the last claim (history data ``latency_ms``)."""
    for row in reversed(history):
        latency = row.details.get("latency_ms") if isinstance(row.details, dict) else None
        if latency is not None:
            return float(latency) / 1000
    return None


def job_detail(job: Job) -> JobDetail:
    """The job page's content for ``job``."""
    rows = queries.history(job.id)
    entries = [history_entry(row) for row in rows]
    return JobDetail(
        job=job, args_json=pretty_json(decoded(job.args, [])),
        kwargs_json=pretty_json(decoded(job.kwargs, {})),
        result_json=pretty_json(decoded(job.result)) if job.result is not None else None,
        history=list(reversed(entries)), attempts=[e.attempt for e in entries if e.attempt],
        duration=duration_of(job), latency=first_known(recorded_latency(rows), latency_of(job)),
        actions=actions_for(job.state), logs=job_logs(job.id),
    )


def first_known(*values: float | None) -> float | None:
    """The first value that isn't None."""
    return next((value for value in values if value is not None), None)


# --- recurring jobs --------------------------------------------------------------------------

def recurring_rows() -> list[dict]:
    """Every recurring job: schedule (and in words), zone, next run, last run and its state, error."""
    return queries.recurring_overview()


# --- audit ----------------------------------------------------------------------------------

@dataclass
class AuditRow:
    """One audit entry, decoded for display."""

    id: int
    at: datetime
    user: str | None
    action: str
    job_ids: list[str]
    job_filter: dict | None
    count: int

    def as_json(self) -> dict:
        """The JSON API form."""
        return {"id": self.id, "at": Formats.iso(self.at), "user": self.user, "action": self.action,
                "job_ids": self.job_ids, "filter": self.job_filter, "count": self.count}


def audit_rows(limit: int = 100, cursor: int | None = None) -> tuple[list[AuditRow], int | None]:
    """A page of the audit log, newest first, and the cursor of the next page."""
    entries, next_cursor = queries.audit_log(limit=limit, cursor=cursor)
    return [AuditRow(id=e.id, at=e.at, user=e.user, action=e.action, job_ids=e.ids, job_filter=e.filter,
                     count=e.count) for e in entries], next_cursor
