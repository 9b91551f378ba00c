"""The job page: parent and continuations both ways with the condition, the history in words and
human units that match the summary, exact times and gaps, a cancelled job's bar cleared, huge
arguments cut short with a download, and reasons that read as sentences."""
from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy import update

from app.extensions import db
from tasks import ledger, lifecycle
from tasks.ledger import utcnow
from tasks.lifecycle import Transition
from tasks.queries import history
from tests.helpers.ledger import WORKER, enqueue, fail, failed_job, job_state, load_job
from tests.helpers.web import post_form
from tests.workers import wait_for


def page(client, job_id: str) -> str:
    """The job page's HTML."""
    response = client.get(f"/hangfire/job/{job_id}")
    assert response.status_code == 200
    return response.get_data(True)


def test_a_continuation_and_its_parent_link_each_other(app, people):
    parent = enqueue(app, task="demo.noop", args=())
    child = enqueue(app, task="demo.sleep", args=(0.1,), after=parent)
    anyway = enqueue(app, task="demo.noop", args=(), after=parent, continue_on="finished")
    client = people["full"]
    waiting = page(client, child)
    relation = re.search(r'data-testid="job-parent">(.*?)</p>', waiting, re.S).group(1)
    assert "Waits for" in relation and f'href="/hangfire/job/{parent}"' in relation
    assert f"#{parent[-8:]}" in relation and "runs if it succeeds" in relation
    listing = re.search(r'data-testid="job-continuations">(.*?)</ul>', page(client, parent), re.S).group(1)
    assert f'href="/hangfire/job/{child}"' in listing and f'href="/hangfire/job/{anyway}"' in listing
    assert "runs if it succeeds" in listing and "runs when it finishes, however" in listing
    assert 'data-testid="job-parent"' not in page(client, parent)


def finish(app, job_id: str, started, seconds: float, recorded_ms: float) -> None:
    """Move ``job_id`` to Processing at ``started`` and to Succeeded ``seconds`` later (worker measured
    ``recorded_ms``)."""
    with app.app_context(), db.engine.begin() as conn:
        ledger.apply_strict(conn, [
            Transition(job_id, lifecycle.PROCESSING, started, "Attempt 1",
                       fields={"started_at": started, "worker": WORKER, "attempt": 1},
                       data={"worker": WORKER, "latency_ms": 35.4, "attempt": 1}),
            Transition(job_id, lifecycle.SUCCEEDED, started + timedelta(seconds=seconds), "Completed",
                       fields={"finished_at": started + timedelta(seconds=seconds)},
                       data={"duration_ms": recorded_ms, "worker": WORKER}),
        ])


def test_history_reads_in_human_units_matching_the_summary(app, people):
    job_id = enqueue(app, task="demo.noop", args=())
    started = utcnow()
    finish(app, job_id, started, seconds=0.005, recorded_ms=0.04)
    html = page(people["full"], job_id)
    assert re.search(r'data-testid="job-duration">0\.04 ms<', html)  # what the worker measured…
    assert re.search(r"<dt>Ran for</dt><dd>0\.04 ms</dd>", html)  # …is what the history says
    assert re.search(r'data-testid="job-latency">35 ms<', html)
    assert "<dt>Waited in the queue</dt><dd>35 ms</dd>" in html
    for raw in ("duration_ms", "latency_ms", "scheduled_for"):
        assert raw not in html
    exact = re.findall(r'data-testid="history-time">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC)<', html)
    assert len(exact) == 3  # Enqueued, Processing, Succeeded: each to the millisecond
    assert started.strftime("%Y-%m-%d %H:%M:%S.") + f"{started.microsecond // 1000:03d} UTC" in exact
    gaps = re.findall(r'data-testid="history-gap">([^<]+) after the step before<', html)
    assert gaps[0] == "5 ms" and len(gaps) == 2  # the newest step came 5 ms after the one before


def test_a_scheduled_retry_reads_as_a_due_time(app, people):
    job_id = enqueue(app, task="demo.noop", args=(), delay=90)
    html = page(people["full"], job_id)
    due = re.search(r"<dt>Due</dt><dd>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)</dd>", html)
    assert due, "the history's due time is an exact UTC time, not an ISO string"


