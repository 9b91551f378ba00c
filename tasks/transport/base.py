"""What every transport is: the ``Transport`` protocol and the messages that cross it.

A transport is the fast lane between processes. It holds, per job id:

* a **queue** entry per queue name (priority first, then FIFO),
* the **payload** (the JSON message) while the job is live,
* a **schedule** entry for delayed jobs, by due time,
* an **in-flight** entry per worker: a fetched job stays there until the worker has
  committed its final state to the ledger and acknowledges it (reliable fetch),
* a **heartbeat** per worker, so live workers recover the in-flight jobs of dead ones,
  and a **redelivery** count per job, so a job that keeps killing its worker can't loop.

Every implementation is also a Huey storage (``huey.storage.RedisStorage`` / ``SqliteStorage``
subclasses, see ``tasks.transport.storage``) and passes the same contract tests
(``tests/test_transport_contract.py``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

PRIORITY_SPAN = 10 ** 13  # score = -priority * span + ms: priority first, then age


def now_ms() -> int:
    """Epoch milliseconds."""
    return int(time.time() * 1000)


def queue_score(priority: int, at_ms: int) -> int:
    """Sort key in a queue: higher priority first, then older first."""
    return -int(priority) * PRIORITY_SPAN + at_ms


@dataclass
class Fetched:
    """A message taken from a queue into a worker's in-flight set."""

    job_id: str
    payload: bytes
    queue: str
    redeliveries: int


@dataclass
class Outgoing:
    """A message to place: on its queue now, or on the schedule when ``eta`` is set."""

    job_id: str
    queue: str
    priority: int
    payload: bytes
    eta: float | None = None  # epoch seconds


@runtime_checkable
class Transport(Protocol):
    """The operations the engine, the worker pipeline and recovery need from a transport."""

    url: str

    # producing
    def push(self, messages: list[Outgoing]) -> None:
        """Store payloads and place ids on their queues (or the schedule), in one round trip."""

    # consuming
    def fetch(self, worker_id: str, queues: list[str], limit: int = 1, wait: float = 0.0) -> list[Fetched]:
        """Move up to ``limit`` ready jobs, first listed queue first, into ``worker_id``'s in-flight set.

        When nothing is ready, wait up to ``wait`` seconds for a wake-up (never spinning)
        and try once more.
        """

    def ack(self, worker_id: str, job_ids: list[str]) -> None:
        """Forget finished jobs this worker holds in flight (payload, redelivery count)."""

    def reschedule(self, worker_id: str, messages: list[Outgoing]) -> None:
        """Replace in-flight jobs by their next attempt (queue or schedule)."""

    def hand_back(self, worker_id: str, job_ids: list[str] | None = None, lost: bool = False) -> list[str]:
        """Return in-flight jobs (all, or ``job_ids``) to their queues at their old place; returns them.

        ``lost`` counts a redelivery (the worker died under the job).
        """

    def inflight(self, worker_id: str) -> list[str]:
        """Ids ``worker_id`` holds in flight."""

    def move_due(self, limit: int = 1000, at_ms: int | None = None) -> list[str]:
        """Move jobs due by ``at_ms`` (default now) to their queues; returns their ids."""

    # management
    def remove(self, job_ids: list[str]) -> None:
        """Take jobs out of the transport (queue, schedule, payload)."""

    def holds(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` the transport still carries."""

    def queue_lengths(self) -> dict[str, int]:
        """Jobs waiting per queue."""

    def queue_stats(self) -> dict[str, tuple[int, float | None]]:
        """Per queue: jobs waiting and when the job at its head was queued (epoch s)."""

    def pause(self, queue: str) -> None:
        """Stop workers fetching from ``queue``."""

    def resume(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""

    def paused(self) -> set[str]:
        """Names of paused queues."""

    def ping(self) -> str | None:
        """None when the transport answers, else the error."""

    # workers and leases
    def beat(self, worker_id: str, info: dict) -> None:
        """Record that ``worker_id`` is alive, with its description."""

    def workers(self) -> list[dict]:
        """Every registered worker with its last heartbeat (``last_beat``, epoch seconds)."""

    def claim_dead(self, stale_after: float) -> list[str]:
        """Worker ids whose heartbeat is older than ``stale_after`` s, each claimed by one caller only."""

    def orphaned_inflight(self, live: set[str]) -> list[str]:
        """Owners of in-flight jobs that have no heartbeat at all (e.g. after a transport restart)."""

    def lead(self, role: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``role`` for ``ttl`` seconds; True while ``owner`` holds it."""

    def release(self, role: str, owner: str) -> None:
        """Give up the lease on ``role`` if ``owner`` holds it."""

    def holder(self, role: str) -> str | None:
        """Who holds the lease on ``role`` now (None when nobody does)."""

    def retire(self, worker_id: str) -> None:
        """Remove a worker that stopped cleanly."""

    def flush_all(self) -> None:
        """Delete everything this transport holds (tests, purges)."""

    def close(self) -> None:
        """Release connections (a forked child reopens its own)."""
