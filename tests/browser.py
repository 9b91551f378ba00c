"""Browser-test fixtures: the app on a live HTTP server, and Debian's Chromium through Playwright.

``tests/conftest.py`` loads this module as a plugin (``pytest_plugins``), so its fixtures
``browser`` (one Chromium per run), ``live_server`` and ``new_page`` are there for every module.

``live_server`` serves the ``app`` fixture (same test database) from a thread on a
free port; ``new_page()`` opens a page in a fresh browser context (its own cookies),
so each call is a different signed-in person. Set ``BROWSER_SCREENSHOT_DIR`` to keep
screenshots taken with :func:`screenshot`.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.helpers.web import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_TIMEOUT_MS = 10_000
#: a page load may wait on a server that is also tracing coverage on a loaded 2-core machine
NAVIGATION_TIMEOUT_MS = 30_000


def bounded(context) -> None:
    """Give ``context`` the suite's waits: for actions and for page loads."""
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)


def require_chromium() -> None:
    """Skip without Chromium on a developer machine; in CI (``CI`` set) fail the test instead."""
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + " — CI must run the browser tests", pytrace=False)
    pytest.skip(message)


@dataclass
class LiveServer:
    """A running server: its base URL and the application it serves."""

    url: str
    app: Flask
    server: BaseWSGIServer


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the per-request access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Don't log successful requests (errors are still logged)."""


def start_server(app: Flask) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve ``app`` on 127.0.0.1 (free port) from a daemon thread, one thread per request."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(name="live_server")
def live_server_fixture(app) -> Iterator[LiveServer]:
    """The ``app`` fixture served over HTTP for the duration of a test."""
    server, thread = start_server(app)
    yield LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, server=server)
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture(name="browser", scope="session")
def browser_fixture():
    """Debian's Chromium, headless, launched once per test session."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(name="new_page")
def new_page_fixture(browser, live_server):
    """A factory of pages, each in its own browser context (cookies) on the live server."""
    contexts = []

    def open_page():
        """A new page in a new context."""
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        bounded(context)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real login form (fields named as DESIGN.md fixes them) and leave it."""
    page.goto("/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator('form button[type="submit"]').click()
    page.wait_for_url(lambda url: "/login" not in url)
    loaded(page)


def loaded(page) -> None:
    """Wait for the current page's load event (its scripts have run). Call it after a navigation has
    shown on the page (a URL or text expected): on a loaded machine a click or key sent sooner can
    reach the page before its script does, and nothing happens."""
    page.wait_for_load_state("load")


def screenshot(page, name: str) -> None:
    """Save a full-page screenshot to ``$BROWSER_SCREENSHOT_DIR/<name>.png`` when that is set."""
    directory = os.environ.get("BROWSER_SCREENSHOT_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


@contextmanager
def watched_page(browser, live_server, scheme: str, username: str):
    """A signed-in page in ``scheme`` (1280×900); yields (page, errors): script errors and dialogs seen."""
    context = browser.new_context(base_url=live_server.url, color_scheme=scheme,
                                  viewport={"width": 1280, "height": 900})
    bounded(context)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("dialog", lambda dialog: errors.append("dialog: " + dialog.message))  # a payload that ran
        sign_in(page, username)
        yield page, errors
    finally:
        context.close()
