"""Transports: the ``Transport`` protocol and its implementations, chosen by URL scheme here only.

* ``redis://`` / ``rediss://`` — ``RedisTransport`` (``REDIS_URL``);
* ``sqlite:///path`` — ``SqliteTransport``, the embedded default (a file in ``instance/``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from tasks.transport.base import Fetched, Outgoing, Transport, now_ms, queue_score

__all__ = ["Fetched", "Outgoing", "Transport", "now_ms", "open_transport", "queue_score", "transport_url"]


def transport_url(config: Mapping, instance_path: str) -> str:
    """The transport URL an app is configured for: ``REDIS_URL``, else a SQLite file in ``instance/``."""
    if config.get("REDIS_URL"):
        return str(config["REDIS_URL"])
    path = config.get("JOBS_SQLITE_PATH") or os.path.join(instance_path, "jobs-transport.db")
    return f"sqlite:///{path}"


def open_transport(url: str) -> Transport:
    """The transport for ``url``, by scheme."""
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        from tasks.transport.redis import RedisTransport

        return RedisTransport(url)
    if scheme == "sqlite":
        from tasks.transport.sqlite import SqliteTransport

        return SqliteTransport(url.removeprefix("sqlite:///"))
    raise ValueError(f"unknown job transport scheme {scheme!r} in {url!r}: "
                     "use redis://, rediss:// or sqlite:///")
