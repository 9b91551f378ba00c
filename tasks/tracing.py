"""OpenTelemetry tracing of jobs: optional, and free when off.

When the ``opentelemetry`` packages are installed **and** configured by the standard ``OTEL_*``
variables (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` or
``OTEL_SERVICE_NAME``; ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off),
or when the host process already installed a tracer provider (e.g. ``opentelemetry-instrument``):

* each enqueue is a ``PRODUCER`` span ``enqueue <task>``, a child of the current span, or else of
  the web request's incoming ``traceparent`` header (so it joins the caller's trace);
* its W3C ``traceparent`` travels in the job message (an optional field: older messages have none);
* each run in the worker is a ``CONSUMER`` span ``run <task>``, a child of the enqueue span, with
  ``job.id``, ``job.task``, ``job.queue`` and ``job.attempt`` attributes; a failure records the
  exception and sets the span's status to error.

Without the packages, or unconfigured, :func:`enqueue_span` and :func:`run_span` are ``nullcontext``
and nothing is imported or allocated per job. Jobs re-sent from the ledger (recovery, reconciler,
continuations) carry no trace context: their runs start traces of their own.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

try:  # optional at runtime: requirements-dev.txt only
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised where the packages are absent
    trace = None

log = logging.getLogger(__name__)
TRACER_NAME = "tasks"
CONFIGURING_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME")
_tracer: Any = None
_configured = False


def installed() -> bool:
    """True when the OpenTelemetry API can be imported."""
    return trace is not None


def wanted(env: dict | os._Environ = os.environ) -> bool:
    """True when the ``OTEL_*`` variables ask for tracing (and don't switch it off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name) for name in CONFIGURING_VARIABLES)


def sdk_provider():
    """A tracer provider built from the ``OTEL_*`` variables: resource (service name, attributes) and
    one batch processor per exporter named in ``OTEL_TRACES_EXPORTER`` (default ``otlp``)."""
    from importlib.metadata import entry_points

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())
    exporters = {point.name: point for point in entry_points(group="opentelemetry_traces_exporter")}
    for name in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(","):
        name = name.strip().lower()
        if name not in exporters:
            log.warning("OTEL_TRACES_EXPORTER names %r, which no installed package provides (have: %s)",
                        name, ", ".join(sorted(exporters)) or "none")
            continue
        provider.add_span_processor(BatchSpanProcessor(exporters[name].load()()))
    return provider


def setup() -> bool:
    """Turn tracing on for this process when it is installed and configured (once); True when on."""
    global _configured
    if _configured or not installed():
        return _tracer is not None
    _configured = True
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):  # the host already set one up: use it
        use(current)
    elif wanted():
        try:
            provider = sdk_provider()
        except ImportError:
            log.warning("OTEL_* variables are set but opentelemetry-sdk is not installed: tracing stays off")
            return False
        trace.set_tracer_provider(provider)
        use(provider)
    return _tracer is not None


def use(provider) -> None:
    """Trace with ``provider`` from now on (None: stop tracing)."""
    global _tracer
    _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None


def enabled() -> bool:
    """True while spans are being made."""
    return _tracer is not None


def parent_context():
    """The context an enqueue span belongs to: the current span's, else the web request's
    ``traceparent`` header (when inside a request), else none (a new trace)."""
    if trace.get_current_span().get_span_context().is_valid:
        return otel_context.get_current()
    from flask import has_request_context, request

    if has_request_context() and "traceparent" in request.headers:
        return TraceContextTextMapPropagator().extract({"traceparent": request.headers["traceparent"],
                                                        "tracestate": request.headers.get("tracestate", "")})
    return None


@contextlib.contextmanager
def _enqueue_span(task: str, queue: str, count: int) -> Iterator[str | None]:
    with _tracer.start_as_current_span(f"enqueue {task}", context=parent_context(),
                                       kind=trace.SpanKind.PRODUCER,
                                       attributes={"job.task": task, "job.queue": queue,
                                                   "job.count": count}) as span:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        yield carrier.get("traceparent")


def enqueue_span(task: str, queue: str, count: int = 1):
    """A span around one enqueue; yields the ``traceparent`` its messages carry (None when off)."""
    if _tracer is None:
        return contextlib.nullcontext(None)
    return _enqueue_span(task, queue, count)


@contextlib.contextmanager
def _run_span(job_id: str, task: str, queue: str, attempt: int, traceparent: str | None):
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) if traceparent else None
    attributes = {"job.id": job_id, "job.task": task, "job.queue": queue, "job.attempt": attempt}
    with _tracer.start_as_current_span(f"run {task}", context=parent, kind=trace.SpanKind.CONSUMER,
                                       attributes=attributes, record_exception=False,
                                       set_status_on_exception=False) as span:
        yield RunSpan(span)


class RunSpan:
    """The span of one run, for the processor to mark a failure on."""

    def __init__(self, span=None):
        self.span = span

    def failed(self, error: BaseException) -> None:
        """Record ``error`` on the span and set its status to error."""
        if self.span is not None:
            self.span.record_exception(error)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))


NO_SPAN = RunSpan()


def run_span(job_id: str, task: str, queue: str, attempt: int, traceparent: str | None):
    """A span around one run of a job, a child of its enqueue span; yields a :class:`RunSpan`."""
    if _tracer is None:
        return contextlib.nullcontext(NO_SPAN)
    return _run_span(job_id, task, queue, attempt, traceparent)
