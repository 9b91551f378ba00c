"""In Chromium, every page of the app as one product: at phone width (390 px) nothing is wider than
the screen and row actions stay in reach; dark mode on every page (sign-in, admin, reports, outbox,
dashboard, error pages); the skip link; error pages with a way back; every script working under
``Content-Security-Policy: script-src 'self'``. Screenshots of the main pages in light, dark and
phone width are saved when ``BROWSER_SCREENSHOT_DIR`` is set.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.mail.jobs import outbox_dir
from app.mail.outbox import OutboxTransport
from app.models import Role, User
from app.permissions import ADMIN_ROLE
from app.reports.models import Report
from tasks.ledger import utcnow
from tests.browser import DEFAULT_TIMEOUT_MS, screenshot, sign_in
from tests.conftest import NIGHTLY
from tests.helpers.ledger import enqueue, fail, failed_job

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}

#: elements wider than the viewport, unless a scroll box that fits the viewport contains them
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const contained = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX)
          && p.getBoundingClientRect().right <= width + 1
          && p.getBoundingClientRect().left >= -1) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || getComputedStyle(el).visibility === "hidden") continue;
    if ((box.right > width + 1 || box.left < -1) && !contained(el)) {
      const where = `${Math.round(box.left)}..${Math.round(box.right)}`;
      wide.push(`${el.tagName.toLowerCase()}.${el.className} (${where})`);
    }
  }
  return {page: document.documentElement.scrollWidth, width, wide: wide.slice(0, 8)};
}"""

#: the page's background and text colours, and whether the theme says dark
COLOURS = """() => {
  const luminance = (colour) => {
    const [r, g, b] = colour.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  const main = document.querySelector("main") || document.body;
  const card = main.querySelector(".card, .table, .form-control") || main;
  const body = getComputedStyle(document.body).backgroundColor;
  const surface = getComputedStyle(card).backgroundColor;
  return {theme: document.documentElement.dataset.theme, body: luminance(body),
          text: luminance(getComputedStyle(main).color),
          surface: luminance(surface === "rgba(0, 0, 0, 0)" ? body : surface)};
}"""


def seed(app) -> dict:
    """Jobs in every state, a continuation, reports in every state, an outbox message; returns ids."""
    ids = {"enqueued": enqueue(app, args=(0.25,)), "scheduled": enqueue(app, args=(5,), delay=600),
           "failed": failed_job(app, task="demo.fail", args=("a long argument " * 12,),
                                message="ValueError: could not reach https://reports.example.com/a/path")}
    ids["child"] = enqueue(app, task="demo.noop", args=(), after=ids["enqueued"])
    retried = enqueue(app, task="demo.sleep", args=(3,))
    fail(app, retried, "flaky network")
    with app.app_context():
        root = db.session.scalar(db.select(User).where(User.username == "root"))
        now = utcnow()
        for state, size in (("queued", None), ("ready", 368), ("failed", None)):
            db.session.add(Report(user_id=root.id, kind="job-activity", format="csv",
                                  title=f"Job activity ({state})", state=state, size_bytes=size,
                                  error="no data" if state == "failed" else None,
                                  created_at=now, finished_at=now if state != "queued" else None,
                                  expires_at=now + timedelta(days=7)))
        db.session.commit()
        message = EmailMessage()
        message["From"], message["To"] = "jobs@example.com", "root@example.com"
        message["Subject"] = "Your report"
        message.set_content("It is ready.")
        OutboxTransport(outbox_dir()).send(message)
        ids["role"] = Role.by_name(ADMIN_ROLE).id
    return ids


def pages(ids: dict) -> list[tuple[str, str]]:
    """(name, URL) of every page a signed-in admin can reach, error pages included."""
    return [("home", "/"), ("reports", "/reports"), ("admin", "/admin/"), ("roles", "/admin/role/"),
            ("role-form", f"/admin/role/edit/?id={ids['role']}"), ("users", "/admin/user/"),
            ("user-form", "/admin/user/new/"), ("outbox", "/admin/outbox/"), ("overview", "/hangfire"),
            ("enqueued", "/hangfire/jobs/enqueued"), ("scheduled", "/hangfire/jobs/scheduled"),
            ("failed", "/hangfire/jobs/failed"), ("awaiting", "/hangfire/jobs/awaiting"),
            ("all", "/hangfire/jobs/all?q=argument"), ("job", f"/hangfire/job/{ids['failed']}"),
            ("continuation", f"/hangfire/job/{ids['child']}"), ("recurring", "/hangfire/recurring"),
            ("queues", "/hangfire/queues"), ("servers", "/hangfire/servers"), ("audit", "/hangfire/audit"),
            ("enqueue", "/hangfire/enqueue?task=tests.typed"), ("not-found", "/nowhere"),
            ("no-such-list", "/hangfire/jobs/nonsense")]


@pytest.fixture
def site(app, make_user, nightly):
    """An admin (``root``) and a populated app."""
    make_user("root", roles=[ADMIN_ROLE])
    make_user("ann")
    return seed(app)


def refused_by_csp(message, url: str) -> bool:
    """True for a console error saying the CSP refused something on one of our own pages."""
    return message.type == "error" and "Content Security Policy" in message.text


@contextmanager
def browsing(browser, live_server, viewport: dict, scheme: str = "light", username: str | None = "root"):
    """A page in a fresh context; yields (page, problems): script errors, CSP refusals, dialogs."""
    context = browser.new_context(base_url=live_server.url, viewport=viewport, color_scheme=scheme)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{page.url}: script error: {error}"))
        page.on("console", lambda msg: problems.append(f"{page.url}: {msg.text}")
                if refused_by_csp(msg, page.url) else None)
        if username:
            sign_in(page, username)
        yield page, problems
    finally:
        context.close()


