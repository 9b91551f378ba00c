"""``GET /metrics``: the job system in Prometheus' text format, read from shared stores at scrape time.

Nothing is counted in this process's memory: a custom collector asks the ledger's metrics
tables (``tasks.metrics``: cumulative totals plus the rows not folded yet) and the job
transport (queues, live workers) on every scrape, so every web process and dyno answers the
same figures and a restart loses nothing.

=========================================  =======================================================
metric                                     meaning
=========================================  =======================================================
``jobs_finished_total{task,queue,state}``  jobs that entered a final state (succeeded, failed,
                                           deleted) — counter
``jobs_duration_seconds{task,queue}``      run time of every attempt that ran — histogram
``jobs_retries_total{task}``               attempts that failed and were scheduled again — counter
``jobs_queue_length{queue}``               jobs waiting in the queue — gauge
``jobs_queue_latency_seconds{queue}``      how long the oldest waiting job has waited (0 if none)
``jobs_queue_workers{queue}``              live workers reading the queue
``jobs_workers``                           live workers
``jobs_ledger_backlog``                    transitions the live workers' completers have yet to
                                           write to the ledger (the ledger writer's backlog)
``jobs_transport_up``                      1 when the job transport answered this scrape
=========================================  =======================================================

The worker gauges are left out while the transport doesn't answer (unknown, not zero).

Access: ``Authorization: Bearer <METRICS_TOKEN>`` (compared in constant time), or a signed-in
host user (session or API token) the dashboard's authorization chain lets in. Anonymous callers get
401, other signed-in users 403 (a tenant's users too: the figures count every tenant's jobs), both
as JSON.
"""
from __future__ import annotations

import hmac
import logging
from collections import defaultdict

from flask import Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.openapi.registry import STRING, documented, error
from app.openapi.registry import Response as Answer
from app.web import add_api_prefix
from tasks import metrics

log = logging.getLogger(__name__)

PATH = "/metrics"
#: why a tenant's user gets 403 here, on the Metrics page and its JSON: the figures are kept per task and
#: queue, not per tenant, so they would count other tenants' jobs
HOST_ONLY = "The metrics count every tenant's jobs: only host users see them."


def bucket_labels() -> list[str]:
    """Prometheus ``le`` labels of the duration histogram, ``+Inf`` last."""
    return [repr(float(bound)) for bound in metrics.BOUNDS] + ["+Inf"]


