"""The dashboard's Recurring page, recurring actions, and cancelling running jobs (pages and JSON API).

Cancellation runs against a real worker: a ``tests.progressing`` job reports progress and
log lines that the job page shows while it runs, until Cancel stops it.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from tasks import lifecycle, recurring
from tasks.actions import JOB_ACTIONS, RECURRING_ACTIONS
from tasks.audit import AuditEntry
from tasks.ledger import Job, utcnow
from tasks.recurring import RecurringJob
from tests.helpers.ledger import fetch, job_state
from tests.helpers.ledger import SCRIPT, enqueue
from tests.helpers.web import EXPECTED_GET, EXPECTED_POST, assert_escaped, csrf_for, post_form
from tests.workers import wait_for

ACTIONS = ("trigger", "disable", "enable", "delete")
KINDS = ["anonymous", "no_permission", "read_only", "full"]


def row_of(app, recurring_id: str) -> RecurringJob | None:
    """The ledger's recurring row (fresh read)."""
    return fetch(app, RecurringJob, recurring_id)


def runs_of(app, recurring_id: str) -> list[Job]:
    """Every job a recurring job started."""
    with app.app_context():
        jobs = list(db.session.scalars(select(Job).where(Job.recurring_id == recurring_id)))
        db.session.expunge_all()
        return jobs


def recurring_snapshot(app) -> dict:
    """What a recurring action could change: the rows, the jobs and the audit log's size."""
    with app.app_context():
        rows = {r.id: (r.enabled, r.next_run_at, r.last_job_id)
                for r in db.session.scalars(select(RecurringJob))}
        return {"rows": rows, "jobs": db.session.scalar(select(func.count()).select_from(Job)),
                "audit": db.session.scalar(select(func.count()).select_from(AuditEntry))}


def audit_entries(app, action: str) -> list[AuditEntry]:
    """Audit entries of ``action``."""
    with app.app_context():
        entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        db.session.expunge_all()
        return entries


def action_url(recurring_id: str, action: str, api: bool = False) -> str:
    """The POST route of a recurring action."""
    return f"/hangfire{'/api' if api else ''}/recurring/{recurring_id}/{action}"


# --- the route walk ---------------------------------------------------------------------------

def recurring_pages(recurring_id: str) -> list[str]:
    """Every GET page and fragment the recurring feature adds."""
    return ["/hangfire/recurring", "/hangfire/fragment/recurring",
            f"/hangfire/jobs/all?recurring={recurring_id}",
            f"/hangfire/jobs/all/fragment?recurring={recurring_id}",
            f"/hangfire/jobs/all/export.csv?recurring={recurring_id}"]


@pytest.mark.parametrize("kind", KINDS)
def test_recurring_route_walk_pages(app, people, nightly, kind):
    client = people[kind]
    wrong = []
    for url in recurring_pages(nightly):
        response = client.get(url, buffered=True)
        if response.status_code != EXPECTED_GET[kind]:
            wrong.append(f"GET {url}: {response.status_code}")
    api = client.get("/hangfire/api/recurring")
    if api.status_code != {"anonymous": 401}.get(kind, EXPECTED_GET[kind]):
        wrong.append(f"GET api/recurring: {api.status_code}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kind", KINDS)
def test_recurring_route_walk_actions(app, people, nightly, jobs, kind):
    """Every recurring action and Cancel, posted with a valid CSRF token; refused ones change nothing."""
    client = people[kind]
    before, states = recurring_snapshot(app), {key: job_state(app, job_id) for key, job_id in jobs.items()}
    enabled = lambda: row_of(app, nightly) and row_of(app, nightly).enabled  # noqa: E731
    posts = [  # each with a check of its own effect
        (action_url(nightly, "trigger"), {}, lambda: len(runs_of(app, nightly)) == 1),
        (action_url(nightly, "disable"), {}, lambda: enabled() is False),
        (action_url(nightly, "enable"), {}, lambda: enabled() is True),
        ("/hangfire/recurring/actions/disable", {"ids": [nightly]}, lambda: enabled() is False),
        (action_url(nightly, "delete"), {}, lambda: row_of(app, nightly) is None),
        ("/hangfire/actions/cancel", {"job": jobs["enqueued"]},
         lambda: job_state(app, jobs["enqueued"]) == lifecycle.DELETED),
    ]
    wrong = []
    for url, data, changed in posts:
        response = post_form(client, url, data)
        if response.status_code != EXPECTED_POST[kind]:
            wrong.append(f"POST {url}: {response.status_code}")
        elif kind == "full" and not changed():
            wrong.append(f"POST {url}: answered {response.status_code} but changed nothing")
    assert not wrong, "\n".join(wrong)
    if kind != "full":
        after = {key: job_state(app, job_id) for key, job_id in jobs.items()}
        assert recurring_snapshot(app) == before and after == states


