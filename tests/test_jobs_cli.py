"""The ``flask jobs`` CLI: enqueue, list, show, retry, delete, stats, and bad input."""
from __future__ import annotations

import json

import pytest


def test_cli_enqueue_list_show_retry_delete_stats(app, runner):
    result = runner.invoke(args=["jobs", "enqueue", "demo.sleep", "--args", "[1]", "--count", "3"])
    assert result.exit_code == 0, result.output
    ids = result.output.split()
    assert len(ids) == 3
    listed = json.loads(runner.invoke(args=["jobs", "list", "--state", "enqueued", "--json"]).output)
    assert {row["id"] for row in listed} == set(ids)
    assert {"id", "task", "state", "attempt", "created_at", "reason"} <= set(listed[0])
    shown = json.loads(runner.invoke(args=["jobs", "show", ids[0], "--json"]).output)
    assert shown["args"] == [1] and shown["history"][0]["state"] == "Enqueued"
    assert runner.invoke(args=["jobs", "delete", ids[0]]).exit_code == 0
    assert runner.invoke(args=["jobs", "retry", ids[0]]).exit_code == 0
    again = runner.invoke(args=["jobs", "retry", ids[0]])
    assert again.exit_code == 1 and "can't be requeued" in again.output
    stats = json.loads(runner.invoke(args=["jobs", "stats", "--json"]).output)
    assert stats["Enqueued"] == 3 and stats["Deleted"] == 0
    missing = runner.invoke(args=["jobs", "show", "doesnotexist"])
    assert missing.exit_code == 1 and "no job doesnotexist" in missing.output


@pytest.mark.parametrize("arguments, message", [
    (["--args", "{oops"], "not valid JSON"),
    (["--args", '{"a": 1}'], "must be a JSON list"),
    (["--kwargs", "[1]"], "must be a JSON dict"),
])
def test_cli_enqueue_rejects_bad_json(runner, arguments, message):
    result = runner.invoke(args=["jobs", "enqueue", "demo.noop", *arguments])
    assert result.exit_code == 2 and message in result.output


def test_cli_enqueue_unknown_task_and_bad_arguments(runner):
    unknown = runner.invoke(args=["jobs", "enqueue", "nope"])
    assert unknown.exit_code == 1 and "no job registered as 'nope'" in unknown.output
    missing = runner.invoke(args=["jobs", "enqueue", "demo.sleep"])
    assert missing.exit_code == 1 and "'seconds'" in missing.output
