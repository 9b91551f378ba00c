"""Sign-in through the form: sessions, remember cookie, logout, ``next`` safety, throttling."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask_login import login_required
from sqlalchemy import select, update

from app.auth.throttle import SignInThrottle, account_key, address_key, pair_key
from app.extensions import db
from app.models import LoginThrottle, User, utcnow
from tests.helpers.web import PASSWORD, cookie_names, csrf_for, csrf_token, post_login, sign_out


def signed_in_username(client) -> str | None:
    """Who ``client`` is signed in as, asked through ``/api/me``."""
    response = client.get("/api/me")
    return response.get_json()["username"] if response.status_code == 200 else None


@pytest.fixture
def private_page(app):
    """A login-required HTML page at ``/private``."""

    @login_required
    def private():
        return "private"

    app.add_url_rule("/private", "private", private)
    return "/private"


# -- signing in -------------------------------------------------------------------------------

def test_login_page_renders_form(client):
    page = client.get("/login")
    html = page.get_data(True)
    assert page.status_code == 200
    for name in ('name="username"', 'name="password"', 'name="remember"', 'name="csrf_token"'):
        assert name in html
    assert "form-control" in html and "cdn" not in html.lower()


def test_login_success_goes_to_the_landing_page(client, make_user, login):
    make_user("alice")
    response = login("alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/").headers["Location"] == "/reports"  # no admin page, no dashboard: Reports
    assert signed_in_username(client) == "alice"


def test_login_with_email_case_insensitive(client, make_user, login):
    make_user("alice")
    assert login("ALICE@Example.com").status_code == 302
    assert signed_in_username(client) == "alice"


@pytest.mark.parametrize("username, password", [("alice", "wrong password"), ("nobody", PASSWORD)])
def test_login_failure_is_generic(client, make_user, login, username, password):
    make_user("alice")
    response = login(username, password)
    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(True)
    assert signed_in_username(client) is None


def test_inactive_user_cannot_sign_in(client, make_user, login):
    make_user("dormant", active=False)
    response = login("dormant")
    assert response.status_code == 200
    assert "Invalid username or password" in response.get_data(True)
    assert signed_in_username(client) is None


def test_deactivated_user_loses_session(app, client, make_user, login):
    user_id = make_user("alice")
    login("alice")
    with app.app_context():
        db.session.get(User, user_id).active = False
        db.session.commit()
    assert client.get("/api/me").status_code == 401


def test_login_without_csrf_token_is_refused(client, make_user):
    make_user("alice")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert signed_in_username(client) is None


def test_login_updates_last_login_at(app, make_user, login):
    user_id = make_user("alice")
    before = utcnow()
    login("alice")
    with app.app_context():
        last_login = db.session.get(User, user_id).last_login_at
    assert last_login is not None and before <= last_login <= utcnow()


def test_remember_cookie_only_when_asked(client, make_user):
    make_user("alice")
    assert "remember_token" not in cookie_names(post_login(client, "alice"))
    sign_out(client)
    assert "remember_token" in cookie_names(post_login(client, "alice", remember=True))


def test_remember_cookie_restores_session(client, make_user, login):
    make_user("alice")
    login("alice", remember=True)
    client.delete_cookie("session")
    assert signed_in_username(client) == "alice"


def test_signed_in_user_visiting_login_goes_to_next(client, make_user, login):
    make_user("alice")
    login("alice")
    assert client.get("/login?next=/admin/role/").headers["Location"] == "/admin/role/"


# -- signing out ------------------------------------------------------------------------------

def test_logout_is_post_only(client, make_user, login):
    make_user("alice")
    login("alice")
    assert client.get("/logout").status_code == 405
    assert signed_in_username(client) == "alice"


def test_logout_requires_csrf_token(client, make_user, login):
    make_user("alice")
    login("alice")
    assert client.post("/logout").status_code == 400
    assert signed_in_username(client) == "alice"


def test_logout_signs_out_and_clears_remember_cookie(client, make_user):
    make_user("alice")
    post_login(client, "alice", remember=True)
    response = sign_out(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "remember_token" in cookie_names(response)  # expired by the response
    assert client.get_cookie("remember_token") is None
    assert signed_in_username(client) is None


# -- where to go next -------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "https://evil.com/steal",
    "//evil.com",
    "////evil.example",
    "///evil.example",
    "/\\evil.com",
    "\\\\evil.com",
    "/%2F%2Fevil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252F%25252Fevil.example",
    "javascript:alert(1)",
    "http:evil.example",
    "https:evil.example",
    "http://localhost.evil.com/",
    "http://localhost/admin/",
    "/\t/evil.example",
    "/admin/\r\nLocation: https://evil.example",
    "admin/",
    "",
])
def test_unsafe_next_goes_to_the_landing_page(client, make_user, target):
    make_user("alice")
    response = post_login(client, "alice", next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/hangfire/jobs?state=failed", "/reports#report-3",
                                    "/admin/user/?search=a%2Fb", "/reports?next=//evil.example"])
def test_relative_next_is_honoured(client, make_user, target):
    make_user("alice")
    response = post_login(client, "alice", next_url=target)
    assert response.headers["Location"] == target


def test_signed_in_visit_to_login_follows_the_same_rule(client, make_user, login):
    make_user("alice")
    login("alice")
    assert client.get("/login?next=////evil.example").headers["Location"] == "/"
    assert client.get("/login?next=/reports").headers["Location"] == "/reports"


def test_login_required_page_redirects_with_next(client, private_page):
    response = client.get(private_page + "?tab=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fprivate%3Ftab%3D2"


def test_login_required_page_answers_json_callers_with_401(client, private_page):
    response = client.get(private_page, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "authentication required"}


def test_login_required_api_answers_401_json(client):
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.get_json() == {"error": "authentication required"}


def test_redirect_to_login_then_back(client, make_user, private_page):
    make_user("alice")
    location = client.get(private_page).headers["Location"]
    page = client.get(location)
    data = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_token(page.get_data(True))}
    response = client.post(location, data=data)
    assert response.headers["Location"] == private_page
    assert client.get(private_page).get_data(True) == "private"


# -- throttling -------------------------------------------------------------------------------

@pytest.fixture
def small_limits(app_config):
    """Three failures lock an account from one address, five an address; the account slows after four."""
    app_config["LOGIN_THROTTLE_MAX_FAILURES"] = 3
    app_config["LOGIN_THROTTLE_IP_MAX_FAILURES"] = 5
    app_config["LOGIN_THROTTLE_SLOWDOWN_AFTER"] = 4
    app_config["LOGIN_THROTTLE_MAX_DELAY"] = timedelta(seconds=30)
    return app_config


def pass_time(app, keys=None, window: bool = True) -> None:
    """Move every throttle (or those of ``keys``) past its hold, and its window unless told not to."""
    long_ago = utcnow() - timedelta(hours=1)
    values = {"locked_until": long_ago} | ({"window_started_at": long_ago} if window else {})
    with app.app_context():
        statement = update(LoginThrottle).values(**values)
        if keys is not None:
            statement = statement.where(LoginThrottle.key.in_(keys))
        db.session.execute(statement)
        db.session.commit()


def account_row(app, login: str) -> LoginThrottle:
    """The account-wide counter of ``login``."""
    with app.app_context():
        row = db.session.get(LoginThrottle, account_key(login))
        db.session.expunge(row)
        return row


def test_account_locked_from_one_address_after_max_failures(small_limits, client, make_user):
    make_user("alice")
    for _ in range(3):
        assert post_login(client, "alice", "wrong", address="192.0.2.1").status_code == 200
    response = post_login(client, "alice", address="192.0.2.1")
    assert response.status_code == 429
    assert "Too many failed sign-ins; try again in 15 minutes" in response.get_data(True)
    assert 0 < int(response.headers["Retry-After"]) <= 900
    assert signed_in_username(client) is None


def test_lock_of_one_address_leaves_the_owner_in_from_another(small_limits, client, make_user):
    """A stranger's failures lock the stranger's address out of the account, not the owner's."""
    make_user("alice")
    for _ in range(3):
        post_login(client, "alice", "wrong", address="203.0.113.66")
    assert post_login(client, "alice", address="203.0.113.66").status_code == 429
    assert post_login(client, "alice", address="198.51.100.7").status_code == 302


