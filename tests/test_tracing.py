"""OpenTelemetry tracing across a real worker process: enqueue span in the request's trace, run span as
its child in the worker (console exporter configured by ``OTEL_*`` in the worker's environment)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.permissions import HANGFIRE
from tasks import lifecycle, tracing
from tasks.codec import Delivery, decode
from tests.helpers.ledger import job_state
from tests.helpers.web import bearer, bearer_token
from tests.workers import ROOT, wait_for, worker_env

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
WORKER_TRACING = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "jobs-worker",
                  "OTEL_BSP_SCHEDULE_DELAY": "50"}


@pytest.fixture
def web_spans():
    """Tracing on in this (web) process, into memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    yield exporter
    tracing.use(None)
    provider.shutdown()


def console_spans(output: str) -> list[dict]:
    """The spans the console exporter printed (indented JSON objects among the log lines)."""
    decoder, spans, position = json.JSONDecoder(), [], 0
    while (start := output.find('{\n    "name"', position)) >= 0:
        span, position = decoder.raw_decode(output, start)
        spans.append(span)
    return spans


def test_a_job_enqueued_in_a_request_runs_in_a_child_span_in_the_worker(app, client, make_user,
                                                                        start_worker, web_spans):
    worker = start_worker(queues="default", **WORKER_TRACING)
    make_user("tom", permissions=[HANGFIRE])
    headers = {"traceparent": INCOMING, **bearer(bearer_token(client, "tom"))}
    ok = client.post("/hangfire/api/jobs", json={"task": "tests.log_line", "args": ["traced"]},
                     headers=headers)
    assert ok.status_code == 201, ok.get_json()
    failing = client.post("/hangfire/api/jobs", json={"task": "demo.fail", "args": ["on purpose"]},
                          headers=headers)
    ok_id, failed_id = ok.get_json()["id"], failing.get_json()["id"]
    outcome = (lifecycle.SUCCEEDED, lifecycle.FAILED)
    wait_for(lambda: (job_state(app, ok_id), job_state(app, failed_id)) == outcome, timeout=30,
             message="both jobs ran")

    enqueues = {span.attributes["job.task"]: span for span in web_spans.get_finished_spans()}
    assert set(enqueues) == {"tests.log_line", "demo.fail"}
    for span in enqueues.values():
        assert span.name.startswith("enqueue ") and span.kind.name == "PRODUCER"
        assert f"{span.context.trace_id:032x}" == TRACE_ID  # inside the caller's trace
        assert f"{span.parent.span_id:016x}" == INCOMING.split("-")[2]

    def runs():
        found = {s["attributes"].get("job.id"): s for s in console_spans(worker.output())
                 if s["name"].startswith("run ")}
        return found if {ok_id, failed_id} <= set(found) else None

    spans = wait_for(runs, timeout=20, message="the worker exported both run spans")
    for job_id, task in ((ok_id, "tests.log_line"), (failed_id, "demo.fail")):
        run = spans[job_id]
        assert run["name"] == f"run {task}" and run["kind"] == "SpanKind.CONSUMER"
        assert run["context"]["trace_id"] == "0x" + TRACE_ID
        assert run["parent_id"] == f"0x{enqueues[task].context.span_id:016x}"
        assert run["attributes"] == {"job.id": job_id, "job.task": task, "job.queue": "default",
                                     "job.attempt": 1}
        assert run["resource"]["attributes"]["service.name"] == "jobs-worker"
    assert spans[ok_id]["status"]["status_code"] == "UNSET" and not spans[ok_id]["events"]
    failed = spans[failed_id]
    assert failed["status"]["status_code"] == "ERROR"
    [event] = failed["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"].endswith("DemoFailure")
    assert event["attributes"]["exception.message"] == "on purpose"
    assert "Traceback" in event["attributes"]["exception.stacktrace"]


def test_tracing_is_off_without_otel_variables(app):
    assert not tracing.enabled() and not tracing.wanted({})
    assert tracing.wanted({"OTEL_SERVICE_NAME": "web"})
    assert not tracing.wanted({"OTEL_SERVICE_NAME": "web", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "web"})
    with tracing.enqueue_span("demo.noop", "default") as traceparent:
        assert traceparent is None
    with tracing.run_span("a" * 32, "demo.noop", "default", 1, INCOMING) as span:
        assert span is tracing.NO_SPAN


def test_without_the_packages_the_app_imports_nothing_and_enqueues_untraced(app_config):
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if not installed
        "from tasks import tracing\n"
        "assert not tracing.installed() and not tracing.setup()\n"
        "from app import create_app\n"
        "from tasks import enqueue\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    print(enqueue('demo.noop'))\n"
        "assert not any(name.startswith('opentelemetry.') for name in sys.modules)\n"
    )
    env = worker_env(app_config, OTEL_SERVICE_NAME="web", OTEL_TRACES_EXPORTER="console")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()[-1]) == 32  # a job id


def test_messages_with_and_without_trace_context_are_valid():
    traced = Delivery("a" * 32, "demo.noop", traceparent=INCOMING)
    assert decode(traced.encode()).traceparent == INCOMING
    assert decode(traced.next_attempt().encode()).traceparent == INCOMING  # retries stay in the trace
    plain = Delivery("b" * 32, "demo.noop").encode()
    assert b"traceparent" not in plain and decode(plain).traceparent is None
    old = json.dumps({"v": 1, "id": "c" * 32, "task": "demo.noop", "queue": "default", "priority": 0,
                      "args": [], "kwargs": {}, "attempt": 1, "max_attempts": 10, "eta": None})
    assert decode(old).traceparent is None  # a message from before tracing existed
    for bad in (7, ["x"], "x" * 1000):
        body = json.loads(traced.encode()) | {"traceparent": bad}
        assert decode(json.dumps(body)).traceparent is None  # a bad hint never poisons the job
