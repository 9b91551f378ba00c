"""The jobs dashboard's pages, fragments, exports and form actions (``/hangfire``).

Helpers here (seeding jobs in given states, signing in, snapshots of what could change)
are shared with ``test_dashboard_api.py`` and ``test_browser_dashboard.py``.
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from sqlalchemy import func, insert, select, update

from admin.dashboard import data as dashboard_data
from admin.dashboard import export as dashboard_export
from app.extensions import db
from tasks import commands, ledger, lifecycle, queries
from tasks.ledger import Job, utcnow
from tasks.lifecycle import Transition
from tasks.progress import logs_table
from tasks.recurring import RecurringJob
from tests.helpers.ledger import (IMG, SCRIPT, WORKER, enqueue, fail, failed_job, insert_failed_rows,
                                  job_state, snapshot, transport_of)
from tests.helpers.web import EXPECTED_GET, EXPECTED_POST, assert_escaped, csrf_for, post_form
from tests.workers import wait_for


def flashes(client, url: str = "/hangfire") -> str:
    """The text of the page after an action (its flash messages)."""
    return client.get(url).get_data(True)


# --- the route walk ---------------------------------------------------------------------------

def page_urls(ids: dict) -> list[str]:
    """Every GET page, fragment and export of the dashboard."""
    slugs = ["enqueued", "scheduled", "processing", "succeeded", "failed", "deleted", "awaiting", "retries",
             "all"]
    return (["/hangfire", "/hangfire/", "/hangfire/fragment/overview", "/hangfire/queues",
             "/hangfire/fragment/queues", "/hangfire/servers", "/hangfire/fragment/servers",
             "/hangfire/audit",
             f"/hangfire/job/{ids['failed']}", f"/hangfire/job/{ids['failed']}/fragment",
             "/hangfire/jobs/failed/export.csv", "/hangfire/jobs/all/export.json?q=kaput"]
            + [f"/hangfire/jobs/{slug}" for slug in slugs]
            + [f"/hangfire/jobs/{slug}/fragment" for slug in slugs])


def was_enqueued_by_full(app, task: str) -> bool:
    """True when a ``task`` job enqueued by the user ``full`` exists."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Job).where(
            Job.task == task, Job.enqueued_by == "full")) > 0


def form_actions(app, ids: dict) -> list[tuple[str, dict, Callable[[], bool]]]:
    """Every form action of the dashboard, with data that changes something and a check of that change."""
    paused = lambda: transport_of(app).paused()  # noqa: E731
    state_of = lambda key: job_state(app, ids[key])  # noqa: E731
    return [
        ("/hangfire/actions/retry", {"ids": [ids["failed"]]}, lambda: state_of("failed") == "Enqueued"),
        ("/hangfire/actions/requeue", {"job": ids["failed2"]}, lambda: state_of("failed2") == "Enqueued"),
        ("/hangfire/actions/trigger", {"ids": [ids["scheduled"]]},
         lambda: state_of("scheduled") == "Enqueued"),
        ("/hangfire/actions/delete", {"ids": [ids["enqueued"]]}, lambda: state_of("enqueued") == "Deleted"),
        ("/hangfire/actions/delete", {"scope": "all", "list": "enqueued"},
         lambda: was_enqueued_by_full(app, "jobs.bulk_action")),
        ("/hangfire/queues/pause", {"queue": "default"}, lambda: paused() == {"default"}),
        ("/hangfire/queues/resume", {"queue": "default"}, lambda: paused() == set()),
        ("/hangfire/enqueue", {"task": "demo.noop", "args": "[]", "kwargs": "{}"},
         lambda: was_enqueued_by_full(app, "demo.noop")),
    ]


@pytest.mark.parametrize("kind", ["anonymous", "no_permission", "read_only", "full"])
def test_route_walk_pages(app, people, jobs, kind):
    client = people[kind]
    wrong = []
    for url in page_urls(jobs):
        response = client.get(url, buffered=True)  # exports stream: read them within the request
        if response.status_code != EXPECTED_GET[kind]:
            wrong.append(f"GET {url}: {response.status_code}")
        elif kind == "anonymous" and not response.headers["Location"].startswith("/login?next=%2Fhangfire"):
            wrong.append(f"GET {url}: redirected to {response.headers['Location']}")
    enqueue_form = client.get("/hangfire/enqueue").status_code
    if enqueue_form != {"read_only": 403}.get(kind, EXPECTED_GET[kind]):
        wrong.append(f"GET /hangfire/enqueue: {enqueue_form}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", ["anonymous", "no_permission", "read_only", "full"])
