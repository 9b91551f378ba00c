"""The header search: a full id, a #short id (with or without #) or a unique prefix goes to the job;
a task name or prefix lists that task's jobs; other text searches arguments and errors; suggestions."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers.ledger import enqueue, failed_job

SEARCH = "/hangfire/search"


def destination(client, text: str) -> str:
    """Where the header search for ``text`` leads (the redirect's target)."""
    response = client.get(SEARCH, query_string={"q": text})
    assert response.status_code == 302, response.status_code
    return response.headers["Location"]


def listed_ids(client, url: str) -> list[str]:
    """Job ids of the rows on a list page, in order."""
    return re.findall(r'<tr data-job-id="([0-9a-f]+)"', client.get(url).get_data(True))


@pytest.fixture
def found(app):
    """Jobs to find: two of demo.sleep, one of demo.fail whose error says "disk full"."""
    return {"sleep": enqueue(app, args=(0.5,)), "other": enqueue(app, args=(0.7,)),
            "failed": failed_job(app, task="demo.fail", args=("payload-x",), message="disk full")}


@pytest.mark.parametrize("form", ["{id}", "{id_upper}", "#{short}", "{short}", " # {short} ", "{prefix}"])
def test_an_id_goes_straight_to_the_job(people, found, form):
    job_id = found["failed"]
    text = form.format(id=job_id, id_upper=job_id.upper(), short=job_id[-8:], prefix=job_id[:20])
    assert destination(people["full"], text) == f"/hangfire/job/{job_id}"


def test_a_prefix_shared_by_several_jobs_lists_them(app, people, found):
    shared = found["sleep"][:6]  # ids start with their creation time (ms): jobs made together share it
    matching = [job_id for job_id in found.values() if job_id.startswith(shared)]
    assert len(matching) > 1
    url = destination(people["full"], "#" + shared)
    assert urlsplit(url).path == "/hangfire/jobs/all" and parse_qs(urlsplit(url).query) == {"id": [shared]}
    assert set(listed_ids(people["full"], url)) == set(matching)
    assert "id starts: " + shared in people["full"].get(url).get_data(True)


def test_a_task_name_or_prefix_lists_its_jobs(people, found):
    client = people["full"]
    url = destination(client, "demo.sleep")
    assert url == "/hangfire/jobs/all?task=demo.sleep"
    assert set(listed_ids(client, url)) == {found["sleep"], found["other"]}
    prefix = destination(client, "demo.")
    assert urlsplit(prefix).path == "/hangfire/jobs/all"
    assert parse_qs(urlsplit(prefix).query) == {"task": ["demo.*"]}
    assert set(listed_ids(client, prefix)) == set(found.values())
    assert destination(client, "demo.fa") == "/hangfire/jobs/all?task=demo.fail"  # one task starts so


def test_other_text_searches_arguments_and_errors(people, found):
    client = people["full"]
    assert destination(client, "disk full") == "/hangfire/jobs/all?q=disk+full"
    assert listed_ids(client, destination(client, "disk full")) == [found["failed"]]
    assert listed_ids(client, destination(client, "payload-x")) == [found["failed"]]
    # hex words shorter than a short id, without "#", are text, not ids
    assert destination(client, "cafe") == "/hangfire/jobs/all?q=cafe"
    assert destination(client, "") == "/hangfire/jobs/all"
    missing = destination(client, "#" + "f" * 32)
    assert listed_ids(client, missing) == []
    assert "No job matches this filter." in client.get(missing).get_data(True)


def test_suggestions_while_typing(people, found):
    client = people["full"]
    job_id = found["failed"]
    answer = client.get("/hangfire/api/search", query_string={"q": job_id[-8:]}).get_json()
    assert answer["go"] == f"/hangfire/job/{job_id}"
    first = answer["suggestions"][0]
    assert first["url"] == f"/hangfire/job/{job_id}"
    assert first["label"].startswith(f"#{job_id[-8:]} demo.fail")
    tasks = client.get("/hangfire/api/search", query_string={"q": "sle"}).get_json()["suggestions"]
    sleep = {"label": "demo.sleep", "detail": "jobs of this task",
             "url": "/hangfire/jobs/all?task=demo.sleep"}
    assert sleep in tasks
    assert tasks[-1]["url"] == "/hangfire/jobs/all?q=sle"
    assert "Search arguments and errors" in tasks[-1]["label"]
    empty = client.get("/hangfire/api/search?q=").get_json()
    assert empty == {"go": "/hangfire/jobs/all", "suggestions": []}


def test_search_is_guarded_like_the_dashboard(people, found):
    assert people["anonymous"].get(SEARCH + "?q=x").status_code == 302
    assert people["no_permission"].get(SEARCH + "?q=x").status_code == 403
    assert people["read_only"].get(SEARCH + "?q=demo.sleep").status_code == 302  # reading is allowed
    refused = people["no_permission"].get("/hangfire/api/search?q=x")
    assert refused.status_code == 403 and refused.is_json


def test_bad_id_filter_is_reported(people, found):
    html = people["full"].get("/hangfire/jobs/all?id=not-hex").get_data(True)
    assert "is not the start of a job id" in html
