"""Transports: the ``Transport`` protocol and its implementations, chosen by URL scheme here only.

The transport is Huey: every engine has one ``huey.Huey`` instance (``open_huey``) whose storage
is the transport and whose serializer is JSON. Both transports subclass Huey's storages:

* ``redis://`` / ``rediss://`` — ``RedisTransport`` (a ``huey.storage.RedisStorage``, ``REDIS_URL``);
* ``sqlite:///path`` — ``SqliteTransport`` (a ``huey.storage.SqliteStorage``), the embedded default
  (a file in ``instance/``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from tasks.transport.base import Fetched, Outgoing, Transport, now_ms, queue_score

__all__ = ["Fetched", "Outgoing", "Transport", "now_ms", "open_huey", "open_transport", "queue_score",
           "transport_url"]


def transport_url(config: Mapping, instance_path: str) -> str:
    """The transport URL an app is configured for: ``REDIS_URL``, else a SQLite file in ``instance/``."""
    if config.get("REDIS_URL"):
        return str(config["REDIS_URL"])
    path = config.get("JOBS_SQLITE_PATH") or os.path.join(instance_path, "jobs-transport.db")
    return f"sqlite:///{path}"


def open_huey(url: str, name: str = "jobs"):
    """The engine's Huey instance for ``url``: its storage is the transport of that scheme."""
    from tasks.transport.instance import EngineHuey

    scheme = url.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        from tasks.transport.redis import RedisTransport

        return EngineHuey(name, storage_class=RedisTransport, url=url)
    if scheme == "sqlite":
        from tasks.transport.sqlite import SqliteTransport

        return EngineHuey(name, storage_class=SqliteTransport, filename=url.removeprefix("sqlite:///"))
    raise ValueError(f"unknown job transport scheme {scheme!r} in {url!r}: "
                     "use redis://, rediss:// or sqlite:///")


def open_transport(url: str) -> Transport:
    """The transport for ``url``, by scheme: the storage of a new Huey instance."""
    return open_huey(url).storage
