"""The job engine: durable, at-least-once background jobs on Huey with a SQL ledger.

Application code imports from here (never ``huey``)::

    from tasks import job, enqueue, enqueue_many, current_job
"""
from __future__ import annotations

from flask import Flask

from tasks.api import JobContext, JobFunction, UnknownTask, current_job, enqueue, enqueue_many, job, progress
from tasks.codec import ArgumentError
from tasks.idempotency import once
from tasks.lifecycle import IllegalTransition
from tasks.progress import JobCancelled, JobTimeout
from tasks.retry import PermanentError

__all__ = ["ArgumentError", "IllegalTransition", "JobCancelled", "JobContext", "JobFunction", "JobTimeout",
           "PermanentError", "UnknownTask", "current_job", "enqueue", "enqueue_many", "init_app", "job",
           "once", "progress", "transport_error"]


def init_app(app: Flask) -> None:
    """Bind the job engine to ``app`` and register the ``jobs`` CLI group."""
    import importlib

    from tasks import (audit, demo, idempotency, ledger, progress, queues, recurring, system,  # noqa: F401
                       unique)
    from tasks import tracing
    from tasks.cli import jobs_cli
    from tasks.engine import JobEngine

    for module in str(app.config.get("JOBS_MODULES") or "").split(","):
        if module.strip():
            importlib.import_module(module.strip())  # the application's own job modules

    tracing.setup()  # OpenTelemetry, when installed and configured by OTEL_* variables
    app.extensions["jobs"] = JobEngine(app)
    app.cli.add_command(jobs_cli)


def transport_error(app: Flask) -> str | None:
    """None when the job transport answers, else the error text."""
    return app.extensions["jobs"].transport.ping()
