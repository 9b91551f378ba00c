"""The dashboard's JSON API (``/hangfire/api``): same authorization, bearer or session, CSRF rules."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from app.extensions import db
from tasks import lifecycle, queries
from tasks.ledger import Job
from tests.helpers.ledger import job_state
from tests.helpers.ledger import SCRIPT, failed_job, snapshot, transport_of
from tests.helpers.web import assert_json_401, csrf_for

API = "/hangfire/api"


def api_reads(ids: dict) -> list[str]:
    """Every GET route of the API."""
    return [f"{API}/", f"{API}/stats", f"{API}/jobs", f"{API}/jobs?state=Failed&q=kaput&limit=5",
            f"{API}/jobs?retrying=1", f"{API}/jobs/{ids['failed']}", f"{API}/queues", f"{API}/servers",
            f"{API}/audit"]


def enqueued_by(app, task: str, user: str) -> bool:
    """True when a ``task`` job enqueued by ``user`` exists."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Job).where(
            Job.task == task, Job.enqueued_by == user)) > 0


def api_actions(app, ids: dict, user: str) -> list[tuple[str, dict, Callable[[], bool]]]:
    """Every POST route of the API, with a body that changes something and a check of that change."""
    state_of = lambda key: job_state(app, ids[key])  # noqa: E731
    return [
        (f"{API}/jobs", {"task": "demo.noop"}, lambda: enqueued_by(app, "demo.noop", user)),
        (f"{API}/jobs/{ids['failed']}/retry", {}, lambda: state_of("failed") == lifecycle.ENQUEUED),
        (f"{API}/jobs/{ids['scheduled']}/trigger", {}, lambda: state_of("scheduled") == lifecycle.ENQUEUED),
        (f"{API}/actions/delete", {"ids": [ids["enqueued"]]},
         lambda: state_of("enqueued") == lifecycle.DELETED),
        (f"{API}/actions/requeue", {"filter": {"state": "Failed"}},
         lambda: enqueued_by(app, "jobs.bulk_action", user)),
        (f"{API}/queues/pause", {"queue": "default"}, lambda: transport_of(app).paused() == {"default"}),
    ]


EXPECTED_READ = {"anonymous": 401, "no_permission": 403, "read_only": 200, "full": 200}
EXPECTED_CHANGE = {"anonymous": {401}, "no_permission": {403}, "read_only": {403}, "full": {200, 201, 202}}


@pytest.mark.parametrize("kind", ["anonymous", "no_permission", "read_only", "full"])
def test_api_route_walk_with_a_session(app, people, jobs, kind):
    client = people[kind]
    wrong = [f"GET {url}: {r.status_code}" for url in api_reads(jobs)
             if (r := client.get(url)).status_code != EXPECTED_READ[kind] or not r.is_json]
    before = snapshot(app)
    token = csrf_for(client)
    for url, body, changed in api_actions(app, jobs, "full"):
        response = client.post(url, json=body, headers={"X-CSRFToken": token})
        if response.status_code not in EXPECTED_CHANGE[kind] or not response.is_json:
            wrong.append(f"POST {url}: {response.status_code} {response.get_data(True)[:200]}")
        elif kind == "full" and not changed():
            wrong.append(f"POST {url}: answered {response.status_code} but changed nothing")
    assert not wrong, "\n".join(wrong)
    if kind != "full":
        assert snapshot(app) == before


@pytest.mark.parametrize("kind", ["outsider", "read_only", "full"])
def test_api_route_walk_with_a_bearer_token(app, bearer, jobs, kind):
    reads = {"outsider": 403, "read_only": 200, "full": 200}[kind]
    wrong = [f"GET {url}: {r.status_code}" for url in api_reads(jobs)
             if (r := bearer(kind, "get", url)).status_code != reads]
    before = snapshot(app)
    for url, body, changed in api_actions(app, jobs, "tom"):
        response = bearer(kind, "post", url, json=body)
        if response.status_code not in ({200, 201, 202} if kind == "full" else {403}):
            wrong.append(f"POST {url}: {response.status_code} {response.get_data(True)[:200]}")
        elif kind == "full" and not changed():
            wrong.append(f"POST {url}: answered {response.status_code} but changed nothing")
    assert not wrong, "\n".join(wrong)
    if kind != "full":
        assert snapshot(app) == before


