"""In Chromium: the header search (a short id, a prefix, a task name; suggestions with the keyboard),
the enqueue form's per-field messages, several recurring jobs at once with a confirmation that names
them, a continuation and its parent linking each other, and the audit log's sentence."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser import loaded, sign_in
from tests.helpers.ledger import enqueue, failed_job, job_state

pytestmark = pytest.mark.browser


@pytest.fixture
def operator_page(new_page, operator):
    """A page signed in as the operator, on the dashboard."""
    page = new_page()
    sign_in(page, operator)
    page.goto("/hangfire")
    return page


def search_box(page):
    """The header search box."""
    return page.get_by_role("combobox", name="Search jobs")


def test_search_goes_to_a_job_by_short_id_or_prefix_and_lists_a_task(app, operator_page):
    page = operator_page
    wanted = failed_job(app, task="demo.fail", args=("needle",), message="boom")
    other = enqueue(app, task="demo.sleep", args=(0.3,))
    for text in (f"#{wanted[-8:]}", wanted[-8:], wanted[:24]):
        search_box(page).fill(text)
        search_box(page).press("Enter")
        expect(page).to_have_url(f"/hangfire/job/{wanted}")
        expect(page.get_by_test_id("job-title")).to_have_text("demo.fail")
    search_box(page).fill("demo.sleep")
    search_box(page).press("Enter")
    expect(page).to_have_url("/hangfire/jobs/all?task=demo.sleep")
    expect(page.locator(f'tr[data-job-id="{other}"]')).to_have_count(1)
    expect(page.locator(f'tr[data-job-id="{wanted}"]')).to_have_count(0)


def test_suggestions_while_typing_with_the_keyboard(app, operator_page):
    page = operator_page
    wanted = failed_job(app, task="demo.fail", args=("needle",), message="boom")
    search_box(page).press_sequentially(wanted[-8:], delay=20)
    options = page.get_by_role("listbox", name="Suggestions").get_by_role("option")
    expect(options.first).to_contain_text(f"#{wanted[-8:]} demo.fail")
    expect(search_box(page)).to_have_attribute("aria-expanded", "true")
    search_box(page).press("ArrowDown")
    expect(options.first).to_have_attribute("aria-selected", "true")
    search_box(page).press("Enter")
    expect(page).to_have_url(f"/hangfire/job/{wanted}")
    loaded(page)  # the job page's own script offers the suggestions
    search_box(page).press_sequentially("slee", delay=20)
    page.get_by_role("option", name=re.compile("^demo.sleep")).click()
    expect(page).to_have_url("/hangfire/jobs/all?task=demo.sleep")


def test_the_enqueue_form_names_each_bad_field(app, operator_page):
    page = operator_page
    page.get_by_role("link", name="Enqueue a job").click()
    expect(page).to_have_url("/hangfire/enqueue")
    loaded(page)  # its script reloads the page when another job is picked
    page.get_by_label("Job", exact=True).select_option("tests.typed")  # the page reloads with its fields
    expect(page.get_by_test_id("task-help")).to_contain_text("Echo its arguments, typed: count whole")
    page.get_by_label(re.compile(r"^\s*count\b")).fill("2.5")
    page.get_by_label(re.compile(r"^\s*ratio\b")).fill('"ten"')
    page.get_by_label(re.compile(r"^\s*name\b")).fill("plain text")
    page.get_by_label(re.compile(r"^\s*flag\b")).fill("true")
    page.get_by_label(re.compile(r"^\s*items\b")).fill("[1, 2]")
    page.get_by_label(re.compile(r"^\s*options\b")).fill("{}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Enqueue").click()
    expect(page.get_by_test_id("error-arg.count")).to_have_text("expected a whole number (int), got 2.5")
    expect(page.get_by_test_id("error-arg.ratio")).to_have_text("expected a number (float), got “ten”")
    expect(page.get_by_test_id("error-arg.name")).to_have_count(0)
    expect(page.get_by_label(re.compile(r"^\s*count\b"))).to_have_value("2.5")  # kept as typed
    page.get_by_label(re.compile(r"^\s*count\b")).fill("3")
    page.get_by_label(re.compile(r"^\s*ratio\b")).fill("2.5")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Enqueue").click()
    expect(page).to_have_url(re.compile(r"/hangfire/job/[0-9a-f]{32}$"))
    expect(page.get_by_test_id("job-kwargs")).to_contain_text('"count": 3')


def test_several_recurring_jobs_at_once_with_a_confirmation_naming_them(app, operator_page, nightly):
    page = operator_page
    page.get_by_role("link", name="Recurring", exact=True).click()
    rows = page.locator("tr[data-recurring-id]")
    # count() doesn't wait: wait for the Recurring page's rows (nightly and the app's own cleanup) first
    expect(rows).to_have_count(2)
    for index in range(2):
        rows.nth(index).get_by_role("checkbox").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Disable selected").click()
    expect(page.get_by_text(re.compile(r"Disabled \d+ recurring jobs?\."))).to_be_visible()
    assert f"“{nightly}”" in questions[0] and "don't run until enabled" in questions[0]
    status = page.locator(f'tr[data-recurring-id="{nightly}"]').get_by_test_id("recurring-status")
    expect(status).to_have_text("Disabled")


def test_a_continuation_and_its_parent_link_each_other(app, operator_page):
    page = operator_page
    parent = enqueue(app, task="demo.noop", args=())
    child = enqueue(app, task="demo.sleep", args=(0.1,), after=parent)
    page.goto(f"/hangfire/job/{child}")
    expect(page.get_by_test_id("job-parent")).to_contain_text("runs if it succeeds")
    page.get_by_test_id("job-parent").get_by_role("link").click()
    expect(page).to_have_url(f"/hangfire/job/{parent}")
    page.get_by_test_id("job-continuations").get_by_role("link").click()
    expect(page).to_have_url(f"/hangfire/job/{child}")


def test_the_audit_log_says_what_the_button_did(app, operator, operator_page):
    page = operator_page
    job_id = failed_job(app)
    page.goto("/hangfire/jobs/failed")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'tr[data-job-id="{job_id}"]').get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Retried 1 job.")).to_be_visible()
    assert job_state(app, job_id) == "Enqueued"
    page.get_by_role("link", name="Audit log").click()
    row = page.get_by_test_id("audit-table").locator("tbody tr").first
    expect(row).to_contain_text("Retry")
    expect(row.get_by_test_id("audit-sentence")).to_have_text(f"{operator} retried 1 job")
    row.get_by_role("link", name=f"#{job_id[-8:]}").click()
    expect(page).to_have_url(f"/hangfire/job/{job_id}")


def test_the_list_menu_counts_refresh_with_the_rows(app, operator_page):
    page = operator_page
    failed_job(app)
    page.goto("/hangfire/jobs/failed")
    menu = page.get_by_role("navigation", name="Job lists")
    expect(menu.locator('[data-state-count="enqueued"]')).to_have_text(re.compile(r"Enqueued\s*0"))
    page.evaluate("window.__sameDocument = true")
    newcomer = failed_job(app)
    enqueue(app, task="demo.noop", args=())
    expect(page.locator(f'tr[data-job-id="{newcomer}"]')).to_have_count(1)  # the rows refreshed…
    expect(menu.locator('[data-state-count="enqueued"]')).to_have_text(re.compile(r"Enqueued\s*1"))  # …menu
    expect(menu.locator('[data-state-count="failed"]')).to_have_text(re.compile(r"Failed\s*2"))
    expect(page.get_by_test_id("match-count")).to_have_text("2 jobs")
    assert page.evaluate("window.__sameDocument") is True
