"""Structured logs: ``LOG_FORMAT=json`` in a real worker process, and request ids on web requests."""
from __future__ import annotations

import io
import json
import logging

import pytest

from app import create_app
from app.config import ConfigError
from app.logs import ContextFilter, JsonFormatter
from tasks import enqueue, lifecycle
from tests.helpers.ledger import job_state
from tests.workers import wait_for


def json_lines(output: str) -> list[dict]:
    """Every line of ``output`` parsed as JSON (the test fails on a line that isn't)."""
    lines = [line for line in output.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


def test_a_json_worker_names_the_job_on_every_line_it_logs_while_running(app, start_worker):
    worker = start_worker(queues="default", LOG_FORMAT="json", LOG_LEVEL="INFO")
    with app.app_context():
        logged = enqueue("tests.log_line", args=["hello from a job"])
        failed = enqueue("demo.fail", args=["on purpose"])
    wait_for(lambda: job_state(app, logged) in lifecycle.FINAL_STATES
             and job_state(app, failed) == lifecycle.FAILED, timeout=30, message="both jobs ran")
    lines = wait_for(lambda: [line for line in json_lines(worker.output()) if line.get("job_id") == failed],
                     message="the failure logged")
    worker.stop()  # the shutdown lines too must be JSON
    with open(worker.log_path, encoding="utf-8") as fh:
        records = json_lines(fh.read())
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") for r in records)

    [hello] = [r for r in records if r["message"] == "hello from a job"]
    assert (hello["level"], hello["logger"]) == ("WARNING", "tests.jobs")
    assert (hello["job_id"], hello["task"], hello["queue"], hello["attempt"]) == \
        (logged, "tests.log_line", "default", 1)

    [failure] = lines
    assert failure["level"] == "ERROR" and failure["task"] == "demo.fail" and failure["attempt"] == 1
    assert "on purpose" in failure["message"]
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert "DemoFailure: on purpose" in failure["exception"]
    assert not any("job_id" in r for r in records if r["logger"] == "tasks.server")  # outside jobs: none


@pytest.fixture
def captured(app):
    """JSON log lines of this process while the test runs (the handler the app installs, on a buffer)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: json_lines(buffer.getvalue())
    root.removeHandler(handler)


def test_web_lines_carry_the_request_id_which_the_response_echoes(app, client, captured):
    app.logger.setLevel(logging.INFO)

    @app.get("/_log_probe")
    def log_probe():
        """Log one line inside a request."""
        app.logger.info("inside the request")
        return "ok"

    sane = client.get("/_log_probe", headers={"X-Request-ID": "req-1234.abc:5"})
    assert sane.headers["X-Request-ID"] == "req-1234.abc:5"
    generated = client.get("/_log_probe", headers={"X-Request-ID": "bad id <script>" + "x" * 200})
    new_id = generated.headers["X-Request-ID"]
    assert len(new_id) == 32 and int(new_id, 16) >= 0
    assert client.get("/healthz").headers["X-Request-ID"] not in (new_id, "req-1234.abc:5")
    ids = [r["request_id"] for r in captured() if r["message"] == "inside the request"]
    assert ids == ["req-1234.abc:5", new_id]
    app.logger.info("outside any request")
    assert "request_id" not in [r for r in captured() if r["message"] == "outside any request"][0]


def test_an_unknown_log_format_is_refused(app_config):
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        create_app({**app_config, "LOG_FORMAT": "yaml"})