def test_bad_bearer_token_is_401(app, jobs):
    for url in (f"{API}/stats", f"{API}/jobs/{jobs['failed']}/requeue"):
        method = app.test_client().post if url.endswith("requeue") else app.test_client().get
        assert_json_401(method(url, headers={"Authorization": "Bearer nope"}))


# --- CSRF on the exempt API ------------------------------------------------------------------

def test_session_action_without_csrf_token_is_refused_with_403(app, people, jobs):
    before = snapshot(app)
    for url, body, _ in api_actions(app, jobs, "full"):
        response = people["full"].post(url, json=body)
        assert response.status_code == 403, url
        assert "X-CSRFToken" in response.get_json()["error"]
    assert people["full"].post(f"{API}/actions/delete", json={"ids": [jobs["enqueued"]]},
                               headers={"X-CSRFToken": "forged"}).status_code == 403
    assert snapshot(app) == before


def test_session_action_with_csrf_header_works(app, people, jobs):
    token = csrf_for(people["full"])
    response = people["full"].post(f"{API}/jobs/{jobs['failed']}/requeue", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.get_json()["changed"] == [jobs["failed"]]
    assert job_state(app, jobs["failed"]) == lifecycle.ENQUEUED


def test_session_reads_need_no_csrf_token(people, jobs):
    assert people["full"].get(f"{API}/stats").status_code == 200


# --- reads ---------------------------------------------------------------------------------

def test_stats(app, bearer, jobs):
    stats = bearer("full", "get", f"{API}/stats").get_json()
    assert (stats["states"]["Failed"], stats["states"]["Scheduled"], stats["states"]["Enqueued"]) == (2, 1, 1)
    assert stats["retries"] == 0 and stats["recurring"] == 0 and stats["workers"] == {"alive": 0, "dead": 0}
    assert stats["read_only"] is False
    assert {q["name"]: q["length"] for q in stats["queues"]}["default"] == 1
    assert bearer("read_only", "get", f"{API}/stats").get_json()["read_only"] is True


def test_list_filters_and_cursor(app, bearer, jobs):
    ids = [failed_job(app, task="demo.fail", args=(f"page {i}",)) for i in range(5)]
    first = bearer("full", "get", f"{API}/jobs?state=Failed&task=demo.fail&limit=3").get_json()
    assert [j["id"] for j in first["jobs"]] == list(reversed(ids))[:3]
    assert first["count"] == 6 and first["count_capped"] is False and first["limit"] == 3
    query = f"state=Failed&task=demo.fail&limit=3&cursor={first['next_cursor']}"
    second = bearer("full", "get", f"{API}/jobs?{query}").get_json()
    assert [j["id"] for j in second["jobs"]] == list(reversed(ids))[3:] + [jobs["failed2"]]
    assert second["next_cursor"] is None
    found = bearer("full", "get", f"{API}/jobs?q=kaput").get_json()["jobs"]
    assert [j["id"] for j in found] == [jobs["failed"]] and found[0]["exception_message"] == "kaput"


@pytest.mark.parametrize("query,message", [
    ("state=Exploded", "unknown state"), ("cursor=bogus", "invalid cursor"),
    ("limit=5000", "Page size must be 1 to 1000"), ("since=someday", "is not a date and time"),
])
def test_list_rejects_bad_parameters(bearer, query, message):
    response = bearer("full", "get", f"{API}/jobs?{query}")
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_job_detail(app, bearer, jobs):
    detail = bearer("full", "get", f"{API}/jobs/{jobs['failed']}").get_json()
    assert detail["state"] == "Failed" and detail["args"] == [0.01] and detail["exception_message"] == "kaput"
    assert [h["state"] for h in detail["history"]] == ["Enqueued", "Processing", "Failed"]
    assert bearer("full", "get", f"{API}/jobs/{'f' * 32}").status_code == 404


def test_queues_servers_audit(app, bearer, jobs):
    bearer("full", "post", f"{API}/queues/pause", json={"queue": "email"})
    queues = {q["name"]: q for q in bearer("full", "get", f"{API}/queues").get_json()["queues"]}
    assert queues["email"]["paused"] is True and queues["default"]["length"] == 1
    assert bearer("full", "get", f"{API}/servers").get_json()["servers"] == []
    audit = bearer("read_only", "get", f"{API}/audit").get_json()
    assert audit["entries"][0]["action"] == "pause-queue" and audit["entries"][0]["user"] == "tom"
    assert audit["entries"][0]["filter"] == {"queue": "email"}


# --- actions -----------------------------------------------------------------------------------

def test_enqueue_via_api(app, bearer):
    body = {"task": "demo.sleep", "args": [0.1], "queue": "reports", "delay": 0}
    response = bearer("full", "post", f"{API}/jobs", json=body)
    assert response.status_code == 201
    job_id = response.get_json()["id"]
    with app.app_context():
        job = queries.get_job(job_id)
        assert (job.queue, job.enqueued_by, job.state) == ("reports", "tom", lifecycle.ENQUEUED)
    assert transport_of(app).holds([job_id]) == {job_id}


@pytest.mark.parametrize("body,field,message", [
    ({"task": "demo.sleep", "args": "[1,"}, "args", "not valid JSON"),
    ({"task": "demo.sleep", "args": {"a": 1}}, "args", "must be a JSON list"),
    ({"task": "nope"}, "task", "No job called"),
    ({"task": "demo.sleep", "args": [1, 2]}, "call", "too many positional arguments"),
    ({"task": "demo.sleep", "args": [1], "delay": -1}, "delay", "Delay must be"),
])
def test_enqueue_via_api_errors(app, bearer, body, field, message):
    response = bearer("full", "post", f"{API}/jobs", json=body)
    assert response.status_code == 400
    assert message in response.get_json()["errors"][field] and message in response.get_json()["error"]


def test_actions_via_bearer(app, bearer, jobs):
    requeued = bearer("full", "post", f"{API}/actions/requeue",
                      json={"ids": [jobs["failed"], jobs["enqueued"]]})
    assert requeued.get_json()["changed"] == [jobs["failed"]]
    assert "1 was not in a state" in requeued.get_json()["message"]
    assert transport_of(app).holds([jobs["failed"]])
    deleted = bearer("full", "post", f"{API}/jobs/{jobs['scheduled']}/delete").get_json()
    assert deleted["changed"] == [jobs["scheduled"]]
    assert job_state(app, jobs["scheduled"]) == lifecycle.DELETED
    assert not transport_of(app).holds([jobs["scheduled"]])
    bulk = bearer("full", "post", f"{API}/actions/delete",
                  json={"filter": {"state": "Failed", "task": "demo.fail"}})
    assert bulk.status_code == 202 and bulk.get_json()["estimate"] == 1
    assert job_state(app, bulk.get_json()["bulk_job_id"]) == lifecycle.ENQUEUED


@pytest.mark.parametrize("url,body,message", [
    (f"{API}/actions/delete", {}, "send {"),
    (f"{API}/actions/delete", {"ids": []}, "Select at least one job."),
    (f"{API}/actions/delete", {"filter": "everything"}, "“filter” must be a JSON object"),
    (f"{API}/actions/delete", {"filter": {"state": "Nope"}}, "unknown state"),
    (f"{API}/actions/delete", {"filter": {"q": "matches-nothing"}}, "No job matching this filter"),
    (f"{API}/queues/pause", {"queue": ""}, "A queue name has"),
])
def test_bad_actions_are_400(bearer, jobs, url, body, message):
    response = bearer("full", "post", url, json=body)
    assert response.status_code == 400 and message in response.get_json()["error"]


def test_payload_round_trips_as_data(app, bearer):
    created = bearer("full", "post", f"{API}/jobs", json={"task": "demo.fail", "args": [SCRIPT]})
    job_id = created.get_json()["id"]
    response = bearer("full", "get", f"{API}/jobs/{job_id}")
    assert response.get_json()["args"] == [SCRIPT] and response.mimetype == "application/json"


def test_api_is_not_in_the_menu(people):
    html = people["full"].get("/admin/").get_data(True)
    assert 'href="/hangfire"' in html and 'href="/hangfire/api' not in html
