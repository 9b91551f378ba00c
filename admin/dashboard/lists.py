"""The dashboard's job lists and how a request picks jobs from them.

A list (``/hangfire/jobs/<slug>``) is one state (or the retries, or every job); the
query string narrows it (task, queue, time range, text, who enqueued it) and pages
through it with the ledger's keyset cursors. The same parsing serves the HTML pages,
the exports and the JSON API.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from admin.dashboard.search import expand_tasks, id_candidate
from tasks import lifecycle
from tasks.actions import JOB_ACTIONS, JobAction, actions_for
from tasks.queries import BadCursor, JobFilter, decode_cursor

PAGE_SIZES = (20, 50, 100, 500)
DEFAULT_PAGE_SIZE = PAGE_SIZES[0]
API_MAX_PAGE = 1000
COUNT_CAP = 10_000
#: the retries counter (overview, sidebar, stats) counts this far: "attempt >= 1" has no index to count on
RETRY_COUNT_CAP = 1_000
#: a text search counts matches only this far (× page size, at least 100): LIKE '%…%' can't use an index
TEXT_COUNT_PAGES = 5
TEXT_COUNT_MIN = 100
ORDER_LABELS = {"changed": "newest first", "due": "soonest due first",
                "run": "in the order workers take them (per queue: priority, then oldest)"}
#: query parameters that narrow a list (the cursor and page size are not part of the filter)
FILTER_PARAMS = ("q", "task", "queue", "enqueued_by", "since", "until", "recurring", "id", "tenant")
FILTER_LABELS = {"q": "text", "task": "task", "queue": "queue", "enqueued_by": "enqueued by",
                 "since": "since",
                 "until": "before", "recurring": "recurring job", "id": "id starts", "tenant": "tenant"}


def named(*names: str) -> tuple[JobAction, ...]:
    """The registry's actions called ``names``, in that order."""
    return tuple(JOB_ACTIONS[name] for name in names)


@dataclass(frozen=True)
class JobList:
    """One of the dashboard's lists: which state it shows and which actions it offers."""

    slug: str
    title: str
    state: str | None = None
    retrying: bool = False
    actions: tuple[JobAction, ...] = ()
    columns: tuple[str, ...] = ("state", "queue", "changed")
    empty: str = "No jobs."
    #: how the list is sorted (``tasks.queries.ORDERS``): newest change, soonest due, or run order
    order: str = "changed"

    @property
    def order_label(self) -> str:
        """How the list is sorted, in words."""
        return ORDER_LABELS[self.order]

    @property
    def bulk_actions(self) -> tuple[JobAction, ...]:
        """The actions this list offers on everything matching its filter."""
        return tuple(action for action in self.actions if action.bulk)

    def job_filter(self, **narrowing) -> JobFilter:
        """This list's jobs, narrowed by ``narrowing`` (JobFilter fields)."""
        return JobFilter(state=self.state, retrying=self.retrying, **narrowing)


JOB_LISTS: dict[str, JobList] = {job_list.slug: job_list for job_list in (
    JobList("enqueued", "Enqueued", lifecycle.ENQUEUED, actions=named("delete"),
            columns=("queue", "enqueued", "by"), empty="No job is waiting.", order="run"),
    JobList("scheduled", "Scheduled", lifecycle.SCHEDULED, actions=named("trigger", "delete"),
            columns=("queue", "due", "by"), empty="Nothing is scheduled.", order="due"),
    JobList("processing", "Processing", lifecycle.PROCESSING, actions=named("cancel", "delete"),
            columns=("worker", "started", "attempt", "progress"), empty="No job is running."),
    JobList("succeeded", "Succeeded", lifecycle.SUCCEEDED, actions=named("requeue"),
            columns=("duration", "latency", "finished")),
    JobList("failed", "Failed", lifecycle.FAILED, actions=named("retry", "delete"),
            columns=("exception", "attempt", "failed"), empty="No failed jobs."),
    JobList("deleted", "Deleted", lifecycle.DELETED, actions=named("requeue"),
            columns=("reason", "finished")),
    JobList("awaiting", "Awaiting", lifecycle.AWAITING, actions=named("delete"),
            columns=("queue", "created", "reason")),
    JobList("retries", "Retries", retrying=True, actions=named("trigger", "delete"),
            columns=("due", "attempt", "exception"), empty="No job waits for a retry.", order="due"),
    JobList("all", "All jobs", actions=named("requeue", "trigger", "delete")),
)}
#: the lists shown in the jobs sidebar, in lifecycle order
STATE_LISTS = tuple(JOB_LISTS[slug] for slug in
                    ("enqueued", "scheduled", "processing", "succeeded", "failed", "deleted", "awaiting"))


def list_for_state(state: str | None) -> JobList:
    """The list showing ``state`` (every job for None)."""
    for job_list in STATE_LISTS:
        if job_list.state == state:
            return job_list
    return JOB_LISTS["all"]


