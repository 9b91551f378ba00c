"""Text for times, durations, counts and sizes on the dashboard's pages."""
from __future__ import annotations

from datetime import datetime

from tasks.ledger import utcnow


class Formats:
    """Text for times, durations and counts, relative to one ``now``."""

    def __init__(self, now: datetime | None = None):
        self.now = now or utcnow()

    @staticmethod
    def when(value: datetime | None) -> str:
        """``2026-11-22 07:26:42`` (UTC), or an empty string."""
        return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""

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
        """``85 ms``, ``3.2 s``, ``4 min 3 s``, ``2 h 5 min``, ``3 d 4 h``."""
        if seconds is None:
            return ""
        if seconds < 1 and precise:
            return f"{seconds * 1000:.0f} ms"
        if seconds < 60:
            return f"{seconds:.1f} s" if precise and seconds < 10 else f"{seconds:.0f} s"
        minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
        if seconds < 3600:
            return f"{minutes} min {int(seconds % 60)} s" if precise else f"{minutes} min"
        if seconds < 86400:
            return f"{hours} h {minutes % 60} min"
        return f"{days} d {hours % 24} h"

    @staticmethod
    def count(value: int, capped: bool = False) -> str:
        """``1,234``, or ``10,000+`` when counting stopped at the cap."""
        return f"{value:,}+" if capped else f"{value:,}"
