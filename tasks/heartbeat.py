"""The heartbeat: tells the transport every second that this worker lives, and renews its mutexes.

Live workers recover the in-flight jobs of a worker whose heartbeat is older than
``JOBS_DEAD_AFTER`` seconds, so a long job on a live worker is never taken from it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tasks.transport import Transport

log = logging.getLogger("tasks.heartbeat")


class Heartbeat:
    """One thread beating every ``interval`` seconds; failures are logged, never raised."""

    def __init__(self, transport: Transport, worker_id: str, describe: Callable[[], dict],
                 interval: float = 1.0, renew: Callable[[], None] | None = None):
        self.transport, self.worker_id, self.describe = transport, worker_id, describe
        self.interval, self.renew = interval, renew
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def beat(self) -> None:
        """One heartbeat (and renewal of held mutexes)."""
        try:
            self.transport.beat(self.worker_id, self.describe())
            if self.renew is not None:
                self.renew()
        except Exception as exc:  # noqa: BLE001
            log.warning("heartbeat failed: %s", exc)

    def start(self) -> None:
        """Beat once now, then every interval."""
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the worker then retires or is recovered as dead)."""
        self.stopping.set()
        self._thread.join(1.0)

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            self.beat()
