"""Process logs: plain text (default) or one JSON object per line (``LOG_FORMAT=json``), on stdout.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, an
``exception`` (the formatted traceback) when one is attached, and the context of what the
process was doing when it logged:

* while a job runs (:func:`job_scope`, entered by the worker's processor): ``job_id``, ``task``,
  ``queue`` and ``attempt``, and ``tenant`` for a tenant's job;
* while a web request is served: ``request_id`` — the caller's ``X-Request-ID`` when it is sane
  (1–128 letters, digits and ``-_.:``), else a new one; the response echoes it.

The context lives in a :class:`contextvars.ContextVar`, so each worker thread and each request
sees only its own.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone

from flask import Flask, Response, g, request

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: loggers gunicorn sets up before it loads the app (its master's own lines, logged earlier, stay text)
GUNICORN_LOGGERS = ("gunicorn.access", "gunicorn.error")

_context: ContextVar[dict] = ContextVar("log_context", default={})


def current_context() -> dict:
    """The fields every line logged here and now carries (job or request)."""
    return _context.get()


@contextlib.contextmanager
def log_scope(**fields) -> Iterator[None]:
    """Add ``fields`` to every line logged inside the ``with`` block (in this thread or task)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def job_scope(job_id: str, task: str, queue: str, attempt: int, tenant: str | None = None):
    """The log context of one run of a job (``tenant`` only for a tenant's job)."""
    owner = {"tenant": tenant} if tenant is not None else {}
    return log_scope(job_id=job_id, task=task, queue=queue, attempt=attempt, **owner)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, exception and the context."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with the context appended as ``key=value`` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as text (plus its traceback on the following lines)."""
        text = super().format(record)
        context = getattr(record, "context", {})
        if not context:
            return text
        first, newline, rest = text.partition("\n")
        pairs = " ".join(f"{key}={value}" for key, value in context.items())
        return f"{first} [{pairs}]{newline}{rest}"


class ContextFilter(logging.Filter):
    """Attach the current context to each record the handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; give it ``record.context``."""
        record.context = current_context()
        return True


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter(TEXT_FORMAT)


def configure(log_format: str, level: str) -> None:
    """Log to stdout (Heroku's log router reads it) in ``log_format`` at ``level`` (once per process;
    a later call changes the format and level)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_app_stdout", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler._app_stdout = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter_for(log_format))
    root.setLevel(level)
    if log_format == "json":
        for name in GUNICORN_LOGGERS:  # a gunicorn worker: its access and error lines become JSON too
            for own in logging.getLogger(name).handlers:
                own.setFormatter(JsonFormatter())


def request_id() -> str:
    """This request's id: a sane incoming ``X-Request-ID``, else a new random one."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex


def enter_request() -> None:
    """Give the request its id and put it in the log context."""
    g.request_id = request_id()
    g.log_scope = log_scope(request_id=g.request_id)
    g.log_scope.__enter__()


def echo_request_id(response: Response) -> Response:
    """Send the request id back (``X-Request-ID``)."""
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def leave_request(_error: BaseException | None = None) -> None:
    """Take the request id out of the log context."""
    scope = g.pop("log_scope", None)
    if scope is not None:
        scope.__exit__(None, None, None)


def init_app(app: Flask) -> None:
    """Configure the process's logging and the request id hooks."""
    configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    app.before_request_funcs.setdefault(None, []).insert(0, enter_request)
    app.after_request(echo_request_id)
    app.teardown_request(leave_request)
