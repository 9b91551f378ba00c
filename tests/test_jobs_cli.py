"""The ``flask jobs`` CLI: enqueue, list, show, retry, delete, stats, and bad input."""
from __future__ import annotations

import json

import pytest


def cli_enqueue(runner, count: int = 3) -> list[str]:
    """``jobs enqueue demo.sleep --args [1] --count N``; the ids it prints."""
    result = runner.invoke(args=["jobs", "enqueue", "demo.sleep", "--args", "[1]", "--count", str(count)])
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_cli_enqueue_prints_one_id_per_job_and_list_shows_them(runner):
    ids = cli_enqueue(runner)
    assert len(ids) == 3
    listed = json.loads(runner.invoke(args=["jobs", "list", "--state", "enqueued", "--json"]).output)
    assert {row["id"] for row in listed} == set(ids)
    assert {"id", "task", "state", "attempt", "created_at", "reason"} <= set(listed[0])


def test_cli_show_has_arguments_and_history(runner):
    [job_id] = cli_enqueue(runner, 1)
    shown = json.loads(runner.invoke(args=["jobs", "show", job_id, "--json"]).output)
    assert shown["args"] == [1] and shown["history"][0]["state"] == "Enqueued"


def test_cli_retry_requeues_a_deleted_job_once(runner):
    [job_id] = cli_enqueue(runner, 1)
    assert runner.invoke(args=["jobs", "delete", job_id]).exit_code == 0
    assert runner.invoke(args=["jobs", "retry", job_id]).exit_code == 0
    again = runner.invoke(args=["jobs", "retry", job_id])
    assert again.exit_code == 1 and "can't be requeued" in again.output


def test_cli_stats_count_by_state(runner):
    ids = cli_enqueue(runner)
    assert runner.invoke(args=["jobs", "delete", ids[0]]).exit_code == 0
    stats = json.loads(runner.invoke(args=["jobs", "stats", "--json"]).output)
    assert stats["Enqueued"] == 2 and stats["Deleted"] == 1


def test_cli_show_of_a_missing_job_fails_naming_it(runner):
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