def test_recurring_page_shows_the_schedule(app, people, nightly):
    html = people["full"].get("/hangfire/recurring").get_data(True)
    row = re.search(rf'<tr data-recurring-id="{re.escape(nightly)}">(.*?)</tr>', html, re.S).group(1)
    assert "0 3 * * *" in row and "At 03:00 AM" in row and "Europe/London" in row
    assert "tests.recurring_tick" in row and ">Enabled<" in row and "never" in row
    assert f"/hangfire/jobs/all?recurring={nightly}" in row
    for action in ACTIONS:
        if action != "enable":
            assert action_url(nightly, action) in row
    assert 'href="/hangfire/recurring"' in html and ">Recurring<" in html  # the nav tab


def test_read_only_sees_no_recurring_buttons(app, people, nightly):
    for url in ("/hangfire/recurring", "/hangfire/fragment/recurring"):
        html = people["read_only"].get(url).get_data(True)
        assert nightly in html
        for marker in ("/hangfire/recurring/", "data-confirm", ">Trigger now<", ">Disable<", ">Delete<"):
            assert marker not in html, (url, marker)


def test_recurring_error_is_escaped(app, people, nightly):
    with app.app_context():
        db.session.execute(update(RecurringJob).where(RecurringJob.id == nightly).values(error=SCRIPT))
        db.session.commit()
    html = people["full"].get("/hangfire/fragment/recurring").get_data(True)
    assert_escaped(html, "recurring")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- each action's effect -----------------------------------------------------------------------

def test_trigger_now_enqueues_a_run(app, people, nightly):
    response = post_form(people["full"], action_url(nightly, "trigger"))
    assert response.status_code == 302 and response.headers["Location"] == "/hangfire/recurring"
    [run] = runs_of(app, nightly)
    assert run.state == lifecycle.ENQUEUED and run.task == "tests.recurring_tick"
    assert run.enqueued_by == "full"
    html = people["full"].get("/hangfire/recurring").get_data(True)
    assert f"Triggered recurring job “{nightly}” (job {run.id})." in html
    assert f'href="/hangfire/job/{run.id}"' in html  # last run, linked, with its state
    [entry] = audit_entries(app, "trigger-recurring")
    assert entry.user == "full" and json.loads(entry.job_ids) == [run.id]
    assert json.loads(entry.job_filter) == {"recurring_ids": [nightly]}


def test_run_history_lists_only_that_recurring_jobs_runs(app, people, nightly):
    post_form(people["full"], action_url(nightly, "trigger"))
    other = enqueue(app, task="tests.recurring_tick", args=())
    [run] = runs_of(app, nightly)
    html = people["full"].get(f"/hangfire/jobs/all?recurring={nightly}").get_data(True)
    assert f'data-job-id="{run.id}"' in html and f'data-job-id="{other}"' not in html
    assert 'data-testid="recurring-filter"' in html and f'name="recurring" value="{nightly}"' in html
    everything = people["full"].get("/hangfire/jobs/all").get_data(True)
    assert f'data-job-id="{other}"' in everything and 'data-testid="recurring-filter"' not in everything


