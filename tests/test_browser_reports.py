"""In Chromium: a user generates a report, watches its progress bar reach 100 % without a reload,
downloads the file; an admin finds the job in the dashboard and reads the email in Admin → Outbox.

The scenario drives its own Playwright on a thread of its own: ``tests.browser``'s session-scoped
``browser`` fixture, imported into several modules, is one Playwright per module, and a second sync
Playwright can't start on a thread where another is still running.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from app.extensions import db
from app.permissions import ADMIN_ROLE
from app.reports.models import Report
from tasks.ledger import utcnow
from tests.browser import CHROMIUM, CHROMIUM_ARGS, DEFAULT_TIMEOUT_MS, require_chromium
from tests.browser import screenshot, sign_in

DAYS = 10
CHUNK_DELAY = "0.3"  # 10 chunks: about 3 s of visible progress

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Records every value the progress bars take, so the test sees the bar move (not just its end).
WATCH_PROGRESS = """
window.__seenProgress = [];
window.__sameDocument = true;
new MutationObserver(function (changes) {
  changes.forEach(function (change) {
    window.__seenProgress.push(Number(change.target.getAttribute("aria-valuenow")));
  });
}).observe(document.body, {subtree: true, attributes: true, attributeFilter: ["aria-valuenow"]});
"""


def drive_chromium(base_url: str, scenario: Callable) -> None:
    """Launch Chromium and run ``scenario(new_page)``; every ``new_page()`` is a fresh context (cookies)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def new_page():
                context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
                context.set_default_timeout(DEFAULT_TIMEOUT_MS)
                return context.new_page()

            scenario(new_page)
        finally:
            browser.close()


@pytest.fixture
def in_chromium(live_server):
    """Run ``scenario(new_page)`` in Chromium against the live server, on a thread of its own."""
    require_chromium()

    def run(scenario: Callable) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="chromium") as pool:
            pool.submit(drive_chromium, live_server.url, scenario).result()

    return run


def latest_report(app) -> Report:
    with app.app_context():
        report = db.session.scalars(db.select(Report).order_by(Report.id.desc())).first()
        db.session.expunge(report)
        return report


def find_job_in_dashboard(admin, job_id: str) -> None:
    """The admin opens the dashboard and the job's page, which names the job and its task."""
    assert admin.goto("/hangfire").status == 200
    assert admin.goto(f"/hangfire/job/{job_id}").status == 200
    expect(admin.get_by_test_id("job-summary")).to_contain_text(job_id)
    expect(admin.get_by_test_id("job-summary")).to_contain_text("reports.build")


def test_user_generates_watches_and_downloads_a_report(app, make_user, in_chromium, start_worker):
    make_user("ann")
    make_user("root", roles=[ADMIN_ROLE])
    start_worker(queues="default,reports,email", REPORTS_CHUNK_DELAY=CHUNK_DELAY)
    in_chromium(lambda new_page: generate_watch_download(app, new_page))


def generate_watch_download(app, new_page) -> None:
    """Ann generates a report and downloads it; root finds its job and its email."""
    page = new_page()
    sign_in(page, "ann")
    page.get_by_role("link", name="Reports").click()
    expect(page).to_have_url("/reports")
    page.get_by_label("Job activity").check()
    page.get_by_label("From (UTC)").fill((utcnow().date() - timedelta(days=DAYS - 1)).isoformat())
    page.get_by_label("Format").select_option("csv")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url("**/reports#report-*")
    page.evaluate(WATCH_PROGRESS)

    report = latest_report(app)
    row = page.locator(f"#report-{report.id}")
    expect(row).to_contain_text(report.title)
    bar = row.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
    expect(row.get_by_text("Ready")).to_be_visible()
    banner = page.locator(f'[data-flash-subject="report-{report.id}"]')  # "being generated" no more
    expect(banner).to_contain_text(f"Report #{report.id} is ready")
    expect(row.locator('[data-role="size"]')).to_have_text(re.compile(r"^\d+(\.\d)? (bytes|kB)$"))
    screenshot(page, "report-ready")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    seen = page.evaluate("window.__seenProgress")
    assert any(0 < value < 100 for value in seen), f"progress never seen between 0 and 100: {seen}"

    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename.startswith(f"job-activity-{report.id}-")
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8-sig") as fh:
        assert fh.readline().startswith("Day,Task,Jobs,Succeeded,Failed")

    admin = new_page()
    sign_in(admin, "root")
    find_job_in_dashboard(admin, report.job_id)
    admin.goto("/admin/")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    admin.get_by_role("link", name=f"Your report is ready: {report.title}").click()
    expect(admin.get_by_test_id("attachments")).to_contain_text(download.suggested_filename)
    screenshot(admin, "outbox-message")
