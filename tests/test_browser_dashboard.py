"""In Chromium: find a failed job, retry it and watch it succeed live; read-only users; themes; screenshots.

Set ``BROWSER_SCREENSHOT_DIR`` to keep the screenshots (overview, failed list, job page
and queues, each in light and dark mode).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.permissions import HANGFIRE_READ_ONLY
from tasks import lifecycle
from tasks.actions import JOB_ACTIONS
from tests.browser import DEFAULT_TIMEOUT_MS, loaded, screenshot, sign_in, watched_page
from tests.helpers.ledger import SCRIPT, enqueue, fail, failed_job, job_state

pytestmark = pytest.mark.browser
NEEDLE = 0.271828  # demo.sleep's argument: what the operator searches for
ACTION_NAMES = re.compile("Retry|Requeue|Run now|Delete|Pause|Resume|Enqueue|selected|matching")


def row_of(page, job_id: str):
    """The list row of ``job_id``."""
    return page.locator(f'tr[data-job-id="{job_id}"]')


def test_operator_finds_failed_job_retries_it_and_watches_it_succeed(app, operator, new_page, start_worker):
    job_id = failed_job(app, task="demo.sleep", args=(NEEDLE,), message="disk full")
    decoy = failed_job(app, task="demo.sleep", args=(0.5,), message="disk full")
    start_worker()
    page = new_page()
    sign_in(page, operator)
    page.goto("/hangfire")
    expect(page.get_by_test_id("count-failed")).to_contain_text("2")
    page.get_by_role("combobox", name="Search jobs").fill(str(NEEDLE))
    page.get_by_role("combobox", name="Search jobs").press("Enter")
    expect(page).to_have_url(re.compile(r"/hangfire/jobs/all\?q=0\.271828$"))
    loaded(page)  # the list's script asks for the confirmation
    row = row_of(page, job_id)
    expect(row.get_by_test_id("job-state")).to_have_text("Failed")
    expect(row_of(page, decoy)).to_have_count(0)

    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Retried 1 job.")).to_be_visible()
    assert questions == [JOB_ACTIONS["retry"].confirm("this job")]
    loaded(page)  # the live refresh is the page's script
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    expect(row_of(page, job_id).get_by_test_id("job-state")).to_have_text("Succeeded", timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True
    assert job_state(app, job_id) == lifecycle.SUCCEEDED and job_state(app, decoy) == lifecycle.FAILED


def test_dismissed_confirmation_changes_nothing(app, operator, new_page):
    job_id = failed_job(app)
    page = new_page()
    sign_in(page, operator)
    posted = []
    page.on("request", lambda request: posted.append(request.url) if request.method == "POST" else None)
    page.goto("/hangfire/jobs/failed")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row_of(page, job_id).get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete selected").click()
    # the page moved on past the dismissed dialog (a live refresh came after it): nothing was posted
    page.wait_for_event("request", is_refresh, timeout=10_000)
    assert posted == []
    assert job_state(app, job_id) == lifecycle.FAILED
    expect(row_of(page, job_id).get_by_role("checkbox")).to_be_checked()


def test_selection_survives_live_refresh_and_bulk_selected(app, operator, new_page):
    ids = [failed_job(app) for _ in range(3)]
    page = new_page()
    sign_in(page, operator)
    page.goto("/hangfire/jobs/failed")
    delete = page.get_by_role("button", name="Delete selected")
    expect(delete).to_be_disabled()
    for job_id in ids[:2]:
        row_of(page, job_id).get_by_role("checkbox").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    newcomer = failed_job(app)
    expect(row_of(page, newcomer)).to_have_count(1)  # a refresh happened…
    for job_id in ids[:2]:
        expect(row_of(page, job_id).get_by_role("checkbox")).to_be_checked()  # …and kept the ticks
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect(page.get_by_text("Deleted 2 jobs.")).to_be_visible()
    assert [job_state(app, i) for i in ids] == [lifecycle.DELETED, lifecycle.DELETED, lifecycle.FAILED]


def is_refresh(request) -> bool:
    """True for a live part's fragment request."""
    return "/fragment" in request.url


def test_refresh_pauses_while_the_tab_is_hidden(app, operator, new_page):
    page = new_page()
    sign_in(page, operator)
    fetched = []
    page.on("request", lambda request: fetched.append(request.url) if is_refresh(request) else None)
    page.goto("/hangfire")
    page.wait_for_event("request", is_refresh, timeout=5_000)
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_timeout(1500)
    count = len(fetched)
    page.wait_for_timeout(3000)
    assert len(fetched) == count
    expect(page.locator("[data-live-status]")).to_have_text("paused")
    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_event("request", is_refresh, timeout=5_000)  # at once, not after a full interval


def test_read_only_user_sees_no_buttons(app, make_user, new_page):
    make_user("rita", permissions=[HANGFIRE_READ_ONLY])
    job_id = failed_job(app)
    page = new_page()
    sign_in(page, "rita")
    for url in ("/hangfire", "/hangfire/jobs/failed", f"/hangfire/job/{job_id}", "/hangfire/queues"):
        page.goto(url)
        expect(page.get_by_test_id("read-only")).to_be_visible()
        main = page.locator(".hf-page")
        expect(main.get_by_role("button", name=ACTION_NAMES)).to_have_count(0)
        expect(main.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("link", name="Enqueue a job")).to_have_count(0)
    assert page.goto("/hangfire/enqueue").status == 403


def test_theme_follows_the_system_and_remembers_a_choice(browser, live_server, operator):
    context = browser.new_context(base_url=live_server.url, color_scheme="dark")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, operator)
        page.goto("/hangfire")
        html = page.locator("html")
        expect(html).to_have_attribute("data-theme", "dark")
        picker = page.get_by_label("Colour theme")
        expect(picker).to_have_value("auto")
        picker.select_option("light")
        expect(html).to_have_attribute("data-theme", "light")
        page.goto("/reports")
        expect(html).to_have_attribute("data-theme", "light")  # remembered, on every page
        expect(page.get_by_label("Colour theme")).to_have_value("light")
        page.get_by_label("Colour theme").select_option("dark")
        expect(html).to_have_attribute("data-theme", "dark")
        page.get_by_label("Colour theme").select_option("auto")
        expect(html).to_have_attribute("data-theme", "dark")  # the system's
        assert page.evaluate("localStorage.getItem('theme')") is None
    finally:
        context.close()


def seed_for_screenshots(app) -> str:
    """A few jobs in several states (one with a payload); returns a failed job's id."""
    for seconds in (0.1, 0.2):
        enqueue(app, args=(seconds,))
    enqueue(app, args=(5,), delay=600)
    enqueue(app, task="demo.noop", args=(), queue="reports")
    failed_job(app, task="demo.fail", args=(SCRIPT,), message=SCRIPT)
    job_id = enqueue(app, task="demo.sleep", args=(NEEDLE,))
    fail(app, job_id, "ValueError: could not reach the report store", kind="ValueError")
    return job_id


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(app, browser, live_server, operator, scheme):
    job_id = seed_for_screenshots(app)
    with watched_page(browser, live_server, scheme, operator) as (page, errors):
        for name, url in (("overview", "/hangfire"), ("failed", "/hangfire/jobs/failed"),
                          ("job", f"/hangfire/job/{job_id}"), ("queues", "/hangfire/queues")):
            page.goto(url)
            expect(page.locator("html")).to_have_attribute("data-theme", scheme)
            expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "ok", timeout=5_000)
            screenshot(page, f"dashboard-{name}-{scheme}")
    assert errors == []
