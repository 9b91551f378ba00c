"""Ways in and ways back: ``/`` sends each person where they can work; 403, 404, 405 and 500 are pages
in the app's layout (its navigation, ``lang``, a skip link, a way on) for browsers and JSON for API
callers; users with no admin page land on Reports; one navigation bar on every page."""
from __future__ import annotations

import re

import pytest

from app.permissions import ADMIN_ROLE, HANGFIRE, USERS
from app.web import human_size
from tests.helpers.web import sign_in

PAGES = ["/reports", "/admin/", "/admin/role/", "/admin/user/", "/admin/outbox/", "/hangfire",
         "/hangfire/jobs/failed", "/hangfire/recurring", "/hangfire/audit", "/hangfire/enqueue", "/nowhere"]


@pytest.fixture
def everyone(app, make_user):
    """Signed-in clients: an admin, a dashboard operator, a user editor, and a user with no role."""
    make_user("root", roles=[ADMIN_ROLE])
    make_user("olivia", permissions=[HANGFIRE])
    make_user("ursula", permissions=[USERS])
    make_user("ann")
    return {name: sign_in(app, name) for name in ("root", "olivia", "ursula", "ann")}


def test_the_front_door_sends_each_person_where_they_can_work(app, everyone):
    assert app.test_client().get("/").headers["Location"] == "/login"
    assert everyone["root"].get("/").headers["Location"] == "/hangfire"
    assert everyone["olivia"].get("/").headers["Location"] == "/hangfire"
    assert everyone["ursula"].get("/").headers["Location"] == "/admin/"
    assert everyone["ann"].get("/").headers["Location"] == "/reports"
    assert everyone["ann"].get("/admin/").headers["Location"] == "/reports"  # no admin page to open


def test_the_admin_home_lists_the_pages_a_user_may_open(everyone):
    html = everyone["ursula"].get("/admin/").get_data(True)
    tiles = re.search(r'data-testid="admin-pages">(.*?)</div>\s*$', html, re.S | re.M).group(1)
    assert 'href="/admin/user/"' in tiles and 'href="/reports"' in tiles
    assert 'href="/admin/role/"' not in tiles and 'href="/hangfire"' not in tiles


def nav_links(html: str) -> list[str]:
    """The hrefs of the navigation bar's links."""
    nav = html[html.index('<nav class="app-nav"'):html.index("</nav>")]
    return re.findall(r'<a (?:class="[^"]*" )?href="([^"]*)"', nav)


@pytest.mark.parametrize("url", PAGES)
def test_every_page_has_the_one_layout(app, everyone, url):
    response = everyone["root"].get(url)
    html = response.get_data(True)
    assert response.status_code in (200, 404), (url, response.status_code)
    assert html.startswith("<!doctype html>\n<html lang=\"en\"") or '<html lang="en"' in html[:200], url
    assert '<a class="skip-link" href="#main">Skip to main content</a>' in html and 'id="main"' in html
    assert 'src="/static/theme.js"' in html and 'href="/static/app.css"' in html, url
    assert set(nav_links(html)) >= {"/", "/hangfire", "/reports", "/admin/role/", "/admin/user/"}, url
    assert 'data-testid="signed-in-user">root<' in html


def test_the_sign_in_page_has_the_layout_and_theme_too(client):
    html = client.get("/login").get_data(True)
    assert '<html lang="en"' in html and 'src="/static/theme.js"' in html and 'data-theme-select' in html
    assert nav_links(html) == ["/"]  # nothing to open before signing in


def test_no_inline_scripts_or_handlers_anywhere(everyone, jobs):
    for url in PAGES + [f"/hangfire/job/{jobs['failed']}", "/hangfire/queues", "/hangfire/servers",
                        "/hangfire/enqueue?task=demo.sleep"]:
        html = everyone["root"].get(url).get_data(True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url  # every script is a file
        if not url.startswith("/admin/"):  # Flask-Admin's own model pages are the web stream's
            assert not re.search(r"\son[a-z]+\s*=", html), url
        assert " style=" not in html or url.startswith("/admin/"), url


@pytest.mark.parametrize("who,url,status", [
    ("ann", "/hangfire", 403), ("ann", "/admin/role/", 403), ("root", "/nowhere", 404),
    ("root", "/hangfire/jobs/nonsense", 404), ("root", "/hangfire/job/" + "0" * 32, 404),
    ("root", "/logout", 405),
])
def test_errors_are_pages_in_the_layout_with_a_way_on(everyone, who, url, status):
    response = everyone[who].get(url)
    html = response.get_data(True)
    assert response.status_code == status and response.mimetype == "text/html"
    assert f'data-testid="error-page" data-status="{status}"' in html
    assert 'href="/">Go to your start page</a>' in html and 'data-back' in html
    assert '<nav class="app-nav" aria-label="Main">' in html and '<html lang="en"' in html
    assert "Traceback" not in html and "werkzeug" not in html.lower()


def test_errors_are_json_for_api_callers(everyone, app):
    missing = app.test_client().get("/nowhere", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.get_json() == {"error": "not found"}
    bad_token = app.test_client().get("/nowhere", headers={"Authorization": "Bearer x"})
    assert bad_token.status_code == 401 and bad_token.is_json
    forbidden = everyone["ann"].get("/hangfire", headers={"Accept": "application/json"})
    assert forbidden.status_code == 403 and forbidden.get_json() == {"error": "permission denied"}
    api = everyone["root"].get("/api/nowhere")
    assert api.status_code == 404 and api.is_json
    method = everyone["root"].get("/api/token")
    assert method.status_code == 405 and method.get_json() == {"error": "method GET not allowed here"}


def test_a_crash_is_a_500_page_without_a_traceback(app, make_user):
    def boom():
        raise RuntimeError("secret detail")

    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the crash is answered, not raised
    app.add_url_rule("/boom", "boom", boom)
    make_user("root", roles=[ADMIN_ROLE])
    client = sign_in(app, "root")
    page = client.get("/boom")
    assert page.status_code == 500 and 'data-status="500"' in page.get_data(True)
    assert "secret detail" not in page.get_data(True) and "Something went wrong" in page.get_data(True)
    api = client.get("/boom", headers={"Accept": "application/json"})
    assert api.status_code == 500 and api.get_json() == {"error": "internal error"}


def test_sizes_read_in_bytes_and_kilobytes(app):
    assert [human_size(n) for n in (0, 1, 368, 999, 1000, 12_345, 4_000_000)] == [
        "0 bytes", "1 byte", "368 bytes", "999 bytes", "1.0 kB", "12.3 kB", "4.0 MB"]


def test_an_error_page_is_drawn_even_when_the_layout_cant_be(app, client):
    def navigation_down():
        raise RuntimeError("the database behind the menu is down")

    app.jinja_env.globals["navigation"] = navigation_down
    response = client.get("/nowhere")
    html = response.get_data(True)
    assert response.status_code == 404 and 'data-status="404"' in html and '<html lang="en"' in html
    assert "Page not found" in html and "database behind the menu" not in html