class LedgerCollector:
    """Collects the job metrics from the ledger and the transport when Prometheus scrapes."""

    def collect(self):
        """Yield every metric family (see the module's table)."""
        yield from self.ledger_families(metrics.totals())
        yield from self.live_families()

    @staticmethod
    def ledger_families(totals: dict[tuple[str, str, str], metrics.Measure]):
        """Finished jobs, run times and retries from the cumulative totals (zeros for every state of a
        known task and queue, so alert expressions always find their series)."""
        finished = CounterMetricFamily("jobs_finished", "Jobs that entered a final state.",
                                       labels=["task", "queue", "state"])
        duration = HistogramMetricFamily("jobs_duration_seconds", "Run time of each attempt that ran.",
                                         labels=["task", "queue"])
        retries = CounterMetricFamily("jobs_retries", "Attempts that failed and were scheduled again.",
                                      labels=["task"])
        pairs = sorted({(task, queue) for task, queue, _ in totals})
        runs: dict[tuple[str, str], metrics.Measure] = defaultdict(metrics.Measure)
        retried: dict[str, int] = defaultdict(int)
        for (task, queue, kind), measure in totals.items():
            if kind in metrics.RUN_KINDS:
                runs[(task, queue)].add(measure)
            if kind == metrics.RETRIED:
                retried[task] += measure.count
        labels = bucket_labels()
        for task, queue in pairs:
            for kind in metrics.FINISHED_KINDS:
                measure = totals.get((task, queue, kind))
                finished.add_metric([task, queue, kind], measure.count if measure else 0)
            run = runs[(task, queue)]
            duration.add_metric([task, queue], list(zip(labels, run.cumulative())), sum_value=run.seconds)
        for task in sorted({task for task, _ in pairs}):
            retries.add_metric([task], retried[task])
        return finished, duration, retries

    @staticmethod
    def live_families():
        """Queue lengths and waits, live readers, workers and the ledger writer's backlog."""
        from admin.dashboard.live import live, queue_rows

        rows = queue_rows()
        state = live()
        length = GaugeMetricFamily("jobs_queue_length", "Jobs waiting in the queue.", labels=["queue"])
        latency = GaugeMetricFamily("jobs_queue_latency_seconds",
                                    "How long the oldest waiting job has waited (0 when none waits).",
                                    labels=["queue"])
        readers = GaugeMetricFamily("jobs_queue_workers", "Live workers reading the queue.", labels=["queue"])
        for row in rows:
            length.add_metric([row["name"]], row["length"] or 0)
            latency.add_metric([row["name"]], max(0.0, row["oldest_age_seconds"] or 0.0))
            if row["workers"] is not None:
                readers.add_metric([row["name"]], row["workers"])
        families = [length, latency]
        if state.workers is not None:
            alive = [worker for worker in state.workers if worker["alive"]]
            families += [
                readers,
                GaugeMetricFamily("jobs_workers", "Live workers.", value=len(alive)),
                GaugeMetricFamily("jobs_ledger_backlog", "Transitions live workers have yet to write to the "
                                  "ledger.", value=sum(int(w.get("ledger_backlog") or 0) for w in alive)),
            ]
        families.append(GaugeMetricFamily("jobs_transport_up", "1 when the job transport answered.",
                                          value=1 if state.available else 0))
        return families


def metrics_token_matches() -> bool:
    """True when the request carries ``Authorization: Bearer <METRICS_TOKEN>`` (constant-time compare)."""
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if not token or not header[:7].lower() == "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def refusal() -> Response | None:
    """None when the caller may scrape; else the 401 (anonymous) or 403 (signed in, refused) JSON answer."""
    from admin.authorization import current_decision, refuse_decision

    if metrics_token_matches():
        return None
    decision = current_decision()
    if decision.allowed and decision.tenant is not None:  # the figures count every tenant's jobs
        return json_error(403, HOST_ONLY)
    return None if decision.allowed else refuse_decision(decision, api=True)


def json_error(status: int, message: str) -> Response:
    """``{"error": message}`` with ``status`` (the admin's helper, imported late: admin imports app)."""
    from admin.access import json_error as answer

    return answer(status, message)


@documented("Prometheus metrics of the job system (text exposition format 0.0.4)",
            {200: Answer("the metrics", STRING, media_types=("text/plain",)),
             403: error("signed in, but not allowed to open the dashboard"),
             503: error("the database doesn't answer")},
            tags=("Metrics",),
            description="Bearer `METRICS_TOKEN`, or a session or API token of a dashboard user.")
def scrape():
    """The Prometheus exposition (text format 0.0.4) of the job system's metrics; 503 while the database
    doesn't answer."""
    refused = refusal()
    if refused is not None:
        return refused
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector())
    try:
        body = generate_latest(registry)
    except SQLAlchemyError as exc:  # the database is away: the scrape fails visibly (up == 0), no trace
        log.warning("metrics scrape failed: the database doesn't answer: %s", exc)
        db.session.rollback()
        return json_error(503, "database unavailable")
    response = Response(body, mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response.headers["Cache-Control"] = "no-store"
    return response


scrape.accepts_own_bearer = metrics_token_matches  # the token is ours, not a JWT to verify


def init_app(app: Flask) -> None:
    """Register ``GET /metrics`` (errors there are JSON, like the API's)."""
    app.add_url_rule(PATH, "metrics", scrape, methods=["GET"])
    add_api_prefix(app, PATH + "/")
