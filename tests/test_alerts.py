"""Alerts (issue 13 item 7): the leader's check opens an incident once, resolves it once, emails each
change over real SMTP to holders of "Job alerts", and the overview shows what is open."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.alerts import Incident
from app.config import ConfigError, from_environment
from app.extensions import db
from app.permissions import HANGFIRE, JOB_ALERTS, REGISTRY
from tasks.ledger import utcnow
from tests.helpers.ledger import enqueue, job_state
from tests.workers import wait_for


@pytest.fixture
def app_config(app_config):
    """Alerts on: checked every second, two failed attempts of a task open an incident, a queue with
    work and no reader for half a second opens one; the queue-wait signal is off."""
    app_config.update(JOBS_ALERT_INTERVAL_SECONDS=1, JOBS_ALERT_FAILURES=2,
                      JOBS_ALERT_FAILURE_WINDOW_SECONDS=900, JOBS_ALERT_QUEUE_WAIT_SECONDS=0,
                      JOBS_ALERT_NO_WORKER_SECONDS=0.5)
    return app_config


def incidents(app) -> dict[str, Incident]:
    """Every incident by ``kind:subject`` (fresh read, detached)."""
    with app.app_context():
        rows = list(db.session.scalars(db.select(Incident)))
        for row in rows:
            db.session.expunge(row)
    return {f"{row.kind}:{row.subject}": row for row in rows}


def checked_again(app, after) -> bool:
    """True once every open incident was checked two seconds after ``after`` (two more rounds at least)."""
    open_ones = [i for i in incidents(app).values() if i.resolved_at is None]
    return bool(open_ones) and all(i.checked_at >= after + timedelta(seconds=2) for i in open_ones)


def test_incidents_open_once_and_resolve_once_with_real_mail(app, smtp_server, start_worker, make_user,
                                                             admin_client):
    make_user("watcher", permissions=[JOB_ALERTS])
    make_user("bystander", permissions=[HANGFIRE])
    stranded = enqueue(app, "demo.noop", args=(), queue="reports")
    failing = enqueue(app, "tests.always_fails", args=("on purpose",))
    start_worker(queues="default,email", MAIL_URL=smtp_server.url, JOBS_BACKOFF_SCALE="0.01")
    wait_for(lambda: job_state(app, failing) == "Failed", message="the failing job to fail")

    messages = smtp_server.wait_for_messages(2)
    subjects = sorted(message["Subject"] for message in messages)
    assert subjects == ["[jobs] No worker for a queue: reports", "[jobs] Task failing: tests.always_fails"]
    for message in messages:  # root holds "Job alerts" through the Admin role; bystander doesn't
        addresses = sorted(address.strip() for address in message["To"].split(","))
        assert addresses == ["root@example.com", "watcher@example.com"]
    body = messages[0].get_content()
    assert "Incident #" in body and "/hangfire" in body
    opened = incidents(app)
    assert set(opened) == {"failures:tests.always_fails", "no_worker:reports"}

    overview = admin_client.get("/hangfire/fragment/overview").get_data(True)
    assert overview.count('data-testid="incident"') == 2 and "no live worker reads it" in overview
    stats = admin_client.get("/hangfire/api/stats").get_json()
    assert {i["kind"] for i in stats["incidents"]} == {"failures", "no_worker"}

    mark = utcnow()
    wait_for(lambda: checked_again(app, mark), message="two more checks")
    assert len(smtp_server.inbox.messages) == 2  # still open: nothing more is sent

    start_worker(queues="reports")
    wait_for(lambda: job_state(app, stranded) == "Succeeded", message="the reports job to run")
    messages = smtp_server.wait_for_messages(3)
    resolved = messages[2]
    assert resolved["Subject"] == "[jobs] Resolved: No worker for a queue: reports"
    assert "It was open for" in resolved.get_content()
    mark = utcnow()
    wait_for(lambda: checked_again(app, mark), message="two more checks")
    assert len(smtp_server.inbox.messages) == 3
    now = incidents(app)
    assert now["no_worker:reports"].resolved_at is not None and now["no_worker:reports"].open_key is None
    assert now["failures:tests.always_fails"].resolved_at is None
    overview = admin_client.get("/hangfire/fragment/overview").get_data(True)
    assert overview.count('data-testid="incident"') == 1 and "tests.always_fails" in overview


def test_no_incident_without_a_breach(app, smtp_server, start_worker):
    done = enqueue(app, "demo.noop", args=())
    start_worker(queues="default,email", MAIL_URL=smtp_server.url)
    wait_for(lambda: job_state(app, done) == "Succeeded", message="the job to run")
    with app.app_context():
        from app.alerts import check

        result = check()
    assert result.opened == [] and result.resolved == [] and incidents(app) == {}
    assert smtp_server.inbox.messages == []
    assert "data-testid=\"incidents\"" not in app.test_client().get("/hangfire").get_data(True)


def test_thresholds_come_from_the_environment(tmp_path):
    env = {"JOBS_ALERT_FAILURES": "25", "JOBS_ALERT_INTERVAL_SECONDS": "30",
           "JOBS_ALERT_NO_WORKER_SECONDS": "0"}
    config = from_environment(str(tmp_path), env)
    assert (config["JOBS_ALERT_FAILURES"], config["JOBS_ALERT_NO_WORKER_SECONDS"]) == (25.0, 0.0)
    assert config["JOBS_ALERT_INTERVAL_SECONDS"] == 30.0
    with pytest.raises(ConfigError, match="JOBS_ALERT_QUEUE_WAIT_SECONDS"):
        from_environment(str(tmp_path), {"JOBS_ALERT_QUEUE_WAIT_SECONDS": "ten minutes"})
    with pytest.raises(ConfigError, match="JOBS_ALERT_FAILURES"):
        from_environment(str(tmp_path), {"JOBS_ALERT_FAILURES": "-1"})


def test_job_alerts_is_a_permission_of_its_own(admin_client):
    assert REGISTRY[JOB_ALERTS].display_name == "Job alerts"
    form = admin_client.get("/admin/role/new/").get_data(True)
    assert ">Job alerts<" in form or "Job alerts</label>" in form
