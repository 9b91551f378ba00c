"""In Chromium: watch a running job's progress, cancel it, and pause a recurring job, without reloading.

Set ``BROWSER_SCREENSHOT_DIR`` to keep screenshots of the Recurring page and of a running
job's page, in light and dark mode.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from tasks import lifecycle, recurring
from tasks.actions import JOB_ACTIONS
from tasks.recurring import RecurringJob
from tests.browser import screenshot, sign_in, watched_page
from tests.helpers.ledger import enqueue, job_state
from tests.workers import wait_for

pytestmark = pytest.mark.browser


def start_progressing_job(app, start_worker, steps: int = 100, delay: float = 0.1) -> str:
    """A ``tests.progressing`` job running on a real worker, past its first reported progress."""
    start_worker()
    job_id = enqueue(app, task="tests.progressing", args=(steps, delay))
    wait_for(lambda: job_state(app, job_id) == lifecycle.PROCESSING, timeout=20, message="the job to start")
    return job_id


def progress_value(page) -> int:
    """The progress bar's current value on the page."""
    return int(page.get_by_role("progressbar").get_attribute("aria-valuenow"))


def mark_document(page) -> None:
    """Tag the current document (the tag is gone if the page reloads)."""
    page.evaluate("window.__sameDocument = true")


def same_document(page) -> bool:
    """True when the page hasn't reloaded since ``mark_document``."""
    return page.evaluate("window.__sameDocument") is True


def test_operator_watches_progress_and_cancels_a_running_job(app, operator, new_page, start_worker):
    job_id = start_progressing_job(app, start_worker)
    page = new_page()
    sign_in(page, operator)
    page.goto(f"/hangfire/job/{job_id}")
    expect(page.get_by_test_id("job-state").first).to_have_text("Processing")
    mark_document(page)
    first = progress_value(page)
    page.wait_for_function(f"""() => Number(document.querySelector('[role=progressbar]')
                                      .getAttribute('aria-valuenow')) > {first}""", timeout=10_000)
    expect(page.get_by_test_id("job-log")).to_contain_text(re.compile(r"step \d+ of 100 <done>"))
    assert same_document(page) and progress_value(page) > first

    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Cancelled 1 job.")).to_be_visible()
    assert questions == [JOB_ACTIONS["cancel"].confirm("this job")]
    mark_document(page)  # the form posted and came back; from here on nothing reloads
    expect(page.get_by_test_id("job-state").first).to_have_text("Deleted", timeout=10_000)
    expect(page.get_by_test_id("job-reason")).to_have_text(f"Cancelled by {operator}")
    expect(page.get_by_test_id("job-progress")).to_have_count(0)  # the bar is cleared
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert same_document(page) and job_state(app, job_id) == lifecycle.DELETED


def test_operator_disables_a_recurring_job(app, operator, nightly, new_page):
    page = new_page()
    sign_in(page, operator)
    page.goto("/hangfire")
    page.get_by_role("link", name="Recurring", exact=True).click()
    row = page.locator(f'tr[data-recurring-id="{nightly}"]')
    expect(row.get_by_test_id("recurring-status")).to_have_text("Enabled")
    expect(row.get_by_test_id("cron-description")).to_have_text("At 03:00 AM")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_text(f"Disabled recurring job “{nightly}”.")).to_be_visible()
    expect(row.get_by_test_id("recurring-status")).to_have_text("Disabled")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    with app.app_context():
        assert db.session.get(RecurringJob, nightly).enabled is False


def test_recurring_badge_follows_a_change_made_elsewhere(app, operator, nightly, new_page):
    page = new_page()
    sign_in(page, operator)
    page.goto("/hangfire/recurring")
    mark_document(page)
    row = page.locator(f'tr[data-recurring-id="{nightly}"]')
    expect(row.get_by_test_id("recurring-status")).to_have_text("Enabled")
    with app.app_context():
        recurring.set_enabled(nightly, False)
    expect(row.get_by_test_id("recurring-status")).to_have_text("Disabled", timeout=5_000)
    assert same_document(page)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(app, browser, live_server, operator, nightly, start_worker, scheme):
    with app.app_context():
        recurring.trigger(nightly, by=operator)
        recurring.set_enabled("reports-cleanup", False)
    with watched_page(browser, live_server, scheme, operator) as (page, errors):
        page.goto("/hangfire/recurring")
        expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "ok", timeout=5_000)
        screenshot(page, f"dashboard-recurring-{scheme}")
        job_id = start_progressing_job(app, start_worker, steps=200)  # the worker's sync drops tests.nightly
        page.goto(f"/hangfire/job/{job_id}")
        expect(page.get_by_test_id("job-log")).to_be_visible(timeout=10_000)
        screenshot(page, f"dashboard-running-job-{scheme}")
    assert errors == []
