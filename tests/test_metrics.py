"""``GET /metrics``: who may scrape it, and figures that match what a real worker did (issue 13)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db, write_transaction
from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY, USERS
from tasks import commands, metrics
from tasks.recovery import fold_metrics
from tests.helpers.ledger import enqueue, job_state
from tests.helpers.web import assert_json_401, bearer, bearer_token, sign_in
from tests.workers import wait_for

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def app_config(app_config):
    """The test app with a ``METRICS_TOKEN``."""
    app_config["METRICS_TOKEN"] = TOKEN
    return app_config


def scrape(app, headers=None) -> dict[tuple, float]:
    """``/metrics`` as ``{(sample name, sorted labels): value}`` (scraped with the token)."""
    response = app.test_client().get("/metrics", headers=headers or bearer(TOKEN))
    assert response.status_code == 200, response.get_data(True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    """The sample ``name`` with exactly ``labels`` (None when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))))


def test_scrape_access(app, make_user):
    make_user("full", permissions=[HANGFIRE])
    make_user("viewer", permissions=[HANGFIRE_READ_ONLY])
    make_user("clerk", permissions=[USERS])
    anonymous = app.test_client().get("/metrics")
    assert_json_401(anonymous)
    assert_json_401(app.test_client().get("/metrics", headers=bearer("not-the-token-0123456789")))
    assert_json_401(app.test_client().get("/metrics", headers=bearer(TOKEN + "x")))
    assert app.test_client().get("/metrics", headers=bearer(TOKEN)).status_code == 200
    for name in ("full", "viewer"):
        response = sign_in(app, name).get("/metrics")
        assert response.status_code == 200, name
        assert b"# TYPE jobs_workers gauge" in response.data
    refused = sign_in(app, "clerk").get("/metrics")
    assert refused.status_code == 403 and refused.is_json
    token = bearer_token(app.test_client(), "viewer")
    assert app.test_client().get("/metrics", headers=bearer(token)).status_code == 200
    clerk_token = bearer_token(app.test_client(), "clerk")
    assert app.test_client().get("/metrics", headers=bearer(clerk_token)).status_code == 403
    wrong_method = app.test_client().post("/metrics")
    assert wrong_method.status_code == 405 and wrong_method.is_json


def test_without_a_token_configured_only_dashboard_users_scrape(app_config, make_user):
    from app import create_app

    app_config["METRICS_TOKEN"] = None
    other = create_app(app_config)
    assert_json_401(other.test_client().get("/metrics", headers=bearer("anything-at-all-0123456789")))


def test_counts_after_a_real_worker_ran_jobs(app, start_worker):
    succeeded = [enqueue(app, "demo.noop", args=()) for _ in range(3)]
    failed = enqueue(app, "tests.always_fails", args=("on purpose",))
    flaky = enqueue(app, "demo.flaky", args=(1,))
    doomed = enqueue(app, "demo.noop", args=(), delay=3600)
    with app.app_context():
        assert commands.delete([doomed], by="tester") == [doomed]
    start_worker(JOBS_BACKOFF_SCALE="0.01")
    for job_id in succeeded + [flaky]:
        wait_for(lambda job_id=job_id: job_state(app, job_id) == "Succeeded", message=f"{job_id} succeeded")
    wait_for(lambda: job_state(app, failed) == "Failed", message="the failing job to fail")
    wait_for(lambda: (s := scrape(app)) and value(s, "jobs_workers") == 1
             and value(s, "jobs_ledger_backlog") == 0, message="the worker live, with nothing left to write")

    def check(samples):
        finished = "jobs_finished_total"
        assert value(samples, finished, task="demo.noop", queue="default", state="succeeded") == 3
        assert value(samples, finished, task="demo.noop", queue="default", state="deleted") == 1
        assert value(samples, finished, task="demo.noop", queue="default", state="failed") == 0
        assert value(samples, finished, task="tests.always_fails", queue="default", state="failed") == 1
        assert value(samples, finished, task="demo.flaky", queue="default", state="succeeded") == 1
        assert value(samples, "jobs_retries_total", task="tests.always_fails") == 2
        assert value(samples, "jobs_retries_total", task="demo.flaky") == 1
        assert value(samples, "jobs_retries_total", task="demo.noop") == 0
        assert value(samples, "jobs_duration_seconds_count", task="demo.noop", queue="default") == 3
        assert value(samples, "jobs_duration_seconds_count", task="tests.always_fails", queue="default") == 3
        runs = value(samples, "jobs_duration_seconds_bucket", task="demo.flaky", queue="default", le="+Inf")
        assert runs == 2
        assert value(samples, "jobs_duration_seconds_sum", task="demo.noop", queue="default") > 0
        assert value(samples, "jobs_queue_workers", queue="default") == 1
        assert value(samples, "jobs_queue_length", queue="default") == 0
        assert value(samples, "jobs_queue_latency_seconds", queue="default") == 0
        assert value(samples, "jobs_transport_up") == 1
        assert value(samples, "jobs_ledger_backlog") is not None

    before = scrape(app)
    check(before)
    with app.app_context():  # the leader's fold moves raw rows into the totals: nothing counts twice
        fold_metrics()
        with write_transaction() as conn:
            metrics.fold(conn, metrics.minute_of(datetime.utcnow()) + timedelta(minutes=1))
        fold_metrics()
        raw = db.session.execute(db.select(db.func.count()).select_from(metrics.metrics_table)
                                 .where(metrics.metrics_table.c.grain == metrics.RAW)).scalar()
    check(scrape(app))
    assert raw == 0


