"""The job page: arguments (cut short when huge), result, every failed attempt, the history in
words and human units, and the jobs it waits for or that wait for it (continuations).

The summary's timings and the history's use the same measurements and the same units: the
worker's own ``duration_ms``/``latency_ms`` when it recorded them, else the ledger's timestamps.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin.dashboard.formats import Formats, decoded, pretty_json, seconds_between
from tasks import continuations, lifecycle, queries
from tasks.actions import JobAction, actions_for
from tasks.ledger import Job, JobState
from tasks.progress import JobLog, job_logs

#: history data keys shown elsewhere on the page (not repeated in the timeline)
EXCEPTION_KEYS = ("exception_type", "exception_message", "exception_traceback")
#: arguments longer than this (JSON text) are shown cut short, with a download of the whole
ARGUMENTS_SHOWN = 64 * 1024
#: how continuations read, by ``continue_on``
CONDITIONS = {continuations.ON_SUCCESS: "if it succeeds",
              continuations.ON_FINISHED: "when it finishes, however"}
MAX_CONTINUATIONS = 50


# --- the history, in words -------------------------------------------------------------------

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
class Detail:
    """One fact a history row records: its label, its value as text, and a job it links to."""

    label: str
    text: str
    job_id: str | None = None


def milliseconds(value: Any) -> str:
    """A recorded ``…_ms`` value in human units (as the summary shows durations)."""
    return Formats.duration(float(value) / 1000)


def when(value: Any) -> str:
    """A recorded ISO time as an exact UTC time."""
    try:
        return Formats.when(datetime.fromisoformat(str(value))) + " UTC"
    except ValueError:
        return str(value)


#: how each history data key reads: (label, formatter); a formatter None means "link to that job"
DETAILS: dict[str, tuple[str, Any]] = {
    "queue": ("Queue", str),
    "worker": ("Worker", str),
    "attempt": ("Attempt", str),
    "latency_ms": ("Waited in the queue", milliseconds),
    "duration_ms": ("Ran for", milliseconds),
    "retry_in_s": ("Next attempt in", lambda v: Formats.duration(float(v))),
    "scheduled_for": ("Due", when),
    "cancelled": ("Cancel request", str),
    "mutex": ("Waits for the mutex", str),
    "by": ("By", str),
    "lost_worker": ("Worker lost", str),
    "parent": ("Parent job", None),
}


def detail_of(key: str, value: Any) -> Detail:
    """One history data item in words (unknown keys keep their name, values as text or JSON)."""
    if key not in DETAILS:
        text = str(value) if isinstance(value, (str, int, float, bool)) else pretty_json(value)
        return Detail(key.replace("_", " ").capitalize(), text)
    label, shown = DETAILS[key]
    if shown is None:
        return Detail(label, f"#{str(value)[-8:]}", job_id=str(value))
    return Detail(label, shown(value))


@dataclass
class HistoryEntry:
    """One state the job entered: when (exactly, and after how long), why, and the state's own data."""

    state: str
    reason: str
    at: datetime
    details: list[Detail]
    attempt: Attempt | None
    gap: float | None = None  # seconds since the step before


def attempt_of(row: JobState, data: dict) -> Attempt | None:
    """The failure a history row records, if any."""
    if not data.get("exception_type") and not data.get("exception_message"):
        return None
    return Attempt(number=data.get("attempt"), at=row.created_at, worker=data.get("worker"),
                   exception_type=str(data.get("exception_type") or ""),
                   message=str(data.get("exception_message") or ""),
                   traceback=data.get("exception_traceback"))


def history_entry(row: JobState, before: JobState | None) -> HistoryEntry:
    """A timeline entry for one history row (``before``: the row before it, for the gap)."""
    data = row.details if isinstance(row.details, dict) else {}
    details = [detail_of(key, value) for key, value in data.items() if key not in EXCEPTION_KEYS]
    return HistoryEntry(state=row.state, reason=row.reason or "", at=row.created_at, details=details,
                        attempt=attempt_of(row, data),
                        gap=seconds_between(before.created_at, row.created_at) if before else None)


