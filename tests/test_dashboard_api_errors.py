"""The dashboard JSON API's error paths: every endpoint answers a JSON 4xx to malformed JSON, a
body that isn't an object, fields of the wrong type, unknown routes and methods; a bulk action on
"everything matching" needs a non-empty filter or an explicit ``"all": true`` and says how many
jobs it will touch."""
from __future__ import annotations

import pytest

from tasks import lifecycle
from tests.helpers.ledger import failed_job, job_state, snapshot

API = "/hangfire/api"


def post_endpoints(ids: dict) -> list[str]:
    """Every POST route of the API."""
    return [f"{API}/jobs", f"{API}/jobs/{ids['failed']}/retry", f"{API}/actions/delete",
            f"{API}/queues/pause", f"{API}/recurring/nightly/trigger", f"{API}/recurring/actions/disable"]


def raw_post(bearer, url: str, data: bytes | str):
    """POST ``data`` as the body, declared JSON."""
    return bearer("full", "post", url, data=data, content_type="application/json")


def assert_json_error(response, status: int, text: str = "") -> None:
    """A ``{"error": ...}`` JSON answer with ``status`` (mentioning ``text``)."""
    assert response.status_code == status, (response.status_code, response.get_data(True)[:300])
    assert response.is_json and text in response.get_json()["error"], response.get_json()


@pytest.mark.parametrize("body,message", [
    ("{not json", "invalid JSON"), ('{"ids": [1,', "invalid JSON"),
    ("[1, 2]", "must be a JSON object, not list"),
    ('"text"', "must be a JSON object, not str"), ("3", "must be a JSON object, not int"),
    ("[" * 10_000 + "]" * 10_000, "invalid JSON"),
])
def test_bodies_that_are_not_json_objects_are_400(app, bearer, jobs, nightly, body, message):
    before = snapshot(app)
    for url in post_endpoints(jobs):
        if url.endswith("/retry") or url.endswith("/trigger"):
            continue  # these take no body
        assert_json_error(raw_post(bearer, url, body), 400, message)
    assert snapshot(app) == before


@pytest.mark.parametrize("url,body,message", [
    (f"{API}/actions/delete", {"ids": "abc"}, "“ids” must be a list of strings"),
    (f"{API}/actions/delete", {"ids": [1, 2]}, "“ids” must be a list of strings"),
    (f"{API}/actions/delete", {"ids": None}, "“ids” must be a list of strings"),
    (f"{API}/actions/delete", {"filter": []}, "“filter” must be a JSON object"),
    (f"{API}/actions/delete", {"filter": {"state": ["Failed"]}}, "filter values must be strings"),
    (f"{API}/actions/delete", {"filter": {"colour": "red"}}, "unknown filter field 'colour'"),
    (f"{API}/actions/delete", {"filter": {"state": "Failed"}, "all": "yes"}, "“all” must be true or false"),
    (f"{API}/actions/delete", {"filter": {"cursor": "x"}}, "unknown filter field 'cursor'"),
    (f"{API}/queues/pause", {"queue": 5}, "“queue” must be a string"),
    (f"{API}/jobs", {"task": 5}, "“task” must be a string"),
    (f"{API}/jobs", {"task": "demo.noop", "queue": ["a"]}, "“queue” must be a string"),
    (f"{API}/jobs", {"task": "demo.sleep", "args": 5}, "Arguments must be a JSON list"),
    (f"{API}/jobs", {"task": "demo.sleep", "args": [1], "kwargs": [1]},
     "Keyword arguments must be a JSON object"),
    (f"{API}/jobs", {"task": "demo.sleep", "args": [1], "delay": "soon"}, "Delay must be a number"),
    (f"{API}/recurring/actions/disable", {"ids": "nightly"}, "“ids” must be a list of strings"),
])
def test_fields_of_the_wrong_type_are_400(app, bearer, jobs, nightly, url, body, message):
    before = snapshot(app)
    assert_json_error(bearer("full", "post", url, json=body), 400, message)
    assert snapshot(app) == before