def test_every_page_fits_a_phone(browser, live_server, site):
    with browsing(browser, live_server, PHONE) as (page, problems):
        for name, url in pages(site):
            page.goto(url)
            measured = page.evaluate(OVERFLOW)
            assert measured["page"] <= measured["width"] and not measured["wide"], (name, measured)
            screenshot(page, f"phone-{name}")
        page.context.clear_cookies()
        page.goto("/login")
        assert not page.evaluate(OVERFLOW)["wide"]
        screenshot(page, "phone-login")
    assert problems == []


def main_menu(page):
    """The app's navigation bar."""
    return page.get_by_role("navigation", name="Main")


def in_reach(button) -> None:
    """``button`` is on screen once scrolled to, without scrolling sideways."""
    button.scroll_into_view_if_needed()
    expect(button).to_be_in_viewport(ratio=1)
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_on_a_phone_rows_keep_their_actions_in_reach(browser, live_server, site):
    with browsing(browser, live_server, PHONE) as (page, _):
        page.goto("/hangfire/jobs/failed")
        expect(page.get_by_label("Job list", exact=True)).to_be_visible()  # the menu is a compact selector…
        expect(page.get_by_role("navigation", name="Job lists")).to_be_hidden()
        expect(page.locator("details.hf-filter")).not_to_have_attribute("open", "")  # …the filter folded away
        in_reach(page.locator(f'tr[data-job-id="{site["failed"]}"]').get_by_role("button", name="Retry"))
        page.get_by_label("Job list", exact=True).select_option("scheduled")  # the selector switches lists
        expect(page).to_have_url("/hangfire/jobs/scheduled")
        page.goto("/reports")
        in_reach(page.locator("tr", has_text="Job activity (ready)").get_by_role("link", name="Download"))
        ready = page.locator("tr", has_text="Job activity (ready)")
        expect(ready).to_contain_text("368 bytes")
        expect(ready.get_by_role("button", name="Retry")).to_be_hidden()  # only a failed report offers it
        page.goto("/hangfire/recurring")
        in_reach(page.locator(f'tr[data-recurring-id="{NIGHTLY}"]').get_by_role("button", name="Trigger now"))
        page.get_by_role("button", name="Menu").click()  # the navigation folds away too
        expect(main_menu(page).get_by_role("link", name="Dashboard")).to_be_visible()


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_one_theme_on_every_page(browser, live_server, site, scheme):
    with browsing(browser, live_server, LAPTOP, scheme) as (page, problems):
        for name, url in pages(site) + [("login", None)]:
            if url is None:
                page.context.clear_cookies()
                url = "/login"
            page.goto(url)
            colours = page.evaluate(COLOURS)
            assert colours["theme"] == scheme, name
            if scheme == "dark":
                assert colours["body"] < 0.2 and colours["surface"] < 0.3, (name, colours)
                assert colours["text"] > 0.6, (name, colours)
            else:
                assert colours["body"] > 0.8 and colours["text"] < 0.4, (name, colours)
            screenshot(page, f"{scheme}-{name}")
    assert problems == []


def test_the_theme_choice_is_remembered_from_the_sign_in_page_on(browser, live_server, site):
    with browsing(browser, live_server, LAPTOP, "light", username=None) as (page, _):
        page.goto("/login")
        page.get_by_label("Colour theme").select_option("dark")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        sign_in(page, "root")
        for url in ("/hangfire", "/admin/role/", "/reports", "/nowhere"):
            page.goto(url)
            expect(page.locator("html")).to_have_attribute("data-theme", "dark")
            expect(page.get_by_label("Colour theme")).to_have_value("dark")


def test_the_skip_link_and_error_pages(browser, live_server, site):
    with browsing(browser, live_server, LAPTOP) as (page, problems):
        page.goto("/hangfire")
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to main content")
        expect(skip).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main#main")).to_be_focused()
        response = page.goto("/no/such/page")
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        expect(main_menu(page).get_by_role("link", name="Dashboard")).to_be_visible()
        page.get_by_role("link", name="Go back").click()
        expect(page).to_have_url(re.compile(r"/hangfire(#main)?$"))  # where the person came from
        page.goto("/nowhere")
        page.get_by_role("link", name="Go to your start page").click()
        expect(page).to_have_url("/hangfire")
    assert problems == []
    with browsing(browser, live_server, LAPTOP, username="ann") as (page, _):
        expect(page).to_have_url("/reports")  # no admin page: Reports is where ann works
        assert page.goto("/hangfire").status == 403
        expect(page.get_by_role("heading", name="You don't have access to this page")).to_be_visible()
        page.get_by_role("link", name="Go to your start page").click()
        expect(page).to_have_url("/reports")


def test_dashboard_scripts_work_under_a_strict_csp(browser, live_server, site):
    with browsing(browser, live_server, LAPTOP) as (page, problems):
        response = page.goto("/hangfire/jobs/failed")
        policy = response.headers["content-security-policy"]
        script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
        assert "'self'" in script_src and "unsafe-inline" not in script_src  # the app's own policy
        expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "ok")  # live refresh ran
        page.locator(f'tr[data-job-id="{site["failed"]}"]').get_by_role("checkbox").check()
        expect(page.get_by_text("1 selected")).to_be_visible()  # selection script
        page.get_by_label("Colour theme").select_option("dark")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        page.goto(f"/hangfire/job/{site['failed']}")
        bar_page = page.goto("/reports")
        assert bar_page.status == 200
        bar = page.locator('[data-role="progress"] .progress-bar').first
        expect(bar).to_have_attribute("aria-valuenow", "0")
    assert problems == []
