"""Server-rendered SVG charts of succeeded and failed jobs per time bucket.

:func:`throughput_chart` turns the ledger's buckets (``tasks.queries.throughput``) into
plain geometry — path strings, tick positions, hover boxes — that
``templates/hangfire/_chart.html`` draws as inline SVG. Nothing here is user data:
only numbers and labels made from times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

WIDTH = 540  # viewBox units ≈ CSS pixels of a half-width card, so labels keep their size
WIDE = 1100
HEIGHT = 170
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 22


@dataclass(frozen=True)
class Slot:
    """One bucket on the chart: where it is drawn and what its tooltip says."""

    x: float
    width: float
    succeeded: int
    failed: int
    title: str


@dataclass(frozen=True)
class Tick:
    """An axis mark: its position and label."""

    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    """A two-series line chart, ready to draw."""

    name: str
    title: str
    slots: list[Slot]
    succeeded_line: str
    succeeded_area: str
    failed_line: str
    succeeded_tail: str  # into the bucket still filling up (drawn dashed: it isn't over yet)
    failed_tail: str
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    total_succeeded: int
    total_failed: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> float:
        """The y of the zero line."""
        return self.height - BOTTOM

    @property
    def plot_left(self) -> int:
        """Where the plot area starts (right of the y labels)."""
        return LEFT

    @property
    def plot_right(self) -> int:
        """Where the plot area ends."""
        return self.width - RIGHT


def tick_step(peak: int, ticks: int = 4) -> int:
    """The smallest whole 1, 2, 2.5 or 5 × 10ⁿ step such that ``ticks`` steps reach ``peak`` (at least 1)."""
    if peak <= ticks:
        return 1
    raw = peak / ticks
    power = 10 ** int(math.floor(math.log10(raw)))
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * power
        if step == int(step) and step >= raw:
            return int(step)
    return 10 * power  # pragma: no cover - the loop always returns


def y_of(value: int, top_value: int) -> float:
    """The y coordinate of ``value`` on a scale whose top is ``top_value``."""
    span = HEIGHT - TOP - BOTTOM
    return round(HEIGHT - BOTTOM - span * value / top_value, 1)


def polyline(points: list[tuple[float, float]]) -> str:
    """An SVG path through ``points``."""
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points) if points else ""


def area(points: list[tuple[float, float]]) -> str:
    """An SVG path filling from ``points`` down to the zero line."""
    if not points:
        return ""
    base = HEIGHT - BOTTOM
    return f"{polyline(points)} L{points[-1][0]:.1f},{base} L{points[0][0]:.1f},{base} Z"


def slots_for(buckets: list[dict], title_format: str, seconds: int, chart_width: int) -> list[Slot]:
    """A hover slot per bucket, spread evenly across the plot area."""
    width = (chart_width - LEFT - RIGHT) / max(len(buckets), 1)
    last = len(buckets) - 1
    return [Slot(x=round(LEFT + index * width, 1), width=round(width, 2), succeeded=b["succeeded"],
                 failed=b["failed"], title=bucket_title(b, title_format, seconds, current=index == last))
            for index, b in enumerate(buckets)]


def bucket_title(bucket: dict, title_format: str, seconds: int, current: bool = False) -> str:
    """``07:00 UTC: 12 succeeded, 1 failed`` for a bucket's tooltip (``so far`` for the current one)."""
    start: datetime = bucket["start"]
    counts = f"{bucket['succeeded']} succeeded, {bucket['failed']} failed"
    return f"{start.strftime(title_format)} UTC ({seconds}s): {counts}{' so far' if current else ''}"


def x_ticks_for(buckets: list[dict], slots: list[Slot], every: int, label_format: str) -> list[Tick]:
    """A labelled mark every ``every`` buckets."""
    return [Tick(round(slot.x + slot.width / 2, 1), bucket["start"].strftime(label_format))
            for index, (bucket, slot) in enumerate(zip(buckets, slots)) if index % every == 0]


def throughput_chart(name: str, title: str, buckets: list[dict], seconds: int, label_format: str,
                     every: int, title_format: str = "%Y-%m-%d %H:%M:%S", width: int = WIDTH) -> Chart:
    """A ``width``-unit-wide chart of ``buckets`` (``{"start", "succeeded", "failed"}``, oldest first)."""
    slots = slots_for(buckets, title_format, seconds, width)
    step = tick_step(max([b["succeeded"] for b in buckets] + [b["failed"] for b in buckets] + [0]))
    top = 4 * step
    centres = [slot.x + slot.width / 2 for slot in slots]
    succeeded = [(x, y_of(s.succeeded, top)) for x, s in zip(centres, slots)]
    failed = [(x, y_of(s.failed, top)) for x, s in zip(centres, slots)]
    y_ticks = [Tick(y_of(index * step, top), f"{index * step:,}") for index in range(5)]
    # the last bucket is the one still filling up (the hour just started): its count isn't final, so the
    # line ends at the last complete bucket and only a dashed tail goes on to it
    done = slice(0, -1) if len(slots) > 1 else slice(None)
    return Chart(name=name, title=title, slots=slots, succeeded_line=polyline(succeeded[done]),
                 succeeded_area=area(succeeded[done]), failed_line=polyline(failed[done]),
                 succeeded_tail=polyline(succeeded[-2:]) if len(slots) > 1 else "",
                 failed_tail=polyline(failed[-2:]) if len(slots) > 1 else "", y_ticks=y_ticks,
                 x_ticks=x_ticks_for(buckets, slots, every, label_format),
                 total_succeeded=sum(b["succeeded"] for b in buckets),
                 total_failed=sum(b["failed"] for b in buckets), width=width)


# --- sparklines (the Metrics page: one small chart per task) ---------------------------------------

SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 160, 36, 2


@dataclass(frozen=True)
class Sparkline:
    """Runs (an area) and failures (a line) per slot, with a hover title per slot."""

    runs_area: str
    runs_line: str
    failures_line: str
    slots: list[Slot]
    peak: int
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT


def spark_points(values: list[int], peak: int) -> list[tuple[float, float]]:
    """Points of ``values`` spread across a sparkline, scaled so ``peak`` touches the top."""
    step = SPARK_WIDTH / max(len(values), 1)
    span = SPARK_HEIGHT - 2 * SPARK_PAD
    return [(round(step * (index + 0.5), 1), round(SPARK_HEIGHT - SPARK_PAD - span * value / peak, 1))
            for index, value in enumerate(values)]


def sparkline(runs: list[int], failures: list[int], titles: list[str]) -> Sparkline:
    """A sparkline of ``runs`` and ``failures`` per slot (oldest first); ``titles`` label each slot."""
    peak = max(runs + failures + [1])
    run_points, failure_points = spark_points(runs, peak), spark_points(failures, peak)
    step = SPARK_WIDTH / max(len(runs), 1)
    base = SPARK_HEIGHT - SPARK_PAD
    area_path = (f"{polyline(run_points)} L{run_points[-1][0]:.1f},{base} L{run_points[0][0]:.1f},{base} Z"
                 if run_points else "")
    slots = [Slot(x=round(index * step, 1), width=round(step, 2), succeeded=run - failure, failed=failure,
                  title=title) for index, (run, failure, title) in enumerate(zip(runs, failures, titles))]
    return Sparkline(runs_area=area_path, runs_line=polyline(run_points),
                     failures_line=polyline(failure_points), slots=slots, peak=peak)