def row_action(state: str) -> JobAction | None:
    """The one-click action offered on a list row in ``state`` (Retry a failure, run a scheduled job now,
    cancel a running one); Delete stays with the selection toolbar."""
    offered = [action for action in actions_for(state) if action.name != "delete"]
    return offered[0] if offered else None


MAX_JOB_ID = 64


def is_job_id(text: str) -> bool:
    """True when ``text`` could be a job id (short, printable): anything else can't name a job."""
    return 0 < len(text) <= MAX_JOB_ID and text.isprintable()


class BadListQuery(ValueError):
    """A list request that can't be answered (e.g. a tampered cursor)."""


@dataclass
class ListQuery:
    """A parsed list request: the filter, page size, cursor and the parameters that produced them."""

    job_list: JobList
    job_filter: JobFilter
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def link_params(self, **changes) -> dict[str, str]:
        """Query parameters keeping this filter and page size (``changes`` override, None drops)."""
        params = dict(self.params)
        if self.limit != DEFAULT_PAGE_SIZE:
            params["limit"] = str(self.limit)
        for name, value in changes.items():
            if value in (None, ""):
                params.pop(name, None)
            else:
                params[name] = str(value)
        return params

    @property
    def narrowed(self) -> bool:
        """True when any filter parameter is set."""
        return bool(self.params)


def parse_time(value: str) -> datetime:
    """A naive UTC datetime from ``2026-11-22T07:30`` (taken as UTC) or an ISO time with an offset."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def page_size(value: str | None, problems: list[str], any_size: bool = False) -> int:
    """The requested page size: one of ``PAGE_SIZES`` (or 1..``API_MAX_PAGE`` for ``any_size``).

    Anything else gives the default, and the reason is noted in ``problems``.
    """
    if not value:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        size = 0
    if any_size and 1 <= size <= API_MAX_PAGE:
        return size
    if not any_size and size in PAGE_SIZES:
        return size
    allowed = f"1 to {API_MAX_PAGE}" if any_size else "one of " + ", ".join(map(str, PAGE_SIZES))
    problems.append(f"Page size must be {allowed}; showing {DEFAULT_PAGE_SIZE}.")
    return DEFAULT_PAGE_SIZE


def narrowing(args: Mapping[str, str], problems: list[str]) -> tuple[dict, dict[str, str]]:
    """JobFilter fields and the kept query parameters from ``args``.

    Unreadable times are noted in ``problems`` and dropped.
    """
    params = {name: args.get(name, "").strip() for name in FILTER_PARAMS}
    params = {name: value[:500] for name, value in params.items() if value}
    fields: dict = {"text": params.get("q"), "task": params.get("task"), "queue": params.get("queue"),
                    "enqueued_by": params.get("enqueued_by"), "recurring_id": params.get("recurring"),
                    "tenant": params.get("tenant")}
    tasks = expand_tasks(params.get("task", ""))
    if tasks:  # "reports.*": every task whose name starts "reports." (none known: the name matches nothing)
        fields.update(task=None, tasks=tasks)
    if "id" in params:
        candidate = id_candidate("#" + params["id"])
        if candidate:
            fields["id_prefix"] = candidate
        else:
            problems.append(f"“{params.pop('id')}” is not the start of a job id (hex digits).")
    for name in ("since", "until"):
        if name in params:
            try:
                fields[name] = parse_time(params[name])
            except ValueError:
                problems.append(f"“{params.pop(name)}” is not a date and time (use 2026-11-22T07:30, UTC).")
    return fields, params


def checked_cursor(cursor: str | None, order: str) -> str | None:
    """``cursor`` if the ledger can read it for a list sorted by ``order``; ``BadListQuery`` otherwise."""
    if not cursor:
        return None
    try:
        decode_cursor(cursor, order)
    except BadCursor as exc:
        raise BadListQuery(str(exc)) from None
    return cursor


def parse_list_query(job_list: JobList, args: Mapping[str, str], any_size: bool = False) -> ListQuery:
    """Read a list query string (``q``, ``task``, ``queue``, ``since``, ``until``, ``recurring``)."""
    problems: list[str] = []
    fields, params = narrowing(args, problems)
    return ListQuery(job_list=job_list, job_filter=job_list.job_filter(**fields),
                     limit=page_size(args.get("limit"), problems, any_size),
                     cursor=checked_cursor(args.get("cursor"), job_list.order), params=params,
                     problems=problems)


def api_list_query(args: Mapping[str, str]) -> ListQuery:
    """A JSON API list request: like a page's, with ``state`` (or ``retrying=1``) choosing the list."""
    state = args.get("state") or None
    if state and state not in lifecycle.STATES:
        raise BadListQuery(f"unknown state {state!r}; one of {', '.join(lifecycle.STATES)}")
    retrying = args.get("retrying", "").lower() in ("1", "true", "yes")
    job_list = JOB_LISTS["retries"] if retrying else list_for_state(state)
    query = parse_list_query(job_list, args, any_size=True)
    if query.problems:
        raise BadListQuery(" ".join(query.problems))
    return query