def test_account_lock_counts_username_and_email_together(small_limits, client, make_user):
    make_user("alice")
    post_login(client, "alice", "wrong")
    post_login(client, "ALICE@example.com", "wrong")
    post_login(client, "Alice", "wrong")
    assert post_login(client, "alice@example.com").status_code == 429


def test_address_locked_after_max_failures(small_limits, client, make_user):
    make_user("alice")
    for n in range(5):
        post_login(client, f"guess{n}", "wrong", address="203.0.113.7")
    assert post_login(client, "alice", address="203.0.113.7").status_code == 429
    assert post_login(client, "alice", address="198.51.100.1").status_code == 302


def test_failures_from_many_addresses_slow_the_account_down_instead_of_locking_it(
        small_limits, app, client, make_user):
    """Past the slowdown limit each failure doubles the wait (1 s, 2 s, 4 s ... capped), and the
    owner signs in as soon as the short wait has passed: never a window-long lock."""
    make_user("alice")
    waits = []
    for n in range(10):
        pass_time(app, [account_key("alice")], window=False)  # each stranger waits out the delay first
        post_login(client, "alice", "wrong", address=f"10.0.0.{n}")
        until = account_row(app, "alice").locked_until
        waits.append(round((until - utcnow()).total_seconds()) if until and until > utcnow() else None)
    assert waits[:3] == [None, None, None]
    assert waits[3:] == [1, 2, 4, 8, 16, 30, 30]  # from the 4th failure on, capped at the max delay
    slowed = post_login(client, "alice", address="198.51.100.9")
    assert slowed.status_code == 429 and int(slowed.headers["Retry-After"]) <= 30
    assert "try again in" in slowed.get_data(True) and "seconds" in slowed.get_data(True)
    pass_time(app, [account_key("alice")], window=False)
    assert post_login(client, "alice", address="198.51.100.9").status_code == 302


