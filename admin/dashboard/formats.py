"""Text for times, durations, counts and sizes on the dashboard's pages."""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from app.web import human_size
from tasks.ledger import utcnow

CANCELLED_TWICE = re.compile(r"^Cancelled: (Cancelled\b)")
ATTEMPTS = re.compile(r"\b(\d+) attempt\(s\)")


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


def plural(count: int, noun: str = "job", capped: bool = False) -> str:
    """``1 job``, ``3 jobs``, ``1,000,000+ jobs``."""
    return f"{count:,}{'+' if capped else ''} {noun}{'' if count == 1 and not capped else 's'}"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds, or None when either is missing or they are out of order."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


class Formats:
    """Text for times, durations and counts, relative to one ``now``."""

    def __init__(self, now: datetime | None = None):
        self.now = now or utcnow()

    @staticmethod
    def when(value: datetime | None) -> str:
        """``2026-11-22 07:26:42`` (UTC), or an empty string."""
        return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""

    @staticmethod
    def exact(value: datetime | None) -> str:
        """``2026-11-22 07:26:42.667 UTC``: to the millisecond, for the history."""
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d} UTC" if value else ""

    @staticmethod
    def iso(value: datetime | None) -> str:
        """ISO 8601 with a ``Z`` (for ``<time datetime>``)."""
        return value.isoformat(timespec="seconds") + "Z" if value else ""

    def ago(self, value: datetime | None) -> str:
        """``12 s ago`` or ``in 3 min`` relative to ``now``."""
        if value is None:
            return ""
        delta = (self.now - value).total_seconds()
        span = self.duration(abs(delta), precise=False)
        return f"in {span}" if delta < -0.5 else ("just now" if delta < 1 else f"{span} ago")

    @staticmethod
    def duration(seconds: float | None, precise: bool = True) -> str:
        """``0.04 ms``, ``3.5 ms``, ``85 ms``, ``3.2 s``, ``4 min 3 s``, ``2 h 5 min``, ``3 d 4 h``."""
        if seconds is None:
            return ""
        if seconds < 1 and precise:
            ms = seconds * 1000
            return f"{ms:.2g} ms" if ms < 10 else f"{ms:.0f} ms"
        if seconds < 60:
            return f"{seconds:.1f} s" if precise and seconds < 10 else f"{seconds:.0f} s"
        minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
        if seconds < 3600:
            return f"{minutes} min {int(seconds % 60)} s" if precise else f"{minutes} min"
        if seconds < 86400:
            return f"{hours} h {minutes % 60} min"
        return f"{days} d {hours % 24} h"

    @staticmethod
    def reason(text: str | None) -> str:
        """A state's reason as a sentence: no "Cancelled: Cancelled by", no "1 attempt(s)"."""
        text = CANCELLED_TWICE.sub(r"\1", text or "")
        return ATTEMPTS.sub(lambda m: f"{m.group(1)} attempt{'' if m.group(1) == '1' else 's'}", text)

    @staticmethod
    def size(size: int | None) -> str:
        """``368 bytes``, ``12.3 kB``, ``10.0 MB``."""
        return human_size(size)

    @staticmethod
    def count(value: int, capped: bool = False) -> str:
        """``1,234``, or ``10,000+`` when counting stopped at the cap."""
        return f"{value:,}+" if capped else f"{value:,}"
