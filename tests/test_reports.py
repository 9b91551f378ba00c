"""Reports through the real pages and real workers: generate, watch, download, email, retry, expire.

SMTP tests use a real aiosmtpd server in this process; workers get ``MAIL_URL`` pointing at it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.permissions import ADMIN_ROLE, REPORTS_ALL
from app.reports import storage
from app.reports.models import FAILED, QUEUED, READY, Report, new_token
from tasks import enqueue, lifecycle
from tasks.ledger import Job, utcnow
from tasks.progress import job_logs
from tasks.queries import history
from tests.helpers.ledger import attempts, fetch, job_state
from tests.helpers.mail import after_a_later_email
from tests.helpers.web import csrf_token, sign_in
from tests.services import SmtpServer
from tests.workers import wait_for

REPORT_QUEUES = "default,reports,email"
FAST_RECOVERY = {"JOBS_DEAD_AFTER": "2", "JOBS_RECONCILE_INTERVAL": "2", "JOBS_RECONCILE_GRACE": "2"}


# --- helpers ---------------------------------------------------------------------------------------

def generate(client, kind: str = "job-activity", fmt: str = "csv", **fields):
    """Submit the form on /reports; returns the response (a redirect when accepted)."""
    token = csrf_token(client.get("/reports").get_data(True))
    data = {"kind": kind, "format": fmt, "csrf_token": token, **fields}
    if kind == "job-activity":
        today = utcnow().date()
        data.setdefault("start", (today - timedelta(days=1)).isoformat())
        data.setdefault("end", today.isoformat())
    return client.post("/reports", data=data)


def generated_id(response) -> int:
    """The report id from the redirect after a successful POST (``/reports#report-<id>``)."""
    assert response.status_code == 302, response.get_data(True)
    return int(response.headers["Location"].rsplit("#report-", 1)[1])


def load_report(app, report_id: int) -> Report | None:
    return fetch(app, Report, report_id)


def wait_ready(app, report_id: int, timeout: float = 40) -> Report:
    wait_for(lambda: (load_report(app, report_id) or Report()).state in (READY, FAILED), timeout,
             message=f"report {report_id} finished")
    report = load_report(app, report_id)
    assert report.state == READY, report.error
    return report


def status(client, report_id: int) -> dict:
    response = client.get(f"/reports/{report_id}/status")
    assert response.status_code == 200
    return response.get_json()


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def run_demo_jobs(app) -> list[str]:
    """Three successes and one failure in the ledger, for the activity report to count."""
    with app.app_context():
        return [enqueue("demo.noop") for _ in range(3)] + [enqueue("demo.fail", args=["on purpose"])]


def wait_final(app, job_ids: list[str]) -> None:
    wait_for(lambda: all(job_state(app, j) in lifecycle.FINAL_STATES for j in job_ids),
             message="demo jobs ran")


# --- the page and the form ------------------------------------------------------------------------

def test_reports_need_sign_in(client):
    response = client.get("/reports")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=%2Freports")
    assert client.get("/reports/1/status", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/reports/1/download").status_code == 302


def test_page_offers_only_the_reports_a_user_may_run(app, make_user):
    make_user("ann")
    make_user("root", roles=[ADMIN_ROLE])
    page = sign_in(app, "ann").get("/reports").get_data(True)
    assert "Job activity" in page and "Access review" not in page
    assert 'href="/reports"' in page  # the navigation link
    assert "Access review" in sign_in(app, "root").get("/reports").get_data(True)
    refused = generate(sign_in(app, "ann"), kind="access-review")
    assert refused.status_code == 400 and "Not a valid choice" in refused.get_data(True)


@pytest.mark.parametrize("start, end, error", [
    ("2026-11-10", "2026-11-01", "The last day is before the first day."),
    ("2024-01-01", "2026-01-01", "Choose at most 366 days."),
    ("", "", "Choose the first and the last day."),
])
def test_bad_date_ranges_are_refused(app, make_user, start, end, error):
    make_user("ann")
    response = generate(sign_in(app, "ann"), start=start, end=end)
    assert response.status_code == 400 and error in response.get_data(True)
    with app.app_context():
        assert db.session.scalars(select(Report)).all() == []


def test_generate_returns_at_once_with_the_build_job_enqueued(app, make_user):
    make_user("ann")
    client = sign_in(app, "ann")
    report_id = generated_id(generate(client, fmt="xlsx"))
    report = load_report(app, report_id)
    assert (report.state, report.format, report.kind) == (QUEUED, "xlsx", "job-activity")
    with app.app_context():
        job = db.session.get(Job, report.job_id)
        assert (job.task, job.queue, job.state, job.enqueued_by) == \
            ("reports.build", "reports", "Enqueued", "ann")
        assert json.loads(job.args) == [report_id]
    body = status(client, report_id)
    assert (body["state"], body["label"], body["progress"], body["final"]) == ("queued", "Queued", 0, False)
    page = client.get("/reports").get_data(True)
    assert f'id="report-{report_id}"' in page and "is being generated" in page


# --- building, downloading, authorization -----------------------------------------------------------

def test_activity_report_counts_jobs_and_only_its_owner_downloads_it(app, make_user, start_worker):
    make_user("ann")
    make_user("bob")
    make_user("auditor", permissions=[REPORTS_ALL])
    start_worker(queues=REPORT_QUEUES)
    wait_final(app, run_demo_jobs(app))
    ann = sign_in(app, "ann")
    report_id = generated_id(generate(ann))
    report = wait_ready(app, report_id)

    body = status(ann, report_id)
    assert (body["state"], body["progress"], body["final"]) == ("ready", 100, True)
    assert body["download_url"] == f"/reports/{report_id}/download"
    assert body["size_bytes"] == report.size_bytes
    download = ann.get(body["download_url"])
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"].startswith("attachment; filename=job-activity-")
    rows = csv_rows(download.data)
    assert rows[0] == ["Day", "Task", "Jobs", "Succeeded", "Failed", "Other", "Retries", "Avg seconds",
                       "Max seconds"]
    by_task = {row[1]: row for row in rows[1:]}
    assert by_task["demo.noop"][2:5] == ["3", "3", "0"] and by_task["demo.fail"][2:5] == ["1", "0", "1"]
    assert report.rows == len(rows) - 1

    assert sign_in(app, "bob").get(f"/reports/{report_id}/download").status_code == 404
    assert sign_in(app, "bob").get(f"/reports/{report_id}/status").status_code == 404
    assert sign_in(app, "auditor").get(f"/reports/{report_id}/download").data == download.data
    everyone = sign_in(app, "auditor").get("/reports?scope=all").get_data(True)
    assert f'id="report-{report_id}"' in everyone and "by ann" in everyone
    assert f'id="report-{report_id}"' not in sign_in(app, "bob").get("/reports?scope=all").get_data(True)

    with app.app_context():
        lines = [log.message for log in job_logs(report.job_id)]
    assert any(line.startswith("chunk 2/2") for line in lines), lines
    outbox = os.path.join(app.instance_path, "outbox")
    wait_for(lambda: os.path.isdir(outbox) and os.listdir(outbox), message="email in the outbox")
    [eml] = os.listdir(outbox)
    assert eml == f"report-{report_id}-{report.token[:16]}-ready.eml"


@pytest.mark.parametrize("probe", [
    "/reports/../app.db", "/reports/%2e%2e/app.db", "/reports/..%2Fapp.db/download", "/reports/-1/download",
    "/reports/1%2F..%2F..%2Fapp.db/download", "/reports/{id}/download/..%2F..%2Fapp.db",
    "/reports/{id}%2F..%2F..%2Fapp.db", "/reports/99999/download", "/reports/{id}.csv",
    "/reports/{token}/download", "/reports/{id}/download?path=../../app.db",
])
def test_path_traversal_attempts_are_404(app, make_user, probe):
    user_id = make_user("ann")
    report_id, token = ready_report(app, user_id, "a,b\n1,2\n")
    client = sign_in(app, "ann")
    expected = 200 if probe.endswith("?path=../../app.db") else 404
    response = client.get(probe.format(id=report_id, token=token))
    assert response.status_code == expected
    if expected == 200:
        assert response.data == b"a,b\n1,2\n"


def test_a_tampered_token_never_leaves_the_reports_folder(app, make_user):
    user_id = make_user("ann")
    report_id, _ = ready_report(app, user_id, "x\n")
    with app.app_context():
        db.session.get(Report, report_id).token = "../../app"
        db.session.commit()
        with pytest.raises(storage.UnsafePath):
            storage.file_path(user_id, "../../app", "csv")
    assert sign_in(app, "ann").get(f"/reports/{report_id}/download").status_code == 404


def ready_report(app, user_id: int, content: str, fmt: str = "csv", expires_in: timedelta = timedelta(days=1),
                 **fields) -> tuple[int, str]:
    """A ready report with a file holding ``content`` (no worker needed); returns (id, token)."""
    with app.app_context():
        report = Report(user_id=user_id, kind="job-activity", format=fmt, title="Job activity", state=READY,
                        token=new_token(), rows=1, size_bytes=len(content), expires_at=utcnow() + expires_in,
                        **fields)
        db.session.add(report)
        db.session.commit()
        path = storage.file_path(user_id, report.token, fmt)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(content)
        return report.id, report.token


def test_access_review_as_xlsx_neutralises_formulas(app, make_user, start_worker):
    from openpyxl import load_workbook

    make_user("root", roles=[ADMIN_ROLE])
    make_user("=HYPERLINK(\"http://evil\")")
    make_user("gone", active=False)
    start_worker(queues=REPORT_QUEUES)
    client = sign_in(app, "root")
    report_id = generated_id(generate(client, kind="access-review", fmt="xlsx", include_inactive="y"))
    wait_ready(app, report_id)
    download = client.get(f"/reports/{report_id}/download")
    assert download.mimetype == storage.FORMATS["xlsx"][1]
    sheet = load_workbook(io.BytesIO(download.data), read_only=True).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:5] == ["User", "Email", "Active", "Roles", "Permissions"]
    users = {row[0]: row for row in rows[1:]}
    assert set(users) == {"root", "'=HYPERLINK(\"http://evil\")", "gone"}
    assert users["root"][3] == ADMIN_ROLE and REPORTS_ALL in users["root"][4] and users["gone"][2] is False


# --- failures, retry, retention ------------------------------------------------------------------------

def test_a_failed_report_shows_its_reason_and_can_be_retried(app, make_user, start_worker):
    user_id = make_user("ann")
    blocker = os.path.join(app.instance_path, "reports", str(user_id))
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as fh:  # a file where the user's folder should be: every attempt fails
        fh.write("in the way")
    start_worker(queues=REPORT_QUEUES, JOBS_BACKOFF_SCALE="0.01")
    client = sign_in(app, "ann")
    report_id = generated_id(generate(client))
    wait_for(lambda: load_report(app, report_id).state == FAILED, timeout=40, message="report failed")
    report = load_report(app, report_id)
    assert report.error.startswith(("FileExistsError", "NotADirectoryError")), report.error
    with app.app_context():
        assert db.session.get(Job, report.job_id).attempt == 3
    body = status(client, report_id)
    assert (body["state"], body["final"], body["error"]) == ("failed", True, report.error)
    page = client.get("/reports").get_data(True)
    assert "Failed" in page and f'action="/reports/{report_id}/retry"' in page

    os.unlink(blocker)
    token = csrf_token(page)
    assert client.post(f"/reports/{report_id}/retry", data={"csrf_token": token}).status_code == 302
    retried = wait_ready(app, report_id)
    assert retried.job_id != report.job_id and retried.error is None
    assert client.get(f"/reports/{report_id}/download").status_code == 200
    again = client.post(f"/reports/{report_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "hasn&#39;t failed" in again.get_data(True)


def test_a_build_job_deleted_in_the_ledger_shows_as_failed(app, make_user, runner):
    make_user("ann")
    client = sign_in(app, "ann")
    report_id = generated_id(generate(client))
    result = runner.invoke(args=["jobs", "delete", load_report(app, report_id).job_id])
    assert result.exit_code == 0, result.output
    body = status(client, report_id)
    assert (body["state"], body["final"]) == ("failed", True) and body["error"]
    assert f'action="/reports/{report_id}/retry"' in client.get("/reports").get_data(True)


def test_cleanup_deletes_expired_reports_and_stray_files(app, make_user, runner):
    user_id = make_user("ann")
    kept, kept_token = ready_report(app, user_id, "kept\n")
    expired, expired_token = ready_report(app, user_id, "old\n", expires_in=-timedelta(minutes=1))
    folder = os.path.join(app.instance_path, "reports", str(user_id))
    stale_part = os.path.join(folder, f"{kept_token}.csv.123-abcd.part")
    fresh_part = os.path.join(folder, f"{new_token()}.csv.124-abcd.part")
    orphan = os.path.join(folder, f"{new_token()}.csv")
    for path in (stale_part, fresh_part, orphan):
        with open(path, "w") as fh:
            fh.write("x")
    two_hours_ago = time.time() - 7200
    os.utime(stale_part, (two_hours_ago, two_hours_ago))
    os.utime(orphan, (two_hours_ago, two_hours_ago))

    result = runner.invoke(args=["reports", "cleanup"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 expired report(s), 1 file(s), 2 stray file(s)" in result.output
    assert load_report(app, expired) is None and load_report(app, kept) is not None
    assert sorted(os.listdir(folder)) == sorted([f"{kept_token}.csv", os.path.basename(fresh_part)])
    assert sign_in(app, "ann").get(f"/reports/{expired}/download").status_code == 404


# --- email: a real SMTP server ------------------------------------------------------------------------

def attachment_names(message) -> list[str]:
    return [part.get_filename() for part in message.iter_attachments()]


def test_generated_report_arrives_as_exactly_one_email_with_the_attachment(app, make_user, start_worker,
                                                                           smtp_server):
    make_user("ann")
    start_worker(queues=REPORT_QUEUES, MAIL_URL=smtp_server.url)
    client = sign_in(app, "ann")
    report_id = generated_id(generate(client))
    report = wait_ready(app, report_id)
    [message] = smtp_server.wait_for_messages(1)
    wait_for(lambda: job_state(app, report.email_job_id) == lifecycle.SUCCEEDED, message="email job done")
    assert len(after_a_later_email(app, smtp_server)) == 1
    assert message["To"] == "ann@example.com" and message["Subject"].startswith("Your report is ready")
    assert message["Message-ID"] == f"<report-{report_id}-{report.token[:16]}-ready@localhost>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename().startswith(f"job-activity-{report_id}-")
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == client.get(f"/reports/{report_id}/download").data
    assert f"http://localhost/reports/{report_id}/download" in message.get_body(("plain",)).get_content()


def test_large_reports_are_emailed_as_a_link(app, make_user, start_worker, smtp_server):
    make_user("ann")
    start_worker(queues=REPORT_QUEUES, MAIL_URL=smtp_server.url, REPORTS_ATTACH_MAX_BYTES="10",
                 PUBLIC_URL="https://jobs.example.com")
    report_id = generated_id(generate(sign_in(app, "ann")))
    wait_ready(app, report_id)
    [message] = smtp_server.wait_for_messages(1)
    assert attachment_names(message) == []
    text = message.get_body(("plain",)).get_content()
    assert f"https://jobs.example.com/reports/{report_id}/download" in text and "too large to attach" in text


def attach(app, spec, recipients):
    """Resolve an email attachment as the email job does, in an app context."""
    from app.mail.attachments import resolve

    with app.app_context():
        return resolve(spec, recipients)


def test_report_attachments_are_authorized_against_every_recipient(app, make_user):
    from app.mail.attachments import AttachmentMissing, AttachmentRefused

    ann = make_user("ann")
    make_user("bob")
    make_user("auditor", permissions=[REPORTS_ALL])
    make_user("gone", permissions=[REPORTS_ALL], active=False)
    report_id, _ = ready_report(app, ann, "a,b\n1,2\n")
    attached = attach(app, {"report": report_id}, ["ann@example.com"])
    assert attached.filename.startswith(f"job-activity-{report_id}-") and attached.content_type == "text/csv"
    both = attach(app, {"report": report_id}, ["ANN@example.com", "auditor@example.com"])
    assert both.path == attached.path
    for recipients in (["bob@example.com"], ["ann@example.com", "bob@example.com"], ["gone@example.com"],
                       ["stranger@example.org"], [7]):
        with pytest.raises(AttachmentRefused):
            attach(app, {"report": report_id}, recipients)
    for ref in ("1", True, -1, 2**40, None, 1.0):
        with pytest.raises(AttachmentRefused):
            attach(app, {"report": ref}, ["ann@example.com"])
    with pytest.raises(AttachmentMissing):
        attach(app, {"report": report_id + 1000}, ["ann@example.com"])


def test_an_email_naming_someone_elses_report_fails_without_retrying(app, make_user, start_worker):
    """Enqueued by hand (CLI, code) to mail Ann's report to Bob: the job fails at once, no mail written."""
    ann = make_user("ann")
    make_user("bob")
    report_id, _ = ready_report(app, ann, "a,b\n1,2\n")
    with app.app_context():
        job_id = enqueue("email.send", args=["steal-1", ["bob@example.com"], "Yours", "Here",
                                             [{"report": report_id}]])
    start_worker(queues="email")
    wait_for(lambda: job_state(app, job_id) == lifecycle.FAILED, message="email job failed")
    assert attempts(app, job_id) == 1
    job = fetch(app, Job, job_id)
    assert job.exception_type.endswith("MessageRefused")  # the permanent wrapper around AttachmentRefused
    assert "may not be sent to bob@example.com" in job.exception_message
    assert not os.path.exists(os.path.join(app.instance_path, "outbox", "steal-1.eml"))


@pytest.mark.fault
@pytest.mark.slow
def test_kill_9_mid_report_completes_after_recovery_with_one_email(app_config, app, make_user, start_worker,
                                                                   fault_report):
    app_config.update(FAST_RECOVERY)
    with SmtpServer() as server:
        make_user("ann")
        slow = {"MAIL_URL": server.url, "REPORTS_CHUNK_DELAY": "0.2"}
        victim = start_worker(queues=REPORT_QUEUES, concurrency=1, **slow)
        start = (utcnow() - timedelta(days=39)).date().isoformat()  # 40 chunks, about 8 s
        report_id = generated_id(generate(sign_in(app, "ann"), start=start))
        job_id = load_report(app, report_id).job_id
        wait_for(lambda: progress(app, job_id) >= 10, timeout=30, message="the report is under way")
        assert job_state(app, job_id) == lifecycle.PROCESSING
        victim.kill()
        killed, killed_at = time.monotonic(), progress(app, job_id)
        start_worker(queues=REPORT_QUEUES, concurrency=1, **slow)
        wait_for(lambda: attempts(app, job_id) >= 2, timeout=20, message="the build restarted")
        restarted_after = time.monotonic() - killed
        report = wait_ready(app, report_id, timeout=60)
        [message] = server.wait_for_messages(1)
        wait_for(lambda: job_state(app, report.email_job_id) == lifecycle.SUCCEEDED, message="email job done")
        report_mails = after_a_later_email(app, server)
        assert len(report_mails) == 1 and attachment_names(message)
        with app.app_context():
            reasons = [h.reason for h in history(job_id)]
            attempt = db.session.get(Job, job_id).attempt
        assert any("lost" in reason or "redelivered" in reason for reason in reasons), reasons
        assert attempt == 2 and killed_at < 100
        attached = next(message.iter_attachments()).get_payload(decode=True)
        assert len(csv_rows(attached)) == report.rows + 1
    fault_report(f"report build killed -9 at {killed_at} %: rebuilt by a new worker after "
                 f"{restarted_after:.1f} s (dead after 2 s), {len(report_mails)} email")


def progress(app, job_id: str) -> int:
    with app.app_context():
        job = db.session.get(Job, job_id)
        return (job.progress or 0) if job else 0


def test_cleanup_is_a_recurring_job(app):
    from tasks.recurring import DEFINITIONS

    cleanup = DEFINITIONS["reports-cleanup"]
    assert (cleanup.task, cleanup.cron) == ("reports.cleanup", "17 * * * *")
