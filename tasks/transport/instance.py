"""The engine's Huey instance: built in one place, JSON-serialized, naming tasks as the engine does.

Jobs declared with ``@job`` are registered on it as Huey tasks (``huey.task(name=...)``), so the
name in every message on the wire is a key of Huey's registry and ``huey.deserialize_task(raw)``
gives the task. The engine's worker pipeline (``tasks.server``) runs them: it owns the ledger
transitions, retries and acknowledgements that Huey's consumer doesn't have.
"""
from __future__ import annotations

from collections.abc import Callable

import huey
from huey.registry import Registry

from tasks.transport.serializer import JsonSerializer


class EngineRegistry(Registry):
    """Huey's task registry, keyed by the engine's job name (``demo.noop``), not ``module.Class``."""

    def task_to_string(self, task_class) -> str:
        """The name a task class is registered and sent under."""
        return getattr(task_class, "job_name", None) or super().task_to_string(task_class)

    def register(self, task_class) -> bool:
        """Register ``task_class``, replacing an earlier class of the same name (a re-declared job)."""
        self.unregister(task_class)
        return super().register(task_class)

    def names(self) -> set[str]:
        """Every registered task name."""
        return set(self._registry)


class EngineHuey(huey.Huey):
    """A Huey whose storage is a reliable transport and whose messages are JSON."""

    def __init__(self, name: str = "jobs", **storage_kwargs):
        super().__init__(name, results=False, utc=True, serializer=JsonSerializer(), **storage_kwargs)
        self._registry = EngineRegistry()

    def register_job(self, job_name: str, func: Callable, retries: int = 0, priority: int = 0) -> None:
        """Register a declared job as a Huey task named ``job_name``."""
        self.task(retries=retries, priority=priority or None, name=job_name, job_name=job_name)(func)

    def task_names(self) -> set[str]:
        """Names of every task registered on this instance."""
        return self._registry.names()
