"""The dashboard's Metrics page and its JSON twin: per task runs, failures, times, after a real worker."""
from __future__ import annotations

import re
from datetime import datetime
from html import unescape

import pytest

from admin.dashboard.metrics import WINDOWS, metrics_page
from tests.helpers.ledger import enqueue, job_state
from tests.helpers.web import EXPECTED_GET
from tests.workers import wait_for


@pytest.fixture
def ran(app, start_worker):
    """Jobs a real worker ran: three successes, one job failing all three attempts, one flaky success."""
    ids = {"noop": [enqueue(app, "demo.noop", args=()) for _ in range(3)],
           "fails": enqueue(app, "tests.always_fails", args=("on purpose",)),
           "flaky": enqueue(app, "demo.flaky", args=(1,))}
    start_worker(JOBS_BACKOFF_SCALE="0.01")
    for job_id in ids["noop"] + [ids["flaky"]]:
        wait_for(lambda job_id=job_id: job_state(app, job_id) == "Succeeded", message=f"{job_id} succeeded")
    wait_for(lambda: job_state(app, ids["fails"]) == "Failed", message="the failing job to fail")
    return ids


def row_of(html: str, task: str) -> str:
    """The Metrics table's row of ``task``."""
    match = re.search(r'<tr data-task="' + re.escape(task) + r'">(.*?)</tr>', html, re.S)
    assert match, f"no row for {task}"
    return match.group(1)


def cell(row: str, testid: str) -> str:
    """The text of the cell marked ``data-testid=testid`` in ``row``."""
    match = re.search(r'data-testid="' + testid + r'">(.*?)</td>', row, re.S)
    assert match, testid
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_who_may_open_the_metrics_page(people):
    for kind, client in people.items():
        assert client.get("/hangfire/metrics").status_code == EXPECTED_GET[kind], kind
    page = people["read_only"].get("/hangfire/metrics").get_data(True)
    assert 'href="/hangfire/metrics"' in page and "Metrics" in page
    assert "No job ran in this window." in page
    overview = people["full"].get("/hangfire").get_data(True)
    assert 'href="/hangfire/metrics"' in overview  # a tab of the dashboard's navigation


def test_page_and_api_show_what_the_worker_did(app, admin_client, ran):
    html = admin_client.get("/hangfire/metrics").get_data(True)
    noop, fails, flaky = (row_of(html, task) for task in ("demo.noop", "tests.always_fails", "demo.flaky"))
    columns = ("runs", "failures", "failure-rate")
    figures = [tuple(cell(row, name) for name in columns) for row in (noop, fails, flaky)]
    assert figures == [("3", "0", "0.0 %"), ("3", "3", "100.0 %"), ("2", "1", "50.0 %")]
    assert 'data-testid="sparkline"' in noop and "<path" in noop
    link = unescape(re.search(r'href="([^"]+)" data-testid="task-link"', noop).group(1))
    assert link.startswith("/hangfire/jobs/all?") and "task=demo.noop" in link
    listed = admin_client.get(link).get_data(True)
    assert all(job_id[-8:] in listed for job_id in ran["noop"])
    assert ran["fails"][-8:] not in listed
    failures_link = unescape(re.search(r'href="(/hangfire/jobs/failed\?[^"]+)"', fails).group(1))
    assert ran["fails"][-8:] in admin_client.get(failures_link).get_data(True)

    for window in WINDOWS:
        answer = admin_client.get(f"/hangfire/api/metrics?window={window}")
        assert answer.status_code == 200
        body = answer.get_json()
        assert body["window"] == window and body["slot_seconds"] == WINDOWS[window].slot_seconds
        tasks = {row["task"]: row for row in body["tasks"]}
        assert (tasks["demo.noop"]["runs"], tasks["demo.noop"]["failures"]) == (3, 0)
        assert tasks["tests.always_fails"]["failed"] == 1 and tasks["tests.always_fails"]["retried"] == 2
        assert tasks["demo.flaky"]["failure_rate"] == 0.5
        assert tasks["demo.noop"]["duration_p95_s"] > 0 and tasks["demo.noop"]["queue_wait_p95_s"] is not None
        assert sum(tasks["demo.noop"]["series"]["runs"]) == 3
        assert len(tasks["demo.noop"]["series"]["runs"]) == WINDOWS[window].slots
        page = admin_client.get(f"/hangfire/metrics?window={window}").get_data(True)
        assert cell(row_of(page, "demo.noop"), "runs") == "3"


def test_a_window_that_does_not_exist(admin_client, bearer):
    page = admin_client.get("/hangfire/metrics?window=year")
    assert page.status_code == 400 and "window" in page.get_data(True)
    answer = bearer("read_only", "get", "/hangfire/api/metrics?window=<script>")
    assert answer.status_code == 400 and "window" in answer.get_json()["error"]
    assert bearer("outsider", "get", "/hangfire/api/metrics").status_code == 403
    assert bearer("read_only", "get", "/hangfire/api/metrics").get_json()["tasks"] == []


def test_slots_are_aligned_and_filled(app):
    now = datetime(2026, 12, 1, 14, 37, 12)
    assert WINDOWS["hour"].start(now) == datetime(2026, 12, 1, 13, 38)
    assert WINDOWS["day"].start(now) == datetime(2026, 11, 30, 15, 0)
    assert WINDOWS["week"].start(now) == datetime(2026, 11, 24, 18, 0)
    with app.app_context():
        empty = metrics_page("week", now)
    assert empty.tasks == [] and empty.as_json()["since"].startswith("2026-11-24T18:00")