def test_route_walk_actions(app, people, jobs, kind):
    """Every form action, posted with a valid CSRF token; refused ones change nothing at all."""
    client = people[kind]
    before = snapshot(app)
    wrong = []
    for url, data, changed in form_actions(app, jobs):
        response = post_form(client, url, data)
        if response.status_code != EXPECTED_POST[kind]:
            wrong.append(f"POST {url} {data}: {response.status_code}")
        elif kind == "full" and not changed():
            wrong.append(f"POST {url} {data}: answered {response.status_code} but changed nothing")
    assert not wrong, "\n".join(wrong)
    if kind != "full":
        assert snapshot(app) == before


def test_anonymous_fragment_asks_for_json_gets_401(people):
    response = people["anonymous"].get("/hangfire/fragment/overview", headers={"Accept": "application/json"})
    assert response.status_code == 401 and response.is_json


def test_read_only_sees_no_action_controls(app, people, jobs):
    client = people["read_only"]
    for url in ["/hangfire", "/hangfire/jobs/failed", "/hangfire/jobs/all", "/hangfire/jobs/scheduled",
                f"/hangfire/job/{jobs['failed']}", f"/hangfire/job/{jobs['scheduled']}", "/hangfire/queues",
                "/hangfire/jobs/failed/fragment"]:
        html = client.get(url).get_data(True)
        assert html.count('method="post"') == html.count("Sign out</button>"), url  # only the sign-out form
        for marker in ("formaction=", 'name="ids"', "data-confirm", "Enqueue a job", ">Retry<", ">Pause<"):
            assert marker not in html, (url, marker)
    assert 'data-testid="read-only"' in client.get("/hangfire").get_data(True)


def test_full_user_sees_action_controls(people, jobs):
    html = people["full"].get("/hangfire/jobs/failed").get_data(True)
    assert 'name="ids"' in html and "/hangfire/actions/retry" in html and "Retry all matching" in html
    assert "Enqueue a job" in html


# --- CSRF ------------------------------------------------------------------------------------

def test_actions_without_csrf_token_are_refused(app, people, jobs):
    client = people["full"]
    before = snapshot(app)
    for url, data, _ in form_actions(app, jobs):
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "CSRF" in response.get_data(True)
    assert snapshot(app) == before


def test_actions_with_a_foreign_csrf_token_are_refused(app, people, jobs):
    stolen = csrf_for(people["read_only"])
    response = people["full"].post("/hangfire/actions/requeue",
                                   data={"ids": [jobs["failed"]], "csrf_token": stolen})
    assert response.status_code == 400 and job_state(app, jobs["failed"]) == lifecycle.FAILED


# --- escaping --------------------------------------------------------------------------------

@pytest.fixture
def hostile(app):
    """Jobs whose arguments, display name and exception carry script and markup payloads."""
    return {
        "args": failed_job(app, task="demo.fail", args=(IMG,), message=SCRIPT),
        "display": failed_job(app, task="demo.sleep", args=(SCRIPT,), message=IMG),
        "kwargs": enqueue(app, task="demo.fail", args=(), kwargs={"message": SCRIPT + IMG}),
    }