def test_disable_persists_and_enable_resumes(app, people, nightly):
    assert post_form(people["full"], action_url(nightly, "disable")).status_code == 302
    assert row_of(app, nightly).enabled is False
    html = people["full"].get("/hangfire/fragment/recurring").get_data(True)
    assert ">Disabled<" in html and action_url(nightly, "enable") in html
    with app.app_context():
        recurring.run_due(utcnow() + timedelta(days=30))  # the app's own recurring jobs may run; not this one
    assert runs_of(app, nightly) == []
    assert post_form(people["full"], action_url(nightly, "enable")).status_code == 302
    assert row_of(app, nightly).enabled is True
    with app.app_context():
        started = recurring.run_due(utcnow() + timedelta(days=2))
    assert runs_of(app, nightly) and {job.id for job in runs_of(app, nightly)} <= set(started)
    assert [len(audit_entries(app, f"{a}-recurring")) for a in ("disable", "enable")] == [1, 1]


def test_delete_removes_the_row(app, people, nightly):
    assert post_form(people["full"], action_url(nightly, "delete")).status_code == 302
    assert row_of(app, nightly) is None
    html = people["full"].get("/hangfire/recurring").get_data(True)
    assert f"Deleted recurring job “{nightly}”." in html and f'data-recurring-id="{nightly}"' not in html
    assert json.loads(audit_entries(app, "delete-recurring")[0].job_filter) == {"recurring_ids": [nightly]}


def test_unknown_recurring_id_or_action_is_404(app, people, nightly):
    before = recurring_snapshot(app)
    for url in (action_url("no-such-job", "trigger"), action_url("no-such-job", "disable"),
                action_url(nightly, "explode"), action_url("a/b", "delete")):
        assert post_form(people["full"], url).status_code == 404, url
        api = people["full"].post(url.replace("/hangfire/", "/hangfire/api/"),
                                  headers={"X-CSRFToken": csrf_for(people["full"])})
        assert api.status_code == 404, url
    assert recurring_snapshot(app) == before


def test_recurring_actions_need_a_csrf_token(app, people, nightly):
    before = recurring_snapshot(app)
    assert people["full"].post(action_url(nightly, "disable")).status_code == 400
    assert people["full"].post(action_url(nightly, "disable", api=True)).status_code == 403
    assert recurring_snapshot(app) == before


# --- JSON API ------------------------------------------------------------------------------------

def test_api_lists_recurring_jobs(app, bearer, nightly):
    response = bearer("read_only", "get", "/hangfire/api/recurring")
    [row] = [r for r in response.get_json()["recurring"] if r["id"] == nightly]
    assert row["cron"] == "0 3 * * *" and row["description"] == "At 03:00 AM" and row["enabled"] is True
    assert row["timezone"] == "Europe/London" and row["next_run_at"].endswith("Z")
    assert row["last_state"] is None
    assert bearer("outsider", "get", "/hangfire/api/recurring").status_code == 403


def test_api_recurring_actions(app, bearer, nightly):
    assert bearer("read_only", "post", action_url(nightly, "disable", api=True)).status_code == 403
    assert row_of(app, nightly).enabled is True
    answer = bearer("full", "post", action_url(nightly, "trigger", api=True)).get_json()
    assert answer["action"] == "trigger" and answer["id"] == nightly
    assert [job.id for job in runs_of(app, nightly)] == [answer["job_id"]]
    assert bearer("full", "post", action_url(nightly, "disable", api=True)).get_json()["action"] == "disable"
    assert row_of(app, nightly).enabled is False
    assert bearer("full", "post", action_url(nightly, "enable", api=True)).status_code == 200
    assert row_of(app, nightly).enabled is True
    assert bearer("full", "post", action_url(nightly, "delete", api=True)).status_code == 200
    assert row_of(app, nightly) is None
    missing = bearer("full", "post", action_url(nightly, "trigger", api=True))
    assert missing.status_code == 404 and "no recurring job" in missing.get_json()["error"].lower()


