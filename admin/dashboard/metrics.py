"""The Metrics page (Sidekiq 7 style): per task, over the last hour, day or week.

For each task: runs (attempts that ended), failures (attempts that raised, retried or not),
failure rate, run time p50 and p95, queue wait (p95 and mean: enqueue or due time → start) and
a sparkline of runs and failures per slot. Figures come from ``tasks.metrics`` (per-minute and
per-hour rows the completer writes with every batch), never from a scan of the jobs table,
and percentiles are estimated from histogram bands.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from admin.dashboard.charts import Sparkline, sparkline
from admin.dashboard.formats import Formats
from tasks import metrics
from tasks.ledger import utcnow


@dataclass(frozen=True)
class Window:
    """A time window of the page: its name, title, and the slots its sparklines have."""

    name: str
    title: str
    slot_seconds: int
    slots: int
    label_format: str

    def start(self, now: datetime) -> datetime:
        """The start of the oldest slot (slots are aligned to UTC multiples of their length)."""
        epoch = int((now - datetime(1970, 1, 1)).total_seconds())
        current = datetime(1970, 1, 1) + timedelta(seconds=epoch - epoch % self.slot_seconds)
        return current - timedelta(seconds=self.slot_seconds * (self.slots - 1))


WINDOWS: dict[str, Window] = {window.name: window for window in (
    Window("hour", "Last hour", 60, 60, "%H:%M"),
    Window("day", "Last 24 hours", 3600, 24, "%a %H:00"),
    Window("week", "Last 7 days", 6 * 3600, 28, "%a %d %H:00"),
)}
DEFAULT_WINDOW = "hour"


class UnknownWindow(ValueError):
    """A window name that isn't one of ``WINDOWS``."""

    def __init__(self, name: str):
        super().__init__(f"“window” must be one of {', '.join(WINDOWS)}, not {name[:40]!r}")


def window_named(name: str | None) -> Window:
    """The window called ``name`` (the default when empty); ``UnknownWindow`` otherwise."""
    window = WINDOWS.get(name or DEFAULT_WINDOW)
    if window is None:
        raise UnknownWindow(name or "")
    return window


@dataclass
class TaskMetrics:
    """One task's figures over a window."""

    task: str
    kinds: dict[str, metrics.Measure]
    runs_series: list[int]
    failures_series: list[int]
    chart: Sparkline

    def count(self, kind: str) -> int:
        """How many events of ``kind``."""
        measure = self.kinds.get(kind)
        return measure.count if measure else 0

    @property
    def runs(self) -> int:
        """Attempts that ended (succeeded, failed or retried)."""
        return self.count(metrics.SUCCEEDED) + self.failures

    @property
    def failures(self) -> int:
        """Attempts that raised (the last one, or one retried)."""
        return self.count(metrics.FAILED) + self.count(metrics.RETRIED)

    @property
    def failure_rate(self) -> float | None:
        """Failures per run (None without runs)."""
        return self.failures / self.runs if self.runs else None

    @property
    def durations(self) -> metrics.Measure:
        """Run times of every attempt that ran."""
        total = metrics.Measure()
        for kind in metrics.RUN_KINDS:
            if kind in self.kinds:
                total.add(self.kinds[kind])
        return total

    @property
    def waits(self) -> metrics.Measure:
        """Queue waits of every start."""
        return self.kinds.get(metrics.STARTED) or metrics.Measure()

    def as_json(self) -> dict:
        """The JSON API's form (times in seconds, null when there is no data)."""
        durations, waits = self.durations, self.waits
        return {"task": self.task, "runs": self.runs, "failures": self.failures,
                "failure_rate": self.failure_rate, "succeeded": self.count(metrics.SUCCEEDED),
                "failed": self.count(metrics.FAILED), "retried": self.count(metrics.RETRIED),
                "deleted": self.count(metrics.DELETED), "started": self.count(metrics.STARTED),
                "duration_p50_s": durations.quantile(0.5), "duration_p95_s": durations.quantile(0.95),
                "duration_mean_s": durations.mean, "queue_wait_p95_s": waits.quantile(0.95),
                "queue_wait_mean_s": waits.mean,
                "series": {"runs": self.runs_series, "failures": self.failures_series}}


@dataclass
class MetricsPage:
    """Every task's figures over one window."""

    window: Window
    since: datetime
    tasks: list[TaskMetrics]

    def as_json(self) -> dict:
        """``{"window", "since", "slot_seconds", "tasks": [...]}`` for the JSON API."""
        return {"window": self.window.name, "since": Formats.iso(self.since),
                "slot_seconds": self.window.slot_seconds, "tasks": [task.as_json() for task in self.tasks]}


def slot_series(window: Window, since: datetime, rows: list[tuple]) -> dict[str, dict[str, list[int]]]:
    """Per task: ``{"runs": [...], "failures": [...]}`` per slot from ``(bucket, task, kind, count)`` rows."""
    out: dict[str, dict[str, list[int]]] = {}
    for bucket, task, kind, count in rows:
        index = int((bucket - since).total_seconds() // window.slot_seconds)
        if not 0 <= index < window.slots:
            continue
        series = out.setdefault(task, {"runs": [0] * window.slots, "failures": [0] * window.slots})
        series["runs"][index] += int(count or 0)
        if kind != metrics.SUCCEEDED:
            series["failures"][index] += int(count or 0)
    return out


def slot_titles(window: Window, since: datetime, runs: list[int], failures: list[int]) -> list[str]:
    """``"14:05 UTC: 12 runs, 1 failure"`` for each slot."""
    titles = []
    for index, (run, failure) in enumerate(zip(runs, failures)):
        start = since + timedelta(seconds=index * window.slot_seconds)
        titles.append(f"{start.strftime(window.label_format)} UTC: {run:,} run{'' if run == 1 else 's'}, "
                      f"{failure:,} failure{'' if failure == 1 else 's'}")
    return titles


def metrics_page(name: str | None = None, now: datetime | None = None) -> MetricsPage:
    """Every task's figures over the window called ``name`` (``UnknownWindow`` for a bad name)."""
    window = window_named(name)
    since = window.start(now or utcnow())
    figures = metrics.window(since)
    counted = metrics.series(since, (metrics.SUCCEEDED, metrics.FAILED, metrics.RETRIED))
    per_slot = slot_series(window, since, counted)
    names = sorted({task for task, _ in figures})
    empty = [0] * window.slots
    rows = []
    for task in names:
        series = per_slot.get(task, {"runs": empty, "failures": empty})
        chart = sparkline(series["runs"], series["failures"],
                          slot_titles(window, since, series["runs"], series["failures"]))
        rows.append(TaskMetrics(task=task, kinds={kind: m for (t, kind), m in figures.items() if t == task},
                                runs_series=series["runs"], failures_series=series["failures"], chart=chart))
    rows.sort(key=lambda row: (-row.runs, row.task))
    return MetricsPage(window=window, since=since, tasks=rows)