def test_payloads_are_escaped_everywhere(app, people, hostile):
    client = people["full"]
    urls = ["/hangfire/jobs/failed", "/hangfire/jobs/failed/fragment", "/hangfire/jobs/all",
            "/hangfire/jobs/enqueued", "/hangfire/jobs/all?q=script", "/hangfire/jobs/all?q=onerror",
            "/hangfire/jobs/all?q=" + SCRIPT, "/hangfire/audit"]
    urls += [f"/hangfire/job/{job_id}" for job_id in hostile.values()]
    urls += [f"/hangfire/job/{job_id}/fragment" for job_id in hostile.values()]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.get_data(True), url)
    detail = client.get(f"/hangfire/job/{hostile['args']}").get_data(True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail  # the exception message, shown escaped
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in detail  # the argument, as pretty JSON, escaped
    listing = client.get("/hangfire/jobs/failed").get_data(True)
    assert "Sleep &lt;script&gt;alert(1)&lt;/script&gt;s" in listing  # display name made from the argument


def test_enqueue_form_rerenders_payloads_escaped(people):
    response = post_form(people["full"], "/hangfire/enqueue",
                         {"task": "demo.fail", "args": SCRIPT, "kwargs": IMG, "queue": SCRIPT})
    assert response.status_code == 400
    assert_escaped(response.get_data(True), "enqueue form")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.get_data(True)


def test_search_for_payload_in_audit_filter_is_escaped(app, people, jobs):
    response = post_form(people["full"], "/hangfire/actions/delete",
                         {"scope": "all", "list": "failed", "q": "kaput"})
    assert response.status_code == 302
    post_form(people["full"], "/hangfire/actions/delete", {"scope": "all", "list": "all", "q": SCRIPT})
    assert_escaped(people["full"].get("/hangfire/audit").get_data(True), "audit")


# --- each action's effect on the ledger and the transport ------------------------------------

def test_retry_selected_failed_job(app, people, jobs):
    before = transport_of(app).queue_lengths().get("default", 0)
    response = post_form(people["full"], "/hangfire/actions/requeue",
                         {"ids": [jobs["failed"]], "next": "/hangfire/jobs/failed"})
    assert response.status_code == 302 and response.headers["Location"] == "/hangfire/jobs/failed"
    assert "Requeued 1 job." in flashes(people["full"], "/hangfire/jobs/failed")
    assert job_state(app, jobs["failed"]) == lifecycle.ENQUEUED
    assert transport_of(app).holds([jobs["failed"]]) == {jobs["failed"]}
    assert transport_of(app).queue_lengths()["default"] == before + 1
    with app.app_context():
        job = queries.get_job(jobs["failed"])
        assert job.attempt == 0 and job.state_reason == "Requeued by full"


def test_row_button_acts_on_its_job_only(app, people, jobs):
    post_form(people["full"], "/hangfire/actions/requeue", {"job": jobs["failed2"], "ids": [jobs["failed"]]})
    assert job_state(app, jobs["failed2"]) == lifecycle.ENQUEUED
    assert job_state(app, jobs["failed"]) == lifecycle.FAILED


def test_trigger_scheduled_job_moves_it_to_its_queue(app, people, jobs):
    before = transport_of(app).queue_lengths().get("default", 0)
    post_form(people["full"], "/hangfire/actions/trigger", {"ids": [jobs["scheduled"]]})
    assert job_state(app, jobs["scheduled"]) == lifecycle.ENQUEUED
    assert transport_of(app).queue_lengths()["default"] == before + 1
    assert transport_of(app).holds([jobs["scheduled"]])


def test_delete_enqueued_job_removes_it_from_the_transport(app, people, jobs):
    assert transport_of(app).holds([jobs["enqueued"]])
    post_form(people["full"], "/hangfire/actions/delete", {"ids": [jobs["enqueued"], jobs["scheduled"]]})
    assert job_state(app, jobs["enqueued"]) == job_state(app, jobs["scheduled"]) == lifecycle.DELETED
    assert transport_of(app).holds([jobs["enqueued"], jobs["scheduled"]]) == set()


def test_action_on_jobs_in_other_states_is_reported(app, people, jobs):
    response = post_form(people["full"], "/hangfire/actions/trigger",
                         {"ids": [jobs["failed"], jobs["scheduled"]]}, follow_redirects=True)
    assert "Enqueued 1 of 2 jobs. 1 was not in a state this action applies to." in response.get_data(True)
    assert job_state(app, jobs["failed"]) == lifecycle.FAILED


def test_action_without_selection_or_unknown_action(app, people, jobs):
    before = snapshot(app)
    nothing = post_form(people["full"], "/hangfire/actions/delete", {}, follow_redirects=True)
    assert "Select at least one job." in nothing.get_data(True)
    unknown = post_form(people["full"], "/hangfire/actions/explode", {"ids": [jobs["failed"]]},
                        follow_redirects=True)
    assert "Unknown action" in unknown.get_data(True)
    assert snapshot(app) == before


def test_actions_are_audited(app, people, jobs):
    post_form(people["full"], "/hangfire/actions/requeue", {"ids": [jobs["failed"], jobs["enqueued"]]})
    post_form(people["full"], "/hangfire/queues/pause", {"queue": "reports"})
    with app.app_context():
        entries, _ = queries.audit_log()
    assert [(e.user, e.action, e.count) for e in entries] == [
        ("full", "pause-queue", 0), ("full", "requeue", 1)]
    assert entries[1].ids == [jobs["failed"], jobs["enqueued"]] and entries[0].filter == {"queue": "reports"}
    html = people["full"].get("/hangfire/audit").get_data(True)
    assert "pause-queue" in html and f"#{jobs['failed'][-8:]}" in html


def test_pause_and_resume_queue(app, people):
    client = people["full"]
    response = post_form(client, "/hangfire/queues/pause", {"queue": "reports"}, follow_redirects=True)
    assert "Queue “reports” paused" in response.get_data(True)
    assert transport_of(app).paused() == {"reports"}
    queues = client.get("/hangfire/queues").get_data(True)
    row = re.search(r'<tr data-queue="reports"[^>]*>.*?</tr>', queues, re.S).group(0)
    assert 'data-testid="queue-paused"' in row and ">Resume<" in row
    post_form(client, "/hangfire/queues/resume", {"queue": "reports"})
    assert transport_of(app).paused() == set()
    assert "A queue name has" in post_form(client, "/hangfire/queues/pause", {"queue": ""},
                                           follow_redirects=True).get_data(True)
    assert post_form(client, "/hangfire/queues/explode", {"queue": "reports"}).status_code == 404


def test_bulk_on_filter_starts_a_background_job(app, people, jobs):
    response = post_form(people["full"], "/hangfire/actions/requeue",
                         {"scope": "all", "list": "failed", "q": "kaput", "next": "/hangfire/jobs/failed"})
    assert response.status_code == 302
    page = flashes(people["full"], "/hangfire/jobs/failed")
    match = re.search(r"Started “Requeue” on 1 job in the background \(bulk job ([0-9a-f]{32})\)", page)
    assert match, page
    with app.app_context():
        bulk = queries.get_job(match.group(1))
        assert bulk.task == "jobs.bulk_action" and bulk.enqueued_by == "full"
        requeueable = ["Scheduled", "Succeeded", "Failed", "Deleted"]
        expected = {"state": "Failed", "text": "kaput", "states": requeueable}
        assert json.loads(bulk.args)[:2] == ["requeue", expected]
        entries, _ = queries.audit_log()
    assert (entries[0].action, entries[0].count, entries[0].filter) == (
        "requeue-matching", 1, {"state": "Failed", "text": "kaput"})
    assert job_state(app, jobs["failed"]) == lifecycle.FAILED  # the background job does the work


def test_bulk_on_filter_with_no_match(app, people, jobs):
    response = post_form(people["full"], "/hangfire/actions/delete",
                         {"scope": "all", "list": "failed", "q": "nothing"}, follow_redirects=True)
    assert "No job matching this filter is in a state “Delete” applies to" in response.get_data(True)


def test_bulk_delete_with_a_worker_touches_only_matching_jobs(app, people, start_worker):
    keep = [failed_job(app, task="demo.fail", args=("keep",)) for _ in range(3)]
    drop = [failed_job(app, args=(0.5,)) for _ in range(25)]
    post_form(people["full"], "/hangfire/actions/delete",
              {"scope": "all", "list": "failed", "task": "demo.sleep"})
    start_worker()
    wait_for(lambda: all(job_state(app, i) == lifecycle.DELETED for i in drop), timeout=30)
    assert {job_state(app, i) for i in keep} == {lifecycle.FAILED}


#: enough rows for the bulk job to run many batches (its speed at 100,000 and more is the bench's business)
BULK_ROWS = 20_000


@pytest.mark.slow
def test_bulk_retry_of_every_matching_failed_job(app, people, start_worker):
    insert_failed_rows(app, BULK_ROWS)
    response = post_form(people["full"], "/hangfire/actions/retry", {"scope": "all", "list": "failed"})
    assert response.status_code == 302
    assert f"Started “Retry” on {BULK_ROWS:,} jobs" in flashes(people["full"])
    start_worker(queues="default")  # runs the bulk job; the requeued jobs wait in "parked"

    def all_enqueued():
        """True once the ledger shows every seeded job requeued."""
        with app.app_context():
            counts = queries.state_counts()
        return counts[lifecycle.FAILED] == 0 and counts[lifecycle.ENQUEUED] == BULK_ROWS

    wait_for(all_enqueued, timeout=180, interval=0.5, message=f"{BULK_ROWS:,} jobs requeued in the ledger")
    # each batch commits the ledger first, then pushes to the transport: wait for the last push
    wait_for(lambda: transport_of(app).queue_lengths().get("parked") == BULK_ROWS, timeout=60,
             message=f"{BULK_ROWS:,} jobs queued in the transport")


# --- lists: filters, pagination, counts -------------------------------------------------------

def listed_ids(client, url: str) -> list[str]:
    """Job ids of the rows on a list page, in order."""
    return re.findall(r'<tr data-job-id="([0-9a-f]+)"', client.get(url).get_data(True))


def test_filters_narrow_the_list(app, people):
    client = people["full"]
    a = failed_job(app, task="demo.fail", args=("alpha-needle",), message="first", queue="reports")
    b = failed_job(app, task="demo.sleep", args=(0.2,), message="ValueError needle-in-error")
    c = enqueue(app, task="demo.noop", args=())
    assert set(listed_ids(client, "/hangfire/jobs/all")) == {a, b, c}
    assert listed_ids(client, "/hangfire/jobs/all?q=alpha-needle") == [a]
    assert listed_ids(client, "/hangfire/jobs/all?q=needle-in-error") == [b]
    assert listed_ids(client, "/hangfire/jobs/all?task=demo.noop") == [c]
    assert listed_ids(client, "/hangfire/jobs/failed?queue=reports") == [a]
    assert listed_ids(client, "/hangfire/jobs/enqueued?task=demo.fail") == []
    future = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    past = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert listed_ids(client, f"/hangfire/jobs/all?since={future}") == []
    assert set(listed_ids(client, f"/hangfire/jobs/all?since={past}Z&until={future}")) == {a, b, c}
    assert listed_ids(client, f"/hangfire/jobs/all?until={past}") == []
    page = client.get("/hangfire/jobs/all?since=yesterday").get_data(True)
    assert "is not a date and time" in page and len(re.findall("data-job-id", page)) == 3


def test_enqueued_by_filter(app, people):
    post_form(people["full"], "/hangfire/enqueue", {"task": "demo.noop", "args": "[]", "kwargs": "{}"})
    other = enqueue(app, task="demo.noop", args=())
    client = people["full"]
    mine = listed_ids(client, "/hangfire/jobs/enqueued?enqueued_by=full")
    assert len(mine) == 1 and other not in mine
    assert listed_ids(client, "/hangfire/jobs/enqueued?enqueued_by=nobody") == []


def test_keyset_pages_stay_stable_while_jobs_arrive(app, people):
    ids = [enqueue(app, task="demo.noop", args=()) for _ in range(45)]
    client = people["full"]
    html = client.get("/hangfire/jobs/enqueued").get_data(True)
    first = re.findall(r'<tr data-job-id="([0-9a-f]+)"', html)
    assert len(first) == 20 and "10,000+" not in html and "45 jobs" in html
    older = re.search(r'data-testid="older" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    for _ in range(5):
        enqueue(app, task="demo.noop", args=())  # newer jobs arrive: the next page must not shift
    second = listed_ids(client, older)
    assert len(second) == 20 and not set(first) & set(second)
    assert set(first + second) <= set(ids)
    assert len(listed_ids(client, "/hangfire/jobs/enqueued?limit=50")) == 50
    odd_size = client.get("/hangfire/jobs/enqueued?limit=7").get_data(True)
    assert "Page size must be one of 20, 50, 100, 500" in odd_size
    assert client.get("/hangfire/jobs/enqueued?cursor=garbage").status_code == 400
    assert client.get("/hangfire/jobs/nonsense").status_code == 404


def test_counts_are_capped(app, people, monkeypatch):
    for _ in range(25):
        enqueue(app, task="demo.noop", args=())
    assert "25 jobs" in people["full"].get("/hangfire/jobs/enqueued").get_data(True)
    monkeypatch.setattr(dashboard_data, "COUNT_CAP", 3)
    assert "3+ jobs" in people["full"].get("/hangfire/jobs/enqueued").get_data(True)
    assert "25 jobs" in people["full"].get("/hangfire/jobs/enqueued?limit=50").get_data(True)  # one full page
    monkeypatch.setattr(dashboard_data, "TEXT_COUNT_MIN", 2)
    monkeypatch.setattr(dashboard_data, "TEXT_COUNT_PAGES", 0)
    assert "2+ jobs matching" in people["full"].get("/hangfire/jobs/enqueued?q=[]").get_data(True)


def test_jobs_root_redirects_to_the_state_list(people):
    response = people["full"].get("/hangfire/jobs/?state=Failed&q=x")
    assert response.status_code == 302 and response.headers["Location"] == "/hangfire/jobs/failed?q=x"
    assert people["full"].get("/hangfire/jobs/?retrying=1").headers["Location"] == "/hangfire/jobs/retries"


def test_retries_list_shows_scheduled_retries_only(app, people, jobs):
    retry = enqueue(app, task="demo.sleep", args=(0.3,))
    at = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        ledger.apply_strict(conn, [
            Transition(retry, lifecycle.PROCESSING, at, "Attempt 1",
                       fields={"started_at": at, "worker": WORKER, "attempt": 1}),
            Transition(retry, lifecycle.SCHEDULED, at, "Retry attempt 2 in 60s", fields={
                "scheduled_for": at + timedelta(minutes=1), "exception_type": "ValueError",
                "exception_message": "try again"}),
        ])
    assert listed_ids(people["full"], "/hangfire/jobs/retries") == [retry]
    assert set(listed_ids(people["full"], "/hangfire/jobs/scheduled")) == {retry, jobs["scheduled"]}
    html = people["full"].get("/hangfire/jobs/retries").get_data(True)
    assert "try again" in html and ">Run now<" in html


# --- detail, overview, queues, servers ---------------------------------------------------------

def test_job_detail_shows_everything(app, people):
    job_id = enqueue(app, task="demo.sleep", args=(0.25,), kwargs={})
    fail(app, job_id, "first failure", kind="ValueError", attempt=1)
    post_form(people["full"], "/hangfire/actions/requeue", {"ids": [job_id]})
    with app.app_context():
        commands.delete([job_id], by="someone")
    html = people["full"].get(f"/hangfire/job/{job_id}").get_data(True)
    for expected in ("Sleep 0.25s", "demo.sleep", "0.25", "first failure", "ValueError", "Traceback", WORKER,
                     "Requeued by full", "Deleted by someone", "Waited in the queue",
                     'data-testid="history"'):
        assert expected in html, expected
    assert html.index("Deleted by someone") < html.index("Requeued by full")  # newest first
    assert people["full"].get("/hangfire/job/" + "0" * 32).status_code == 404


def test_job_detail_of_succeeded_job_shows_result_and_timing(app, people):
    job_id = enqueue(app, task="demo.noop", args=())
    at = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        ledger.apply_strict(conn, [
            Transition(job_id, lifecycle.PROCESSING, at, "Attempt 1",
                       fields={"started_at": at, "worker": WORKER, "attempt": 1}),
            Transition(job_id, lifecycle.SUCCEEDED, at + timedelta(seconds=2), "Completed", fields={
                "finished_at": at + timedelta(seconds=2), "result": json.dumps({"rows": 42})},
                data={"duration_ms": 2000}),
        ])
    html = people["full"].get(f"/hangfire/job/{job_id}").get_data(True)
    assert '&#34;rows&#34;: 42' in html and "2.0 s" in html and ">Requeue<" in html
    listing = people["full"].get("/hangfire/jobs/succeeded").get_data(True)
    assert "2.0 s" in listing


def test_overview_counters_charts_and_worker_warning(app, people, jobs):
    html = people["full"].get("/hangfire").get_data(True)
    assert re.search(r'data-testid="count-failed">\s*<span class="hf-counter-value">2<', html)
    assert re.search(r'data-testid="count-enqueued">\s*<span class="hf-counter-value">1<', html)
    assert re.search(r'data-testid="count-recurring">\s*<span class="hf-counter-value">0<', html)
    assert 'data-testid="no-workers"' in html
    assert html.count("<svg") == 3 and 'data-chart="realtime"' in html and 'data-chart="week"' in html


def test_processing_job_shows_progress_and_log(app, people):
    job_id = enqueue(app, args=(1,))
    at = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        ledger.apply_strict(conn, [Transition(job_id, lifecycle.PROCESSING, at, "Attempt 1", fields={
            "started_at": at, "worker": WORKER, "attempt": 1})])
        conn.execute(update(ledger.jobs_table).where(ledger.jobs_table.c.id == job_id)
                     .values(progress=40, progress_message="chunk <b>4</b>"))
        conn.execute(insert(logs_table),
                     [{"job_id": job_id, "at": at, "level": "INFO", "message": "wrote <i>10</i>"}])
    listing = people["full"].get("/hangfire/jobs/processing").get_data(True)
    assert 'aria-valuenow="40"' in listing and "chunk &lt;b&gt;4&lt;/b&gt;" in listing and WORKER in listing
    detail = people["full"].get(f"/hangfire/job/{job_id}").get_data(True)
    assert 'data-testid="job-progress"' in detail and "wrote &lt;i&gt;10&lt;/i&gt;" in detail


def test_recurring_counter(app, people):
    now = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert(RecurringJob.__table__), [{
            "id": "nightly", "task": "demo.noop", "cron": "0 3 * * *", "timezone": "UTC", "queue": "default",
            "args": "[]", "kwargs": "{}", "misfire": "relaxed", "enabled": True, "created_at": now,
            "updated_at": now}])
    html = people["full"].get("/hangfire").get_data(True)
    assert re.search(r'data-testid="count-recurring">\s*<span class="hf-counter-value">1<', html)
    assert people["full"].get("/hangfire/api/stats").get_json()["recurring"] == 1


def test_overview_with_a_live_worker(app, people, start_worker):
    worker = start_worker(queues="default,reports", concurrency=3)
    job_id = enqueue(app, task="demo.noop", args=())
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED)
    client = people["full"]
    html = client.get("/hangfire/fragment/overview").get_data(True)
    assert 'data-testid="no-workers"' not in html
    assert re.search(r'data-testid="count-workers">\s*<span class="hf-counter-value">1<', html)
    assert re.search(r"1 succeeded", html)
    servers = client.get("/hangfire/servers").get_data(True)
    assert f'<td class="text-right" data-label="PID">{worker.pid}</td>' in servers and ">Alive<" in servers
    assert '<span class="hf-queue">reports</span>' in servers