def test_api_cancel_deletes_a_waiting_job_and_refuses_a_filter(app, bearer, jobs):
    assert bearer("read_only", "post", f"/hangfire/api/jobs/{jobs['enqueued']}/cancel").status_code == 403
    answer = bearer("full", "post", f"/hangfire/api/jobs/{jobs['enqueued']}/cancel").get_json()
    assert answer["changed"] == [jobs["enqueued"]] and job_state(app, jobs["enqueued"]) == lifecycle.DELETED
    answer = bearer("full", "post", "/hangfire/api/actions/cancel", json={"ids": [jobs["scheduled"]]})
    answer = answer.get_json()
    assert answer["changed"] == [jobs["scheduled"]]
    refused = bearer("full", "post", "/hangfire/api/actions/cancel", json={"filter": {"state": "Processing"}})
    assert refused.status_code == 400 and "selected jobs only" in refused.get_json()["error"]


# --- cancelling a running job ----------------------------------------------------------------------

def progress_of(app, job_id: str) -> int:
    """The job's reported progress (0 before any)."""
    with app.app_context():
        return db.session.scalar(select(Job.progress).where(Job.id == job_id)) or 0


@pytest.fixture
def running(app, start_worker):
    """A ``tests.progressing`` job (50 steps of 0.1 s) running on a real worker, past its first steps."""
    start_worker()
    job_id = enqueue(app, task="tests.progressing", args=(50, 0.1))
    wait_for(lambda: job_state(app, job_id) == lifecycle.PROCESSING and progress_of(app, job_id) > 0,
             timeout=20, message="the job to report progress")
    return job_id


def test_running_job_page_shows_progress_logs_and_cancel(app, people, running):
    client = people["full"]
    fragment = wait_for(lambda: (lambda html: "step 2 of 50 &lt;done&gt;" in html and html)(
        client.get(f"/hangfire/job/{running}/fragment").get_data(True)), timeout=10, message="log lines")
    percent = int(re.search(r'aria-valuenow="(\d+)"', fragment).group(1))
    assert percent > 0 and "data-live-fast" in fragment and "<done>" not in fragment
    assert "/hangfire/actions/cancel" in fragment
    assert f'data-confirm="{JOB_ACTIONS["cancel"].confirm("this job")}"' in fragment
    later = wait_for(lambda: (lambda html: int(re.search(r'aria-valuenow="(\d+)"', html).group(1)) > percent
                              and html)(client.get(f"/hangfire/job/{running}").get_data(True)), timeout=10,
                     message="progress to advance")
    assert 'data-testid="job-log"' in later
    listing = client.get("/hangfire/jobs/processing").get_data(True)
    assert re.search(rf'name="job" value="{running}"\s+formaction="/hangfire/actions/cancel"', listing)
    assert "Cancel selected" in listing and "Cancel all matching" not in listing