def test_unknown_routes_and_methods_are_json(bearer, people, jobs):
    assert_json_error(bearer("full", "get", f"{API}/nope"), 404, "not found")
    assert_json_error(bearer("full", "post", f"{API}/actions/explode", json={"ids": [jobs["failed"]]}), 404,
                      "no action 'explode'")
    assert_json_error(bearer("full", "post", f"{API}/jobs/{jobs['failed']}/explode"), 404, "no action")
    assert_json_error(bearer("full", "post", f"{API}/recurring/nightly/explode"), 404, "no action")
    assert_json_error(bearer("full", "post", f"{API}/queues/explode", json={"queue": "a"}), 404)
    assert_json_error(bearer("full", "get", f"{API}/actions/delete"), 405, "method GET not allowed")
    assert_json_error(bearer("full", "delete", f"{API}/jobs/{jobs['failed']}"), 405)
    assert_json_error(bearer("full", "put", f"{API}/stats"), 405)
    # a session caller (a browser asking for HTML) still gets JSON under the API
    assert_json_error(people["full"].get(f"{API}/nope", headers={"Accept": "text/html"}), 404)


def test_bulk_on_everything_needs_a_filter_or_all_true(app, bearer, jobs):
    before = snapshot(app)
    for body in ({"filter": {}}, {"filter": {"q": ""}}, {"filter": {}, "all": False}):
        assert_json_error(bearer("full", "post", f"{API}/actions/delete", json=body), 400, '"all": true')
    assert snapshot(app) == before  # nothing started, nothing deleted
    started = bearer("full", "post", f"{API}/actions/retry", json={"filter": {}, "all": True})
    assert started.status_code == 202
    answer = started.get_json()
    assert answer["estimate"] == 2 and answer["estimate_capped"] is False  # Retry touches the two failed jobs
    assert "on 2 jobs" in answer["message"]
    narrowed = bearer("full", "post", f"{API}/actions/delete", json={"filter": {"state": "Scheduled"}})
    assert narrowed.status_code == 202 and narrowed.get_json()["estimate"] == 1
    assert job_state(app, narrowed.get_json()["bulk_job_id"]) == lifecycle.ENQUEUED


def test_the_count_a_bulk_action_answers_is_what_it_applies_to(app, bearer, jobs):
    for _ in range(3):
        failed_job(app, task="demo.fail")
    retry = bearer("full", "post", f"{API}/actions/retry", json={"filter": {"task": "demo.fail"}})
    assert retry.get_json()["estimate"] == 4  # the fixture's second failure is demo.fail too
    nothing = bearer("full", "post", f"{API}/actions/trigger", json={"filter": {"task": "demo.fail"}})
    assert_json_error(nothing, 400, "No job matching this filter is in a state “Run now” applies to")
    cancel = bearer("full", "post", f"{API}/actions/cancel", json={"filter": {"task": "demo.fail"}})
    assert_json_error(cancel, 400, "applies to selected jobs only")


def test_too_large_numbers_and_bad_cursors_are_400(bearer, people, jobs):
    for query in ("cursor=99999999999999999999", "cursor=-1", "limit=0", "limit=100000000000000000000",
                  "limit=x"):
        assert_json_error(bearer("full", "get", f"{API}/audit?{query}"), 400)
    for cursor in ("x" * 600, "WyJhIiwgImIiXQ", "WzEsMl0"):
        assert_json_error(bearer("full", "get", f"{API}/jobs?cursor={cursor}"), 400, "invalid cursor")
        assert people["full"].get(f"/hangfire/jobs/all?cursor={cursor}").status_code == 400
    assert_json_error(bearer("full", "get", f"{API}/jobs?limit=99999999999999999999"), 400, "Page size")
    assert people["full"].get("/hangfire/audit?cursor=99999999999999999999").status_code == 400