def test_dead_worker_is_flagged(app, people):
    transport = transport_of(app)
    transport.beat("gone-host:1:dead", {"host": "gone-host", "pid": 1, "queues": ["default"],
                                        "concurrency": 2, "started": time.time() - 600, "in_flight": 0})
    transport.conn.zadd(transport.heartbeats_key, {"gone-host:1:dead": int((time.time() - 120) * 1000)})
    html = people["full"].get("/hangfire/servers").get_data(True)
    assert 'data-testid="worker-dead"' in html and "gone-host" in html
    assert 'data-testid="no-workers"' in people["full"].get("/hangfire").get_data(True)


def test_queues_page(app, people):
    for _ in range(3):
        enqueue(app, task="demo.noop", args=(), queue="reports")
    html = people["full"].get("/hangfire/queues").get_data(True)
    row = re.search(r'<tr data-queue="reports"[^>]*>.*?</tr>', html, re.S).group(0)
    assert re.search(r'data-testid="queue-length">3</td>', row) and ">Pause<" in row
    assert "/hangfire/jobs/enqueued?queue=reports" in row


def test_fragments_are_marked_and_not_cached(people, jobs):
    response = people["full"].get("/hangfire/jobs/failed/fragment")
    assert response.headers["X-Dashboard-Fragment"] == "1" and response.headers["Cache-Control"] == "no-store"
    assert "<html" not in response.get_data(True) and "data-job-id" in response.get_data(True)