def test_cancel_from_the_dashboard_stops_the_job(app, people, running):
    refused = post_form(people["read_only"], "/hangfire/actions/cancel", {"job": running})
    assert refused.status_code == 403
    assert job_state(app, running) == lifecycle.PROCESSING
    response = post_form(people["full"], "/hangfire/actions/cancel",
                         {"job": running, "next": f"/hangfire/job/{running}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/hangfire/job/{running}"
    wait_for(lambda: job_state(app, running) == lifecycle.DELETED, timeout=5, message="the job to stop")
    with app.app_context():
        job = db.session.get(Job, running)
        assert job.state_reason == "Cancelled: Cancelled by full" and (job.progress or 0) < 100
    html = people["full"].get(f"/hangfire/job/{running}").get_data(True)
    assert "Cancelled by full" in html and "Cancelled: Cancelled" not in html and "data-live-fast" not in html
    assert 'data-testid="job-progress"' not in html  # a cancelled job's bar is cleared
    [entry] = audit_entries(app, "cancel")
    assert json.loads(entry.job_ids) == [running] and entry.user == "full"


def test_cancel_selected_and_cancel_all_matching(app, people, jobs):
    response = post_form(people["full"], "/hangfire/actions/cancel",
                         {"ids": [jobs["enqueued"], jobs["failed"]], "next": "/hangfire/jobs/processing"})
    assert response.status_code == 302
    html = people["full"].get("/hangfire/jobs/processing").get_data(True)
    assert "Cancelled 1 of 2 jobs. 1 was not in a state this action applies to." in html
    assert job_state(app, jobs["enqueued"]) == lifecycle.DELETED
    assert job_state(app, jobs["failed"]) == lifecycle.FAILED
    post_form(people["full"], "/hangfire/actions/cancel", {"scope": "all", "list": "scheduled"})
    assert "applies to selected jobs only" in people["full"].get("/hangfire").get_data(True)
    assert job_state(app, jobs["scheduled"]) == lifecycle.SCHEDULED


# --- several at once ---------------------------------------------------------------------------

@pytest.fixture
def weekly(app, nightly):
    """A second recurring job (Mondays 06:00 UTC), besides ``nightly``; returns both ids."""
    from tests.jobs import recurring_tick

    recurring.recurring("tests.weekly", cron="0 6 * * 1")(recurring_tick)
    with app.app_context():
        recurring.sync()
    yield [nightly, "tests.weekly"]
    recurring.DEFINITIONS.pop("tests.weekly", None)


def test_the_page_offers_actions_on_the_ticked_recurring_jobs(people, weekly):
    html = people["full"].get("/hangfire/recurring").get_data(True)
    for action in ("trigger", "enable", "disable", "delete"):
        assert f'formaction="/hangfire/recurring/actions/{action}"' in html
    assert all(f'name="ids" value="{rid}"' in html for rid in weekly) and 'data-select-all' in html
    question = RECURRING_ACTIONS["disable"].confirm("{names}")
    assert f'data-confirm="{question}"' in html.replace("&#39;", "'")  # the page script names the ticked ones
    assert "don&#39;t run until enabled" in html  # the confirmation says what will happen


def test_several_recurring_jobs_at_once(app, people, weekly):
    client = people["full"]
    disabled = post_form(client, "/hangfire/recurring/actions/disable", {"ids": weekly},
                         follow_redirects=True)
    assert "Disabled 2 recurring jobs." in disabled.get_data(True)
    assert [row_of(app, rid).enabled for rid in weekly] == [False, False]
    post_form(client, "/hangfire/recurring/actions/enable", {"ids": weekly})
    assert [row_of(app, rid).enabled for rid in weekly] == [True, True]
    triggered = post_form(client, "/hangfire/recurring/actions/trigger", {"ids": weekly},
                          follow_redirects=True)
    assert "Triggered 2 recurring jobs." in triggered.get_data(True)
    assert [len(runs_of(app, rid)) for rid in weekly] == [1, 1]
    [entry] = audit_entries(app, "trigger-recurring")
    assert json.loads(entry.job_filter) == {"recurring_ids": weekly} and len(json.loads(entry.job_ids)) == 2
    deleted = post_form(client, "/hangfire/recurring/actions/delete", {"ids": [*weekly, "no-such"]},
                        follow_redirects=True)
    assert "Deleted 2 recurring jobs. 1 no longer exists." in deleted.get_data(True)
    assert [row_of(app, rid) for rid in weekly] == [None, None]


def test_several_recurring_jobs_need_a_selection_and_a_known_action(app, people, weekly):
    before = recurring_snapshot(app)
    nothing = post_form(people["full"], "/hangfire/recurring/actions/disable", {}, follow_redirects=True)
    assert "Select at least one recurring job." in nothing.get_data(True)
    url = "/hangfire/recurring/actions/"
    assert post_form(people["full"], url + "explode", {"ids": weekly}).status_code == 404
    assert post_form(people["read_only"], url + "disable", {"ids": weekly}).status_code == 403
    assert recurring_snapshot(app) == before


def test_api_acts_on_several_recurring_jobs(app, bearer, weekly):
    answer = bearer("full", "post", "/hangfire/api/recurring/actions/disable", json={"ids": weekly})
    assert answer.status_code == 200
    assert answer.get_json()["done"] == {weekly[0]: None, weekly[1]: None}
    assert answer.get_json()["message"] == "Disabled 2 recurring jobs."
    missing = bearer("full", "post", "/hangfire/api/recurring/actions/disable", json={"ids": ["nope"]})
    assert missing.status_code == 404 and missing.is_json
