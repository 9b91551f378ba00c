"""What only the job transport knows — live workers, queue lengths, paused queues — and what the
dashboard shows when the transport doesn't answer.

With Redis down the dashboard keeps working from the ledger: queue lengths are counted there,
and live-worker figures and paused flags are unknown (None), under a visible banner. The
transport is asked once per request (``live()``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app, g

from tasks import queries, transport_error
from tasks.tenancy import current_scope

log = logging.getLogger(__name__)


@dataclass
class Live:
    """The transport's answer for this request: ``error`` is None when it answered."""

    error: str | None
    workers: list[dict] | None = None

    @property
    def available(self) -> bool:
        """True when the transport answered."""
        return self.error is None

    def as_json(self) -> dict:
        """``{"available": bool, "error": text or null}`` for the JSON API."""
        return {"available": self.available, "error": self.error}


def unavailable(exc: Exception) -> str:
    """The text kept for a transport failure."""
    return f"{type(exc).__name__}: {exc}"


def live() -> Live:
    """The transport's state and live workers, asked once per request."""
    cached = g.get("dashboard_live")
    if cached is not None:
        return cached
    state = Live(error=transport_error(current_app))
    if state.available:
        try:
            state.workers = queries.workers_overview()
        except Exception as exc:  # noqa: BLE001 - any transport failure means "unknown", never a 500
            log.warning("job transport failed while listing workers: %s", exc)
            state.error = unavailable(exc)
    g.dashboard_live = state
    return state


def worker_counts() -> tuple[int | None, int | None]:
    """Live and dead registered workers; (None, None) when the transport can't tell."""
    workers = live().workers
    if workers is None:
        return None, None
    alive = sum(1 for worker in workers if worker["alive"])
    return alive, len(workers) - alive


def readers_by_queue() -> dict[str, int] | None:
    """How many live workers read each queue; None when the transport can't tell."""
    workers = live().workers
    if workers is None:
        return None
    readers: dict[str, int] = {}
    for worker in workers:
        if worker["alive"]:
            for queue in worker.get("queues") or []:
                readers[queue] = readers.get(queue, 0) + 1
    return readers


def queue_rows() -> list[dict]:
    """Every queue: waiting jobs, oldest job's age, paused flag and live readers.

    From the transport when it answers; else from the ledger, with ``paused`` and ``workers``
    unknown (None). ``unread`` is true for a queue no live worker reads.
    """
    state = live()
    rows = None
    if state.available and current_scope() is None:  # a tenant sees queue lengths of its own jobs only
        try:
            rows = queries.queue_overview()
        except Exception as exc:  # noqa: BLE001 - fall back to the ledger, never a 500
            log.warning("job transport failed while reading queues: %s", exc)
            state.error, state.workers = unavailable(exc), None
    if rows is None:
        rows = queries.ledger_queue_overview()
    readers = readers_by_queue()
    for row in rows:
        row["workers"] = None if readers is None else readers.get(row["name"], 0)
        row["unread"] = row["workers"] == 0
    return rows


#: what a tenant user may see of a worker: whether it is alive and what it reads, never where it runs
TENANT_SAFE_WORKER_FIELDS = ("queues", "concurrency", "started", "last_beat", "alive")


def server_rows() -> list[dict]:
    """Registered workers, live ones first (empty when the transport can't tell); in a tenant's scope
    numbered instead of named, without host, process or jobs in flight (those are every tenant's)."""
    rows = sorted(live().workers or [], key=lambda worker: not worker["alive"])
    if current_scope() is None:
        return rows
    return [{"id": f"worker {number}", "host": None, "pid": None, "in_flight": None,
             **{key: row.get(key) for key in TENANT_SAFE_WORKER_FIELDS}}
            for number, row in enumerate(rows, 1)]
