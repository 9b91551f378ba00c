"""Recurring jobs, progress and logs, cancellation, timeouts, unique jobs, mutexes, continuations."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from tasks import commands, enqueue, lifecycle, queries, recurring
from tasks.demo import noop, sleep
from tasks.ledger import Job
from tasks.progress import job_logs
from tasks.recurring import RecurringJob, due_runs, next_run, occurrences
from tests.helpers.ledger import job_state, load_job
from tests.jobs import (always_fails, blocking_timeout, cooperative_timeout, exclusive, progressing,
                        recurring_tick, unique_report)
from tests.workers import wait_for


def history_states(app, job_id):
    with app.app_context():
        return [h.state for h in queries.history(job_id)]


# -- recurring: schedule arithmetic with an injected clock ----------------------------
def utc(*parts) -> datetime:
    return datetime(*parts)


def test_daily_run_follows_wall_clock_across_both_dst_changes():
    runs = occurrences("0 3 * * *", "Europe/London", utc(2026, 3, 27, 12))
    assert [next(runs) for _ in range(3)] == [utc(2026, 3, 28, 3), utc(2026, 3, 29, 2), utc(2026, 3, 30, 2)]
    runs = occurrences("0 3 * * *", "Europe/London", utc(2026, 10, 24, 12))
    assert [next(runs) for _ in range(2)] == [utc(2026, 10, 25, 3), utc(2026, 10, 26, 3)]


def test_times_in_the_spring_gap_run_once_after_it_and_fall_back_times_run_once():
    # 01:30 doesn't exist in London on 29 March 2026: it runs when clocks reach 02:00 BST (01:00 UTC)
    assert next_run("30 1 * * *", "Europe/London", utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)
    # 01:30 happens twice on 25 October 2026: one run, at the first (00:30 UTC)
    runs = occurrences("30 1 * * *", "Europe/London", utc(2026, 10, 24, 12))
    assert [next(runs) for _ in range(2)] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_six_field_cron_has_seconds_first_and_bad_input_is_refused():
    assert next_run("*/15 * * * * *", "UTC", utc(2026, 1, 1, 0, 0, 1)) == utc(2026, 1, 1, 0, 0, 15)
    with pytest.raises(ValueError, match="invalid cron"):
        recurring.check_schedule("61 * * * *", "UTC")
    with pytest.raises(ValueError, match="unknown time zone"):
        recurring.check_schedule("0 3 * * *", "Mars/Olympus")
    with pytest.raises(ValueError, match="misfire"):
        recurring.check_schedule("0 3 * * *", "UTC", "sometimes")


@pytest.mark.parametrize("policy, runs", [("relaxed", 1), ("strict", 5), ("skip", 0)])
def test_misfire_policies(policy, runs):
    row = RecurringJob(id="x", task="demo.noop", cron="0 * * * *", timezone="UTC", misfire=policy,
                       next_run_at=utc(2026, 5, 1, 8))
    due, following = due_runs(row, utc(2026, 5, 1, 12, 30))
    assert len(due) == runs and following == utc(2026, 5, 1, 13)
    on_time = RecurringJob(id="y", task="demo.noop", cron="0 * * * *", timezone="UTC", misfire="skip",
                           next_run_at=utc(2026, 5, 1, 8))
    assert due_runs(on_time, utc(2026, 5, 1, 8, 0, 0, 400000))[0] == [utc(2026, 5, 1, 8)]


@pytest.fixture
def tick_schedule():
    recurring.recurring("tests.every-second", cron="* * * * * *")(recurring_tick)
    yield
    recurring.DEFINITIONS.pop("tests.every-second", None)


def test_recurring_sync_strict_catch_up_disable_and_trigger(app, tick_schedule):
    with app.app_context():
        now = datetime(2026, 5, 1, 12)
        assert recurring.sync(now)["added"] >= 1
        row = db.session.get(RecurringJob, "tests.every-second")
        row.misfire, row.next_run_at = "strict", now - timedelta(seconds=4)
        db.session.commit()
        assert len(recurring.run_due(now)) == 5  # one per missed second
        assert recurring.run_due(now) == []  # nothing more due
        assert recurring.set_enabled("tests.every-second", False, now)
        assert recurring.run_due(now + timedelta(minutes=5)) == []
        job_id = recurring.trigger("tests.every-second", by="ops")
        assert load_job(app, job_id).recurring_id == "tests.every-second"
        recurring.DEFINITIONS.pop("tests.every-second")
        assert recurring.sync(now) == {"added": 0, "changed": 0, "removed": 1, "errors": {}}
        assert recurring.trigger("tests.every-second") is None


def test_recurring_job_fires_once_per_occurrence_across_two_workers(app, start_worker, tick_schedule,
                                                                    fault_report):
    start_worker(TESTS_RECURRING="1")
    start_worker(TESTS_RECURRING="1")

    def runs():
        with app.app_context():
            return db.session.scalar(select(db.func.count()).select_from(Job)
                                     .where(Job.recurring_id == "tests.every-second"))

    wait_for(lambda: runs() >= 4, timeout=20, message="four runs")
    with app.app_context():
        jobs = list(db.session.scalars(select(Job).where(Job.recurring_id == "tests.every-second")))
        row = db.session.get(RecurringJob, "tests.every-second")
    assert len(jobs) >= 3
    occurrences_run = [j.scheduled_for for j in jobs]
    assert len(set(occurrences_run)) == len(jobs), "an occurrence ran twice"
    assert row.last_run_at is not None and row.error is None
    late = sorted(j.created_at - j.scheduled_for for j in jobs)
    assert all(lag >= timedelta(0) for lag in late), "a run was enqueued before its time"
    fault_report(f"recurring every second on two workers: {len(jobs)} runs, none twice, median lateness "
                 f"{late[len(late) // 2].total_seconds() * 1000:.0f} ms")


# -- progress, logs, cancellation, timeouts ------------------------------------------
def test_progress_and_log_lines_are_recorded(app, start_worker):
    with app.app_context():
        job_id = progressing.enqueue(4, 0.3)
    start_worker()
    wait_for(lambda: (load_job(app, job_id).progress or 0) > 0, message="progress reported")
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED)
    job = load_job(app, job_id)
    assert job.progress == 100 and job.progress_message == "step 4"
    with app.app_context():
        lines = [line.message for line in job_logs(job_id)]
    assert lines == [f"step {n} of 4 <done>" for n in range(1, 5)]


def test_cancel_stops_a_running_job_which_ends_deleted(app, start_worker, fault_report):
    with app.app_context():
        job_id = progressing.enqueue(300, 0.1)
    start_worker()
    wait_for(lambda: job_state(app, job_id) == lifecycle.PROCESSING)
    with app.app_context():
        assert commands.cancel([job_id], by="ops") == [job_id]
    cancelled_at = time.monotonic()
    wait_for(lambda: job_state(app, job_id) == lifecycle.DELETED, timeout=60)
    fault_report(f"cancel of a running job: Deleted {time.monotonic() - cancelled_at:.1f} s "
                 "after the request")
    job = load_job(app, job_id)
    assert job.state_reason == "Cancelled: Cancelled by ops"
    assert job.progress < 100  # stopped at a checkpoint, not run to the end


def test_cancel_of_a_waiting_job_deletes_it(app):
    with app.app_context():
        job_id = noop.schedule(delay=60)
        assert commands.cancel([job_id], by="ops") == [job_id]
    assert job_state(app, job_id) == lifecycle.DELETED
    assert app.extensions["jobs"].transport.holds([job_id]) == set()


@pytest.mark.parametrize("processes, task", [(False, cooperative_timeout), (True, blocking_timeout)],
                         ids=["thread-cooperative", "process-interrupted"])
def test_timeout_fails_the_attempt_and_follows_the_retry_policy(app, start_worker, processes, task):
    with app.app_context():
        job_id = task.enqueue(30)
    start_worker(processes=processes, concurrency=1)
    wait_for(lambda: job_state(app, job_id) == lifecycle.FAILED, timeout=30)
    job = load_job(app, job_id)
    assert job.attempt == 2 and job.exception_type == "tasks.progress.JobTimeout"
    assert job.exception_message == "timed out after 1s"
    assert [s for s in history_states(app, job_id) if s != "Enqueued"] == ["Processing", "Scheduled",
                                                                           "Processing", "Failed"]


# -- unique jobs, mutexes, continuations ---------------------------------------------
def test_duplicate_enqueue_returns_the_pending_job(app, start_worker):
    with app.app_context():
        first = unique_report.enqueue(7)
        assert unique_report.enqueue(7) == first
        other = unique_report.enqueue(8)
        assert other != first
    start_worker()
    wait_for(lambda: job_state(app, first) == lifecycle.SUCCEEDED)
    with app.app_context():
        assert unique_report.enqueue(7) != first  # no longer pending: a new run


def test_mutexed_jobs_never_overlap(app, start_worker):
    with app.app_context():
        ids = exclusive.enqueue_many([("k", 0.4)] * 4)
        free = exclusive.enqueue("other", 0.4)
    start_worker(concurrency=4)
    for job_id in ids + [free]:
        wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=30)
    spans = sorted((load_job(app, i).started_at, load_job(app, i).finished_at) for i in ids)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans
    with app.app_context():
        waited = [h for i in ids for h in queries.history(i) if h.reason.startswith("Waiting for mutex")]
    assert waited and all(h.state == "Scheduled" for h in waited)


def test_continuation_runs_only_after_its_parent(app, start_worker):
    with app.app_context():
        parent = sleep.enqueue(1.0)
        child = noop.enqueue_after(parent)
        failing = always_fails.enqueue("x")
        skipped = noop.enqueue_after(failing)
        always = enqueue("demo.noop", after=failing, continue_on="finished")
        assert job_state(app, child) == lifecycle.AWAITING
        with pytest.raises(ValueError, match="no job nope to continue after"):
            noop.enqueue_after("nope")
    start_worker(JOBS_BACKOFF_SCALE="0.01")
    wait_for(lambda: job_state(app, child) == lifecycle.SUCCEEDED)
    assert load_job(app, child).started_at >= load_job(app, parent).finished_at
    wait_for(lambda: job_state(app, skipped) == lifecycle.DELETED, timeout=30)
    wait_for(lambda: job_state(app, always) == lifecycle.SUCCEEDED)
    assert "continuation skipped" in load_job(app, skipped).state_reason
    with app.app_context():
        late = noop.enqueue_after(parent)  # parent already finished: runs straight away
    wait_for(lambda: job_state(app, late) == lifecycle.SUCCEEDED)


def test_recurring_cli(app, runner, tick_schedule):
    assert "added" in runner.invoke(args=["jobs", "recurring", "sync"]).output
    listed = {r["id"]: r
              for r in json.loads(runner.invoke(args=["jobs", "recurring", "list", "--json"]).output)}
    assert listed["tests.every-second"]["description"] == "Every second"
    assert listed["reports-cleanup"]["cron"] == "17 * * * *"
    assert runner.invoke(args=["jobs", "recurring", "enable", "tests.every-second", "--off"]).exit_code == 0
    job_id = runner.invoke(args=["jobs", "recurring", "trigger", "tests.every-second"]).output.strip()
    assert job_state(app, job_id) == lifecycle.ENQUEUED
    assert runner.invoke(args=["jobs", "recurring", "trigger", "nope"]).exit_code == 1


def test_key_templates_that_cant_be_filled_are_refused_at_enqueue(app):
    with app.app_context():
        with pytest.raises(ValueError,
                           match=r"mutex key 'exclusive:\{0\}' can't be built from the arguments"):
            enqueue("tests.exclusive", kwargs={"key": "k", "seconds": 0})


def test_recurring_overview_and_run_history(app, tick_schedule):
    with app.app_context():
        recurring.sync()
        job_id = recurring.trigger("tests.every-second", by="ops")
        overview = {r["id"]: r for r in queries.recurring_overview()}
        tick = overview["tests.every-second"]
        assert ((tick["last_job_id"], tick["last_state"], tick["description"])
                == (job_id, "Enqueued", "Every second"))
        runs = queries.list_jobs(queries.JobFilter(recurring_id="tests.every-second")).jobs
        assert [j.id for j in runs] == [job_id]