# --- enqueue from the dashboard --------------------------------------------------------------

def test_enqueue_a_job(app, people):
    client = people["full"]
    form = client.get("/hangfire/enqueue").get_data(True)
    assert '<option value="demo.sleep"' in form and "jobs.bulk_action" not in form
    response = post_form(client, "/hangfire/enqueue",
                         {"task": "demo.sleep", "args": "[0.5]", "kwargs": "{}", "queue": "reports",
                          "delay": "0"})
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        job = queries.get_job(job_id)
        assert (job.task, job.queue, job.state) == ("demo.sleep", "reports", "Enqueued")
        assert job.enqueued_by == "full"
        assert json.loads(job.args) == [0.5]
        entries, _ = queries.audit_log()
        assert (entries[0].action, entries[0].ids) == ("enqueue", [job_id])
    assert transport_of(app).holds([job_id]) and transport_of(app).queue_lengths()["reports"] == 1


def test_enqueue_with_a_delay_is_scheduled(app, people):
    response = post_form(people["full"], "/hangfire/enqueue",
                         {"task": "demo.noop", "args": "", "kwargs": "", "delay": "120"})
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert job_state(app, job_id) == lifecycle.SCHEDULED


@pytest.mark.parametrize("data,field,message", [
    ({"task": "demo.sleep", "args": "[1,", "kwargs": "{}"}, "args", "Arguments: not valid JSON"),
    ({"task": "demo.sleep", "args": '{"a": 1}', "kwargs": "{}"}, "args", "Arguments must be a JSON list"),
    ({"task": "demo.sleep", "args": "[1]", "kwargs": "[]"}, "kwargs",
     "Keyword arguments must be a JSON object"),
    ({"task": "demo.nope", "args": "[]", "kwargs": "{}"}, "task", "No job called “demo.nope”"),
    ({"task": "", "args": "[]", "kwargs": "{}"}, "task", "Choose a task."),
    ({"task": "jobs.bulk_action", "args": "[]", "kwargs": "{}"}, "task",
     "can be enqueued from the dashboard"),
    ({"task": "demo.sleep", "args": "[1]", "kwargs": "{}", "delay": "-5"}, "delay", "Delay must be a number"),
    ({"task": "demo.sleep", "args": "[1]", "kwargs": "{}", "delay": "soon"}, "delay",
     "Delay must be a number"),
    ({"task": "demo.sleep", "args": "[1, 2]", "kwargs": "{}"}, "call",
     "demo.sleep: too many positional arguments"),
    ({"task": "demo.sleep", "args": "[]", "kwargs": "{}"}, "call", "missing a required argument: 'seconds'"),
    ({"task": "demo.sleep", "args": "[]", "kwargs": '{"sec": 1}'}, "call", "demo.sleep:"),
    ({"task": "demo.noop", "args": "[]", "kwargs": "{}", "queue": "q" * 65}, "call", "queue must be"),
])
def test_enqueue_errors_are_shown_in_the_form(app, people, data, field, message):
    before = snapshot(app)
    response = post_form(people["full"], "/hangfire/enqueue", data)
    html = response.get_data(True)
    assert response.status_code == 400
    assert 'data-testid="enqueue-error"' in html
    shown = re.sub(r"\s+", " ", html.replace("&#39;", "'").replace("&#34;", '"'))
    assert message in shown, shown[shown.find("enqueue-error"):][:600]
    if field != "call":
        assert f'data-testid="error-{field}"' in html
    assert f">{data['args']}</textarea>".replace('"', "&#34;") in html  # what was typed is kept
    assert snapshot(app) == before