def test_success_clears_the_account_counters(small_limits, app, client, make_user):
    make_user("alice")
    post_login(client, "alice", "wrong")
    post_login(client, "alice", "wrong")
    assert post_login(client, "alice").status_code == 302
    with app.app_context():
        assert db.session.get(LoginThrottle, account_key("alice")) is None
    assert sign_out(client).status_code == 302
    post_login(client, "alice", "wrong")
    post_login(client, "alice", "wrong")
    assert post_login(client, "alice").status_code == 302


def test_lock_passes_with_the_window(small_limits, app, client, make_user):
    make_user("alice")
    for _ in range(3):
        post_login(client, "alice", "wrong")
    assert post_login(client, "alice").status_code == 429
    pass_time(app)
    assert post_login(client, "alice").status_code == 302


def test_failures_outside_the_window_start_a_new_count(app):
    app.config["LOGIN_THROTTLE_MAX_FAILURES"] = 2
    with app.test_request_context():
        throttle = SignInThrottle("alice", "192.0.2.1")
        throttle.record_failure(now=utcnow() - timedelta(hours=1))
        throttle.record_failure()
        db.session.commit()
        row = db.session.get(LoginThrottle, pair_key("alice", "192.0.2.1"))
        assert row.failures == 1 and row.locked_until is None
        assert throttle.retry_after() is None


def test_refused_attempts_are_not_counted(small_limits, app, client, make_user):
    make_user("alice")
    for _ in range(5):
        post_login(client, "alice", "wrong")
    with app.app_context():
        assert db.session.get(LoginThrottle, pair_key("alice", "127.0.0.1")).failures == 3


def test_forwarded_for_is_ignored_without_trusted_proxies(small_limits, client, make_user):
    """Without TRUSTED_PROXIES an attacker can't pick the address the throttle charges."""
    make_user("alice")
    for n in range(5):
        client.post("/login", data={"username": f"guess{n}", "password": "wrong",
                                    "csrf_token": csrf_for(client)},
                    headers={"X-Forwarded-For": f"10.9.9.{n}"})
    assert post_login(client, "alice").status_code == 429  # all five were charged to 127.0.0.1


def test_concurrent_failures_are_all_counted(app):
    """Many workers failing at once: no lost increment, no error on the first insert."""
    workers = 8
    barrier = threading.Barrier(workers, timeout=30)
    errors = []

    def fail_once():
        try:
            with app.app_context():
                throttle = SignInThrottle("Racer", "192.0.2.50")
                barrier.wait()
                throttle.record_failure()
                db.session.commit()
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail_once) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a sign-in thread hung"
    assert errors == []
    with app.app_context():
        counts = dict(db.session.execute(select(LoginThrottle.key, LoginThrottle.failures)).all())
    assert counts == {account_key("racer"): workers, address_key("192.0.2.50"): workers,
                      pair_key("Racer", "192.0.2.50"): workers}
