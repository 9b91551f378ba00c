"""The reports JSON API (``/api/reports``) with bearer tokens and sessions, built by a real worker."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.permissions import ADMIN_ROLE, REPORTS_ALL
from app.reports.models import FAILED, QUEUED, Report
from tasks.ledger import Job, utcnow
from tests.helpers.ledger import fetch
from tests.helpers.web import bearer, bearer_token, csrf_for, sign_in
from tests.test_reports import REPORT_QUEUES, csv_rows, ready_report, run_demo_jobs, wait_final
from tests.workers import wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:wtforms")


def activity(days: int = 2) -> dict:
    """A job activity report over the last ``days`` UTC days."""
    today = utcnow().date()
    return {"kind": "job-activity", "start": (today - timedelta(days=days - 1)).isoformat(),
            "end": today.isoformat()}


def user_id(app, username: str) -> int:
    """The id of the user named ``username``."""
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


@pytest.fixture
def tokens(app, make_user):
    """Bearer headers for ``ann``, ``bob`` and ``auditor`` (holds "All reports")."""
    make_user("ann")
    make_user("bob")
    make_user("auditor", permissions=[REPORTS_ALL])
    client = app.test_client()
    return {name: bearer(bearer_token(client, name)) for name in ("ann", "bob", "auditor")}


def test_a_report_is_created_built_and_downloaded_through_the_api(app, client, tokens, start_worker):
    start_worker(queues=REPORT_QUEUES)
    wait_final(app, run_demo_jobs(app))
    created = client.post("/api/reports", json=activity(), headers=tokens["ann"])
    assert created.status_code == 201, created.get_json()
    report = created.get_json()
    assert created.headers["Location"] == f"/api/reports/{report['id']}"
    assert (report["kind"], report["format"]) == ("job-activity", "csv")
    assert report["state"] in (QUEUED, "running") and report["download_url"] is None
    job = fetch(app, Job, report["job_id"])
    assert (job.task, job.enqueued_by) == ("reports.build", "ann")

    def ready():
        body = client.get(f"/api/reports/{report['id']}", headers=tokens["ann"]).get_json()
        assert body["state"] != FAILED, body
        return body if body["final"] else None

    body = wait_for(ready, timeout=40, message="report ready")
    assert (body["state"], body["progress"]) == ("ready", 100)
    assert body["download_url"] == f"/api/reports/{report['id']}/download"
    download = client.get(body["download_url"], headers=tokens["ann"])
    assert download.status_code == 200 and download.mimetype == "text/csv"
    by_task = {row[1]: row for row in csv_rows(download.data)[1:]}
    assert by_task["demo.noop"][2:5] == ["3", "3", "0"]

    assert client.get(body["download_url"], headers=tokens["bob"]).status_code == 404
    hidden = client.get(f"/api/reports/{report['id']}", headers=tokens["bob"])
    assert (hidden.status_code, hidden.get_json()) == (404, {"error": "not found"})
    assert client.get(body["download_url"], headers=tokens["auditor"]).data == download.data


def test_each_caller_lists_only_their_own_reports(app, client, tokens):
    ann_report, _ = ready_report(app, user_id(app, "ann"), "a\n")
    bob_report, _ = ready_report(app, user_id(app, "bob"), "b\n")

    def listed(who: str, query: str = "") -> list[int]:
        response = client.get(f"/api/reports{query}", headers=tokens[who])
        assert response.status_code == 200
        return [report["id"] for report in response.get_json()["reports"]]

    assert listed("ann") == [ann_report] and listed("bob") == [bob_report]
    assert listed("bob", "?scope=all") == [bob_report]  # without "All reports", scope=all is still yours
    assert sorted(listed("auditor", "?scope=all")) == sorted([ann_report, bob_report])
    assert listed("auditor") == []


@pytest.mark.parametrize("body, field", [
    ({"kind": "job-activity", "start": "2026-11-10", "end": "2026-11-01"}, "end"),
    ({"kind": "access-review"}, "kind"),  # ann lacks "Access review report"
    ({"kind": "job-activity", "format": "pdf", **activity()}, "format"),
    ({"kind": 7}, "kind"),
    ({"kind": "job-activity", "start": "yesterday", "end": "2026-11-01"}, "start"),
    ({**activity(), "include_inactive": "yes"}, "include_inactive"),
    ({**activity(), "path": "../../app.db"}, "path"),
    ([1, 2], "body"),
])
def test_bad_requests_get_400_naming_the_field(app, client, tokens, body, field):
    response = client.post("/api/reports", json=body, headers=tokens["ann"])
    assert response.status_code == 400
    answer = response.get_json()
    assert field in answer["errors"] and field in answer["error"], answer
    with app.app_context():
        assert db.session.scalars(select(Report)).all() == []


def test_access_review_for_a_holder_of_its_permission(app, client, make_user):
    make_user("root", roles=[ADMIN_ROLE])
    headers = bearer(bearer_token(client, "root"))
    created = client.post("/api/reports", json={"kind": "access-review", "format": "xlsx",
                                                "include_inactive": True}, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["parameters"] == {"include_inactive": True}


def test_sessions_work_too_but_changes_need_the_csrf_token(app, make_user):
    make_user("ann")
    session = sign_in(app, "ann")
    assert session.get("/api/reports").get_json() == {"reports": []}
    refused = session.post("/api/reports", json=activity())
    assert refused.status_code == 403 and "X-CSRFToken" in refused.get_json()["error"]
    accepted = session.post("/api/reports", json=activity(), headers={"X-CSRFToken": csrf_for(session)})
    assert accepted.status_code == 201


def test_anonymous_and_bad_tokens_get_401_json(client):
    for response in (client.get("/api/reports"), client.post("/api/reports", json=activity()),
                     client.get("/api/reports/1", headers=bearer("not-a-token"))):
        assert response.status_code == 401 and "error" in response.get_json()


def test_retry_rebuilds_only_failed_reports(app, client, tokens, start_worker):
    owner = user_id(app, "ann")
    report_id, _ = ready_report(app, owner, "a\n")
    conflict = client.post(f"/api/reports/{report_id}/retry", headers=tokens["ann"])
    assert conflict.status_code == 409 and "hasn't failed" in conflict.get_json()["error"]
    assert client.post(f"/api/reports/{report_id}/retry", headers=tokens["bob"]).status_code == 404

    failed_id, token = ready_report(app, owner, "a\n")
    os.unlink(os.path.join(app.instance_path, "reports", str(owner), token + ".csv"))
    with app.app_context():
        report = db.session.get(Report, failed_id)
        report.state, report.error = FAILED, "disk full"
        report.params = '{"start": "2026-01-01", "end": "2026-01-01"}'
        db.session.commit()
    start_worker(queues=REPORT_QUEUES)
    retried = client.post(f"/api/reports/{failed_id}/retry", headers=tokens["ann"])
    assert retried.status_code == 200 and retried.get_json()["state"] == QUEUED
    wait_for(lambda: fetch(app, Report, failed_id).state == "ready", timeout=40, message="rebuilt")