def test_a_cancelled_job_has_no_progress_bar_and_reads_well(app, people):
    job_id = enqueue(app, args=(5,))
    at = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        ledger.apply_strict(conn, [
            Transition(job_id, lifecycle.PROCESSING, at, "Attempt 1",
                       fields={"started_at": at, "worker": WORKER, "attempt": 1, "progress": 40}),
            Transition(job_id, lifecycle.DELETED, at + timedelta(seconds=1), "Cancelled: Cancelled by admin",
                       fields={"finished_at": at + timedelta(seconds=1)},
                       data={"cancelled": "Cancelled by admin"}),
        ])
    html = page(people["full"], job_id)
    assert 'data-testid="job-progress"' not in html and "data-live-fast" not in html
    assert re.search(r'data-testid="job-reason">Cancelled by admin<', html)
    assert "Cancelled: Cancelled" not in html


def test_a_failure_reads_without_attempt_s(app, people):
    job_id = enqueue(app, task="demo.noop", args=())
    fail(app, job_id, "gone")
    with app.app_context():
        db.session.execute(update(ledger.Job).where(ledger.Job.id == job_id).values(
            state_reason="Failed after 1 attempt(s): ValueError: gone"))
        db.session.commit()
    html = page(people["full"], job_id)
    assert "Failed after 1 attempt: ValueError: gone" in html and "attempt(s)" not in html
    listing = people["full"].get("/hangfire/jobs/failed").get_data(True)
    assert "attempt(s)" not in listing


def test_huge_arguments_are_cut_short_with_a_download(app, people):
    huge = "x" * (2 * 1024 * 1024)
    job_id = enqueue(app, task="demo.fail", args=("small for now",))
    with app.app_context():  # stored as older versions allowed (enqueue may refuse this size today)
        db.session.execute(update(ledger.Job).where(ledger.Job.id == job_id).values(args=json.dumps([huge])))
        db.session.commit()
    client = people["full"]
    response = client.get(f"/hangfire/job/{job_id}")
    html = response.get_data(True)
    assert len(html) < 200_000, "the page must not carry the whole 2 MB argument"
    assert 'data-testid="arguments-cut"' in html and "2.1 MB" in html
    assert f'href="/hangfire/job/{job_id}/arguments.json"' in html
    download = client.get(f"/hangfire/job/{job_id}/arguments.json")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert "attachment" in download.headers["Content-Disposition"]
    assert json.loads(download.get_data(True)) == {"args": [huge], "kwargs": {}}
    listing = client.get("/hangfire/jobs/enqueued").get_data(True)
    assert len(listing) < 100_000 and job_id in listing
    small = failed_job(app, task="demo.fail", args=("small",))
    assert 'data-testid="arguments-cut"' not in page(client, small)


def test_ids_that_cant_be_jobs_are_404(people):
    client = people["full"]
    for job_id, status in (("9" * 20000, 404), ("f" * 65, 404), ("a%00b", 400)):  # NUL: refused as input
        assert client.get(f"/hangfire/job/{job_id}").status_code == status, job_id[:10]
        assert client.get(f"/hangfire/job/{job_id}/arguments.json").status_code == status
        answer = client.get(f"/hangfire/api/jobs/{job_id}")
        assert answer.status_code == status and answer.is_json


def test_a_job_a_real_worker_failed_shows_its_exception_and_retries(app, people, start_worker):
    job_id = enqueue(app, task="demo.fail", args=("the disk <is> full",))
    worker = start_worker(concurrency=1)
    wait_for(lambda: job_state(app, job_id) == lifecycle.FAILED, message="the worker to fail the job")
    html = page(people["full"], job_id)
    assert "DemoFailure" in html
    assert "the disk &lt;is&gt; full" in html and "the disk <is> full" not in html  # escaped
    assert 'class="hf-traceback"' in html and "raise DemoFailure(message)" in html  # the worker's traceback
    assert f":{worker.pid}:" in load_job(app, job_id).worker
    assert job_id in people["full"].get("/hangfire/jobs/failed").get_data(True)

    response = post_form(people["full"], "/hangfire/actions/retry", {"ids": [job_id]})
    assert response.status_code in (200, 302)
    wait_for(lambda: failures(app, job_id) == 2, message="the retry run by the worker, failing again")
    assert job_state(app, job_id) == lifecycle.FAILED


def failures(app, job_id: str) -> int:
    """How many times the history records ``job_id`` entering Failed."""
    with app.app_context():
        return sum(1 for entry in history(job_id) if entry.state == lifecycle.FAILED)