def test_queue_gauges_without_a_worker(app):
    for _ in range(2):
        enqueue(app, "demo.noop", args=())
    samples = wait_for(lambda: (s := scrape(app)) and value(s, "jobs_queue_latency_seconds", queue="default")
                       and s, message="the oldest job to have waited")
    assert value(samples, "jobs_queue_length", queue="default") == 2
    assert value(samples, "jobs_queue_workers", queue="default") == 0
    assert value(samples, "jobs_workers") == 0
    assert value(samples, "jobs_queue_length", queue="email") == 0


def test_fold_keeps_totals_and_rolls_minutes_into_hours(app):
    now = datetime(2026, 12, 1, 12, 30, 15)
    rows = {}
    for minutes_ago, seconds in ((1, 0.02), (1, 0.3), (10, 4.0), (180, 0.02), (60 * 24 * 9, 1.0)):
        bucket = metrics.minute_of(now - timedelta(minutes=minutes_ago))
        measure = rows.setdefault((bucket, "demo.noop", "default", metrics.SUCCEEDED), metrics.Measure())
        measure.observe(seconds)
    current = metrics.Measure()
    current.observe(0.5)
    rows[(metrics.minute_of(now), "demo.noop", "default", metrics.SUCCEEDED)] = current
    with app.app_context():
        with write_transaction() as conn:
            metrics.put(conn, rows, metrics.RAW)
        before = metrics.totals()[("demo.noop", "default", metrics.SUCCEEDED)]
        key = ("demo.noop", "default", metrics.SUCCEEDED)
        with write_transaction() as conn:
            assert metrics.fold(conn, now) == 5
        folded = metrics.totals()[key]
        with write_transaction() as conn:
            metrics.put(conn, {(metrics.minute_of(now), *key): current}, metrics.RAW)
            assert metrics.fold(conn, now) == 1  # merged with the minute row folded before
        after = metrics.totals()[key]
        c = metrics.metrics_table.c
        grains = db.session.execute(db.select(c.grain, c.bucket, c["count"]).order_by(c.bucket)).all()
    assert (folded.count, folded.observed, folded.bands) == (before.count, before.observed, before.bands)
    assert after.count == 7 and abs(after.seconds - 6.34) < 1e-9
    assert [(grain, count) for grain, _, count in grains] == [
        (metrics.HOUR, 1), (metrics.MINUTE, 1), (metrics.MINUTE, 2), (metrics.MINUTE, 2)]
    assert grains[0][1] == datetime(2026, 12, 1, 9, 0)  # three hours ago, as an hour; nine days ago: dropped


def test_histogram_quantiles():
    measure = metrics.Measure()
    for _ in range(90):
        measure.observe(0.04)  # band (0.025, 0.05]
    for _ in range(10):
        measure.observe(7200)  # beyond the last bound
    assert 0.025 < measure.quantile(0.5) <= 0.05
    assert measure.quantile(0.95) == metrics.BOUNDS[-1]
    assert measure.cumulative()[-1] == 100 and measure.count == 100
    assert metrics.Measure().quantile(0.5) is None


def test_shipped_alert_rules_use_metrics_the_app_exposes(app):
    from pathlib import Path

    rules = (Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml").read_text()
    names = set(re.findall(r"\b(jobs_[a-z_]+)", rules))
    assert {"jobs_finished_total", "jobs_retries_total", "jobs_queue_latency_seconds", "jobs_queue_length",
            "jobs_queue_workers"} <= names
    exposed = app.test_client().get("/metrics", headers=bearer(TOKEN)).get_data(True)
    for name in names:
        assert f"# TYPE {name} " in exposed, name
