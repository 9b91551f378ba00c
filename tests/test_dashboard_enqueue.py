"""The enqueue form: one field per parameter, each value checked against the job's annotations (int,
float, str, bool, lists, dicts, Optional) with a message per field; help as plain text; internal
jobs neither offered nor accepted (form and JSON API)."""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tasks import queries
from tasks.api import REGISTRY
from tests.helpers.ledger import snapshot
from tests.helpers.web import post_form

GOOD = {"arg.count": "3", "arg.ratio": "2.5", "arg.name": "ten", "arg.flag": "true", "arg.items": "[1, 2]",
        "arg.options": '{"a": "b"}'}


def post_fields(client, fields: dict, task: str = "tests.typed"):
    """Post the per-parameter enqueue form."""
    return post_form(client, "/hangfire/enqueue", {"task": task, "mode": "fields", **fields})


def test_the_form_shows_a_field_per_parameter_and_help_as_text(people):
    html = people["full"].get("/hangfire/enqueue?task=tests.typed").get_data(True)
    for name, kind in (("count", "int"), ("ratio", "float"), ("name", "str"), ("flag", "bool"),
                       ("items", "list[int]"), ("options", "dict[str, str]"), ("note", "str | None")):
        assert f'name="arg.{name}"' in html, name
        assert re.search(rf"<code>{name}</code>\s*<span[^>]*>{re.escape(kind)}</span>", html), kind
    help_text = re.search(r'data-testid="task-help">(.*?)</div>', html, re.S).group(1)
    assert "Echo its arguments, typed: count whole, ratio a number." in help_text
    assert "(see job and annotations)" in help_text and "``" not in help_text and ":func:" not in help_text
    assert "tests.typed(count: int, ratio: float, name: str, flag: bool, items: list[int]" in help_text
    assert "options: dict[str, str], note: str | None = None)" in help_text


def test_good_values_are_enqueued_with_their_types(app, people):
    response = post_fields(people["full"], GOOD)
    assert response.status_code == 302, response.get_data(True)[:2000]
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        job = queries.get_job(job_id)
        assert json.loads(job.kwargs) == {"count": 3, "ratio": 2.5, "name": "ten", "flag": True,
                                          "items": [1, 2], "options": {"a": "b"}}
        assert job.enqueued_by == "full"


@pytest.mark.parametrize("field,typed,message", [
    ("count", "2.5", "expected a whole number (int), got 2.5"),
    ("count", "true", "expected a whole number (int), got True"),
    ("ratio", '"ten"', "expected a number (float), got “ten”"),
    ("ratio", "ten", "write a value such as 2.5"),
    ("flag", "1", "expected true or false (bool), got 1"),
    ("items", '[1, "two"]', "expected a list (list[int]), got [1, 'two']"),
    ("items", '{"a": 1}', "expected a list (list[int])"),
    ("options", '{"a": 1}', "expected an object (dict[str, str])"),
    ("options", "[]", "expected an object (dict[str, str]), got []"),
    ("count", "", "required"),
])
def test_each_bad_field_gets_its_own_message(app, people, field, typed, message):
    before = snapshot(app)
    response = post_fields(people["full"], {**GOOD, f"arg.{field}": typed})
    assert response.status_code == 400
    html = response.get_data(True).replace("&#39;", "'").replace("&#34;", '"')
    shown = re.search(rf'data-testid="error-arg.{field}">(.*?)</div>', html, re.S)
    assert shown and message in shown.group(1), html[html.find("enqueue-error"):][:1500]
    assert len(re.findall(r'data-testid="error-arg\.', html)) == 1  # only the bad field is marked
    assert f'name="arg.{field}" value="{typed}"' in html  # what was typed is kept
    assert snapshot(app) == before


def test_optional_and_default_parameters(app, people):
    client = people["full"]
    blank_note = post_fields(client, {**GOOD, "arg.note": ""})
    with_note = post_fields(client, {**GOOD, "arg.note": "hello"})
    with app.app_context():
        assert "note" not in json.loads(queries.get_job(blank_note.headers["Location"][-32:]).kwargs)
        assert json.loads(queries.get_job(with_note.headers["Location"][-32:]).kwargs)["note"] == "hello"
    assert post_fields(client, {}, task="demo.noop").status_code == 302  # no parameters at all
    fail_default = post_fields(client, {"arg.message": ""}, task="demo.fail")
    assert fail_default.status_code == 302


def test_the_json_api_checks_types_too(app, bearer):
    bad = bearer("full", "post", "/hangfire/api/jobs", json={"task": "demo.sleep", "args": ["ten"]})
    assert bad.status_code == 400
    assert bad.get_json()["errors"] == {"arg.seconds": "expected a number (float), got “ten”"}
    assert "seconds: expected a number" in bad.get_json()["error"]
    good = bearer("full", "post", "/hangfire/api/jobs", json={"task": "demo.sleep", "args": [2]})
    assert good.status_code == 201  # an int is a fine float
    kwargs = {"count": 1, "ratio": 1.5, "name": "n", "flag": False, "items": [1], "options": {}, "note": 7}
    typed = bearer("full", "post", "/hangfire/api/jobs", json={"task": "tests.typed", "kwargs": kwargs})
    assert typed.status_code == 400 and typed.get_json()["errors"] == {
        "arg.note": "expected text (or null) (str | None), got 7"}


@pytest.fixture
def internal_noop(monkeypatch):
    """``demo.noop`` registered as internal (``JobDefinition.internal``, declared at registration)."""
    monkeypatch.setitem(REGISTRY, "demo.noop", dataclasses.replace(REGISTRY["demo.noop"], internal=True))
    return "demo.noop"


def test_internal_jobs_are_neither_offered_nor_accepted(app, people, bearer, internal_noop):
    html = people["full"].get("/hangfire/enqueue").get_data(True)
    assert '<option value="demo.sleep"' in html and f'<option value="{internal_noop}"' not in html
    assert "jobs.bulk_action" not in html  # the engine's own jobs aren't either
    before = snapshot(app)
    form = post_form(people["full"], "/hangfire/enqueue",
                     {"task": internal_noop, "args": "[]", "kwargs": "{}"})
    assert form.status_code == 400 and "can be enqueued from the dashboard" in form.get_data(True)
    api = bearer("full", "post", "/hangfire/api/jobs", json={"task": internal_noop})
    assert api.status_code == 400
    assert "can be enqueued from the dashboard" in api.get_json()["errors"]["task"]
    assert snapshot(app) == before
