"""What the dashboard shows, read from the engine's query API and shaped for templates and JSON.

Nothing here writes. Times are naive UTC, as the ledger keeps them; :class:`Formats`
turns them into text for the pages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from admin.dashboard.charts import WIDE, Chart, throughput_chart
from admin.dashboard.formats import Formats, decoded, one_line, seconds_between
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
from app.alerts import open_incidents
from app.extensions import db
from tasks import queries
from tasks.actions import JobAction
from tasks.ledger import Job, utcnow
from tasks.queries import JobFilter
from tasks.recurring import RecurringJob
from tasks.tenancy import current_scope

#: a list row previews this many characters of arguments (longer stored text is cut before decoding)
PREVIEW = 120


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
    incidents: list = field(default_factory=list)  # open alert incidents (app.alerts), oldest first

    def as_json(self) -> dict:
        """The counters as the JSON API's ``stats`` answer."""
        return {"states": self.counts, "retries": self.retries, "retries_capped": self.retries_capped,
                "recurring": self.recurring,
                "workers": {"alive": self.workers_alive, "dead": self.workers_dead},
                "unread_queues": [q["name"] for q in self.unread_queues],
                "incidents": [incident.as_json() for incident in self.incidents]}


def retry_count() -> tuple[int, bool]:
    """How many Scheduled jobs wait for another attempt (capped at ``RETRY_COUNT_CAP``)."""
    return queries.count_jobs(JobFilter(retrying=True), cap=RETRY_COUNT_CAP)


def recurring_count() -> int:
    """How many recurring jobs are registered (as many as the recurring list shows)."""
    if current_scope() is not None:
        return len(queries.recurring_overview())
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
                    charts=throughput_charts(utcnow()) if with_charts else [], incidents=open_incidents())


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
        """Arguments on one line, cut to ``PREVIEW`` characters (huge ones aren't decoded at all)."""
        args, kwargs = self.job.args or "[]", self.job.kwargs or "{}"
        if len(args) + len(kwargs) > 16 * PREVIEW:
            text = args[1:] if args.startswith("[") else args
        else:
            decoded_args, decoded_kwargs = decoded(args, []), decoded(kwargs, {})
            positional = decoded_args if isinstance(decoded_args, list) else [decoded_args]
            parts = [one_line(a) for a in positional]
            if isinstance(decoded_kwargs, dict):
                parts += [f"{k}={one_line(v)}" for k, v in decoded_kwargs.items()]
            text = ", ".join(parts)
        return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"


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
    page = queries.list_jobs(query.job_filter, limit=query.limit, cursor=query.cursor,
                             order=query.job_list.order)
    if query.cursor is None and page.next_cursor is None:
        total, capped = len(page.jobs), False
    else:
        total, capped = queries.count_jobs(query.job_filter, cap=count_cap(query))
    return JobPage(query=query, rows=[job_row(job) for job in page.jobs], next_cursor=page.next_cursor,
                   total=total, capped=capped)


# --- recurring jobs --------------------------------------------------------------------------

def recurring_rows() -> list[dict]:
    """Every recurring job: schedule (and in words), zone, next run, last run and its state, error."""
    return queries.recurring_overview()