def recorded(rows: list[JobState], key: str) -> float | None:
    """The last value of ``key`` (milliseconds) the history recorded, in seconds."""
    for row in reversed(rows):
        value = row.details.get(key) if isinstance(row.details, dict) else None
        if isinstance(value, (int, float)):
            return float(value) / 1000
    return None


def first_known(*values: float | None) -> float | None:
    """The first value that isn't None."""
    return next((value for value in values if value is not None), None)


# --- arguments ---------------------------------------------------------------------------------

@dataclass
class Arguments:
    """A job's arguments as the page shows them: pretty JSON, or the start of a huge text."""

    text: str
    size: int  # characters of JSON text stored
    cut: bool

    @classmethod
    def of(cls, raw: str | None, default: Any) -> "Arguments":
        """``raw`` JSON text, pretty-printed unless longer than ``ARGUMENTS_SHOWN``."""
        raw = raw or ""
        if len(raw) > ARGUMENTS_SHOWN:
            return cls(text=raw[:ARGUMENTS_SHOWN], size=len(raw.encode("utf-8", "replace")), cut=True)
        return cls(text=pretty_json(decoded(raw or None, default)), size=len(raw), cut=False)


# --- parents and continuations -------------------------------------------------------------------

@dataclass
class Link:
    """A job this one is tied to, and the condition that ties them."""

    job: Job
    condition: str


def parent_link(job: Job) -> Link | None:
    """The job ``job`` waits for (or waited for), if it is a continuation."""
    if not job.parent_id:
        return None
    parent = queries.get_job(job.parent_id)
    return Link(parent, CONDITIONS.get(job.continue_on or "", "")) if parent else None


def continuation_links(job: Job) -> list[Link]:
    """The jobs that wait (or waited) for ``job``."""
    return [Link(child, CONDITIONS.get(child.continue_on or "", ""))
            for child in queries.continuations(job.id, limit=MAX_CONTINUATIONS)]


# --- the page --------------------------------------------------------------------------------------

@dataclass
class JobDetail:
    """Everything the job page shows."""

    job: Job
    args: Arguments
    kwargs: Arguments
    result_json: str | None
    history: list[HistoryEntry]
    attempts: list[Attempt]
    duration: float | None
    latency: float | None
    actions: list[JobAction]
    logs: list[JobLog]
    parent: Link | None
    continuations: list[Link]

    @property
    def running(self) -> bool:
        """True while the job is Processing (its page then refreshes faster, with a progress bar)."""
        return self.job.state == lifecycle.PROCESSING

    @property
    def arguments_cut(self) -> bool:
        """True when the arguments are too long to show whole."""
        return self.args.cut or self.kwargs.cut


def job_detail(job: Job) -> JobDetail:
    """The job page's content for ``job``."""
    rows = queries.history(job.id)
    entries = [history_entry(row, rows[index - 1] if index else None) for index, row in enumerate(rows)]
    return JobDetail(
        job=job, args=Arguments.of(job.args, []), kwargs=Arguments.of(job.kwargs, {}),
        result_json=pretty_json(decoded(job.result)) if job.result is not None else None,
        history=list(reversed(entries)), attempts=[e.attempt for e in entries if e.attempt],
        duration=first_known(recorded(rows, "duration_ms"), seconds_between(job.started_at, job.finished_at)),
        latency=first_known(recorded(rows, "latency_ms"), seconds_between(job.enqueued_at, job.started_at)),
        actions=actions_for(job.state), logs=job_logs(job.id),
        parent=parent_link(job), continuations=continuation_links(job),
    )


def arguments_download(job: Job) -> str:
    """The whole arguments as one JSON document ``{"args": [...], "kwargs": {...}}`` (stored text kept)."""
    return '{"args": ' + (job.args or "[]") + ', "kwargs": ' + (job.kwargs or "{}") + "}\n"