# --- exports -----------------------------------------------------------------------------------

def test_csv_export_streams_every_matching_row_and_defuses_formulas(app, people, monkeypatch):
    monkeypatch.setattr(dashboard_export, "EXPORT_BATCH", 4)
    ids = [failed_job(app, task="demo.fail", args=(f"=HYPERLINK(\"http://evil\",\"x{i}\")",),
                      message="+cmd|' /C calc'!A0") for i in range(10)]
    other = enqueue(app, task="demo.noop", args=())
    response = people["full"].get("/hangfire/jobs/failed/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert re.match(r'attachment; filename="jobs-failed-\d{8}T\d{6}Z\.csv"',
                    response.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(response.get_data(True))))
    assert {row["id"] for row in rows} == set(ids) and other not in {row["id"] for row in rows}
    for row in rows:
        assert row["exception_message"] == "'+cmd|' /C calc'!A0"
        assert row["args"].startswith('["=HYPERLINK')  # a JSON list: starts with [, harmless
        assert row["state"] == "Failed" and row["task"] == "demo.fail"
    assert dashboard_export.csv_cell("=1+1") == "'=1+1" and dashboard_export.csv_cell("-2") == "'-2"
    assert dashboard_export.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert dashboard_export.csv_cell("plain") == "plain"
    assert dashboard_export.csv_cell(["=x"]) == '["=x"]' and dashboard_export.csv_cell(None) == ""


