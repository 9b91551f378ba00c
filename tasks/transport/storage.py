"""Huey's storage API on top of a reliable transport (mixed into both transports).

Both transports subclass a Huey storage (``RedisStorage``, ``SqliteStorage``) and keep Huey's
result store, counters, locks and naming; this mixin answers Huey's queue and schedule calls
from the transport's own structures, so ``huey.enqueue``, ``huey.pending()``,
``huey.scheduled()``, ``huey.pending_count()`` and ``huey.flush()`` all see the engine's jobs.

What Huey lacks is added beside it (``tasks.transport.base.Transport``): a fetch into a
per-worker in-flight set, ``ack`` after the final state is committed, hand-back and recovery.
Huey's own ``dequeue`` (pop and forget) would make delivery at-most-once, so it is refused.
"""
from __future__ import annotations

import datetime as dt
import json

from tasks.transport.base import Outgoing
from tasks.transport.serializer import eta_epoch


def outgoing_from_wire(data: bytes, priority: int | None = None, eta: dt.datetime | None = None) -> Outgoing:
    """The ``Outgoing`` for a serialized Huey message (its id, and the queue its envelope names)."""
    body = json.loads(data)
    return Outgoing(str(body["id"]), body.get("queue") or "default",
                    int(priority if priority is not None else body.get("priority") or 0),
                    bytes(data), eta_epoch(eta))


class HueyQueueAPI:
    """Huey's queue/schedule storage methods, answered by a transport's ``push``/``move_due``/... ."""

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Huey's enqueue: place one serialized message on the queue its envelope names."""
        self.push([outgoing_from_wire(data, priority)])

    def dequeue(self):
        """Refused: a plain pop loses the job if the worker dies; workers use ``fetch`` and ``ack``."""
        raise NotImplementedError("reliable transports deliver with fetch(worker_id, queues) and ack(); "
                                  "a plain dequeue would lose a job whose worker dies")

    def add_to_schedule(self, data: bytes, ts: dt.datetime) -> None:
        """Huey's schedule: keep one serialized message until ``ts`` (naive UTC, as Huey passes it)."""
        self.push([outgoing_from_wire(data, eta=ts)])

    def read_schedule(self, ts: dt.datetime) -> list:
        """Move messages due by ``ts`` to their queues in one atomic step; nothing is left to re-enqueue.

        Huey's scheduler would pop due messages and enqueue them in a second step (a crash in
        between loses them); here the move is one transaction, so the list returned is empty.
        """
        self.move_due(at_ms=int(eta_epoch(ts) * 1000))
        return []

    def queue_size(self) -> int:
        """Jobs waiting on every queue."""
        return sum(self.queue_lengths().values())

    def schedule_size(self) -> int:
        """Jobs waiting for their due time."""
        return len(self.scheduled_ids())

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Serialized messages waiting on queues (``huey.pending()`` deserializes them)."""
        return self.payloads(self.queued_ids(limit))

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Serialized messages waiting for their due time (``huey.scheduled()``)."""
        return self.payloads(self.scheduled_ids(limit))

    def flush_queue(self) -> None:
        """Drop every queued message."""
        self.remove(self.queued_ids())

    def flush_schedule(self) -> None:
        """Drop every scheduled message."""
        self.remove(self.scheduled_ids())
