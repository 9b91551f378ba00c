"""The dashboard without Redis: every page and JSON endpoint answers from the ledger, with a visible
"job transport unavailable" banner and live-worker figures shown as unknown; JSON endpoints answer
JSON, errors included. The suite's own redis-server is stopped for the test and started again."""
from __future__ import annotations

import pytest

from tasks import lifecycle
from tests.helpers.ledger import job_state
from tests.helpers.web import csrf_for, post_form

PAGES = ["/hangfire", "/hangfire/fragment/overview", "/hangfire/jobs/enqueued", "/hangfire/jobs/failed",
         "/hangfire/jobs/failed/fragment", "/hangfire/jobs/all?q=kaput", "/hangfire/queues",
         "/hangfire/fragment/queues", "/hangfire/servers", "/hangfire/fragment/servers",
         "/hangfire/recurring", "/hangfire/audit", "/hangfire/enqueue?task=demo.sleep",
         "/hangfire/jobs/failed/export.csv"]
READS = ["/hangfire/api/", "/hangfire/api/stats", "/hangfire/api/jobs", "/hangfire/api/queues",
         "/hangfire/api/servers", "/hangfire/api/audit", "/hangfire/api/recurring",
         "/hangfire/api/search?q=demo"]


@pytest.fixture
def redis_down(app, people, jobs, redis_server):
    """The jobs and people exist; then the suite's redis-server stops (and starts again afterwards)."""
    redis_server.stop()
    try:
        yield
    finally:
        redis_server.start()


def test_every_page_answers_from_the_ledger_with_a_banner(people, jobs, redis_down):
    client = people["full"]
    for url in PAGES + [f"/hangfire/job/{jobs['failed']}", f"/hangfire/job/{jobs['failed']}/fragment"]:
        response = client.get(url, buffered=True)
        assert response.status_code == 200, url
        if "export" not in url:
            assert 'data-testid="transport-down"' in response.get_data(True), url
    overview = client.get("/hangfire").get_data(True)
    assert 'data-testid="count-workers">\n    <span class="hf-counter-value">unknown<' in overview
    assert 'data-testid="no-workers"' not in overview  # not "no worker": unknown
    queues = client.get("/hangfire/queues").get_data(True)
    assert 'data-testid="queue-workers"><span class="text-muted">unknown</span>' in queues
    assert ">Pause<" not in queues  # paused or not is unknown: nothing to offer
    assert 'data-testid="workers-unknown"' in client.get("/hangfire/servers").get_data(True)


def test_every_json_endpoint_answers_json(people, bearer, jobs, redis_down):
    for url in READS + [f"/hangfire/api/jobs/{jobs['failed']}"]:
        response = bearer("full", "get", url)
        assert response.status_code == 200 and response.is_json, url
    stats = bearer("full", "get", "/hangfire/api/stats").get_json()
    assert stats["transport"]["available"] is False and stats["transport"]["error"]
    assert stats["workers"] == {"alive": None, "dead": None}
    assert stats["states"]["Failed"] == 2  # from the ledger
    queues = {q["name"]: q for q in bearer("full", "get", "/hangfire/api/queues").get_json()["queues"]}
    assert queues["default"]["length"] == 1 and queues["default"]["paused"] is None
    assert queues["default"]["workers"] is None
    missing = bearer("full", "get", "/hangfire/api/nope")
    assert missing.status_code == 404 and missing.is_json


def test_actions_still_work_or_say_why_not(app, people, bearer, jobs, redis_down):
    retried = bearer("full", "post", f"/hangfire/api/jobs/{jobs['failed']}/retry")
    assert retried.status_code == 200 and retried.get_json()["changed"] == [jobs["failed"]]
    assert job_state(app, jobs["failed"]) == lifecycle.ENQUEUED  # the reconciler queues it when Redis is back
    deleted = bearer("full", "post", "/hangfire/api/actions/delete", json={"ids": [jobs["enqueued"]]})
    assert deleted.status_code == 200 and job_state(app, jobs["enqueued"]) == lifecycle.DELETED
    created = bearer("full", "post", "/hangfire/api/jobs", json={"task": "demo.sleep", "args": [1]})
    assert created.status_code == 201 and job_state(app, created.get_json()["id"]) == lifecycle.ENQUEUED
    paused = bearer("full", "post", "/hangfire/api/queues/pause", json={"queue": "default"})
    assert paused.status_code == 400 and "transport is unavailable" in paused.get_json()["error"]
    client = people["full"]
    page = post_form(client, "/hangfire/queues/pause", {"queue": "default"}, follow_redirects=True)
    assert page.status_code == 200 and "transport is unavailable" in page.get_data(True)
    session = client.post(f"/hangfire/api/jobs/{jobs['failed2']}/retry",
                          headers={"X-CSRFToken": csrf_for(client)})
    assert session.status_code == 200 and session.is_json