def test_json_export_follows_the_filter(app, people, monkeypatch):
    monkeypatch.setattr(dashboard_export, "EXPORT_BATCH", 3)
    wanted = [failed_job(app, task="demo.fail", args=(f"needle {i}",)) for i in range(7)]
    failed_job(app, task="demo.fail", args=("hay",))
    response = people["full"].get("/hangfire/jobs/all/export.json?q=needle")
    assert response.mimetype == "application/json"
    records = json.loads(response.get_data(True))
    assert [r["id"] for r in records] == list(reversed(wanted))  # newest first, every batch
    assert records[0]["args"] == ["needle 6"] and records[0]["state"] == "Failed"
    assert people["full"].get("/hangfire/jobs/all/export.xml").status_code == 404


def test_the_bucket_still_filling_up_is_drawn_apart(app, people, jobs):
    from datetime import datetime

    from admin.dashboard.charts import throughput_chart

    start = datetime(2026, 12, 1, 10)
    counts = (4, 6, 1)
    buckets = [{"start": start + timedelta(hours=hour), "succeeded": count, "failed": 0}
               for hour, count in enumerate(counts)]
    chart = throughput_chart("day", "History", buckets, 3600, "%H:00", every=1)
    assert chart.succeeded_line.count("L") == 1  # the two complete hours…
    last_complete = chart.succeeded_line.split(" L")[-1]
    assert chart.succeeded_tail == f"M{last_complete} L{chart.succeeded_tail.split(' L')[-1]}"
    assert chart.succeeded_tail.count("L") == 1  # …then a dashed step into the current one
    assert chart.slots[-1].title.endswith("so far") and not chart.slots[0].title.endswith("so far")
    html = people["full"].get("/hangfire").get_data(True)
    assert re.search(r'class="hf-line-failed hf-line-current" d="M[\d.,]+ L[\d.,]+"', html)
