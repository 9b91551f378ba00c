"""Sessions end when they should: sign-out on the server, remember-me cookies new at each sign-in, and
a password change, a deactivation or "Sign out everywhere" ending every session, remember-me cookie
and bearer token of the user. Cookies are replayed from fresh clients, as an attacker holding a copy.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.extensions import db
from app.models import UserSession, utcnow
from app.permissions import ADMIN_ROLE, USERS
from tests.helpers.accounts import role_id_by_name, user_id, user_state
from tests.helpers.web import bearer, bearer_token, post_form, post_login, sign_in, sign_out, submit


def replay(app, **cookies):
    """A fresh client holding copies of ``cookies`` (name=value), as someone who captured them."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def cookie(client, name: str) -> str:
    """The value of ``client``'s cookie ``name``."""
    held = client.get_cookie(name)
    assert held is not None, f"no {name} cookie"
    return held.value


def whoami(client, headers=None) -> str | None:
    """The username ``/api/me`` answers for ``client`` (None when refused)."""
    response = client.get("/api/me", headers=headers)
    return response.get_json()["username"] if response.status_code == 200 else None


@pytest.fixture
def alice(app, make_user) -> dict:
    """Alice signed in twice (one with remember-me) and holding a bearer token."""
    make_user("alice")
    laptop = sign_in(app, "alice")
    phone = app.test_client()
    post_login(phone, "alice", remember=True)
    token = bearer_token(app.test_client(), "alice")
    return {"laptop": laptop, "phone": phone, "token": token,
            "remember": cookie(phone, "remember_token")}


def everything_ended(app, alice) -> bool:
    """True when none of Alice's sessions, remember-me cookie or token works any more."""
    return (whoami(alice["laptop"]) is None and whoami(alice["phone"]) is None
            and whoami(replay(app, remember_token=alice["remember"])) is None
            and whoami(app.test_client(), bearer(alice["token"])) is None)


# --- sign-out -------------------------------------------------------------------------------------

def test_a_captured_session_cookie_stops_working_after_sign_out(app, make_user):
    make_user("alice")
    browser = sign_in(app, "alice")
    copy = replay(app, session=cookie(browser, "session"))
    assert whoami(copy) == "alice"
    assert sign_out(browser).status_code == 302
    assert whoami(browser) is None
    assert whoami(copy) is None


def test_a_captured_remember_cookie_stops_working_after_sign_out(app, make_user):
    make_user("alice")
    browser = app.test_client()
    post_login(browser, "alice", remember=True)
    remembered = cookie(browser, "remember_token")
    assert whoami(replay(app, remember_token=remembered)) == "alice"  # restores a session by itself
    sign_out(browser)
    assert whoami(replay(app, remember_token=remembered)) is None


def test_sign_out_ends_only_that_browser(app, alice):
    sign_out(alice["laptop"])
    assert whoami(alice["laptop"]) is None
    assert whoami(alice["phone"]) == "alice"
    assert whoami(app.test_client(), bearer(alice["token"])) == "alice"


def test_the_remember_cookie_is_new_at_each_sign_in(app, make_user):
    make_user("alice")
    browser = app.test_client()
    values = []
    for _ in range(3):
        post_login(browser, "alice", remember=True)
        values.append(cookie(browser, "remember_token"))
        sign_out(browser)
    assert len(set(values)) == 3


def test_a_session_cookie_without_its_server_side_key_is_refused(app, make_user):
    """A cookie naming only the user id (what Flask-Login keeps by default), signed with the real
    secret, doesn't sign anyone in: the server must know the session."""
    alice = make_user("alice")
    forged = app.session_interface.get_signing_serializer(app).dumps({"_user_id": str(alice), "_fresh": True})
    assert whoami(replay(app, session=forged)) is None
    guessed = app.session_interface.get_signing_serializer(app).dumps({"_user_id": f"{alice}:guess"})
    assert whoami(replay(app, session=guessed)) is None


def test_sessions_end_after_their_lifetime(app, make_user):
    make_user("alice")
    browser = sign_in(app, "alice")
    with app.app_context():
        db.session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert whoami(browser) is None


def test_signing_in_replaces_the_session_and_its_csrf_token(app, make_user):
    """Nothing a visitor had before signing in (a planted session) survives the sign-in."""
    make_user("alice")
    browser = app.test_client()
    browser.get("/login")
    before = cookie(browser, "session")
    post_login(browser, "alice")
    assert cookie(browser, "session") != before
    assert whoami(replay(app, session=before)) is None


# --- ending every session of a user ---------------------------------------------------------------

def test_a_password_change_ends_every_session_cookie_and_token(app, alice, admin_client):
    response = submit(admin_client, f"/admin/user/edit/?id={user_id(app, 'alice')}",
                      {"username": "alice", "email": "alice@example.com", "active": "y",
                       "new_password": "a brand new password"})
    assert response.status_code == 302
    assert everything_ended(app, alice)
    assert whoami(sign_in(app, "alice", "a brand new password")) == "alice"
    assert whoami(admin_client) == "root"


def test_deactivation_ends_everything_and_reactivation_brings_nothing_back(app, alice, admin_client):
    path = f"/admin/user/edit/?id={user_id(app, 'alice')}"
    assert submit(admin_client, path, {"username": "alice", "email": "alice@example.com"}).status_code == 302
    assert user_state(app, "alice").active is False
    assert everything_ended(app, alice)
    assert submit(admin_client, path, {"username": "alice", "email": "alice@example.com",
                                       "active": "y"}).status_code == 302
    assert everything_ended(app, alice)


def test_an_edit_without_password_or_deactivation_keeps_sessions(app, alice, admin_client):
    submit(admin_client, f"/admin/user/edit/?id={user_id(app, 'alice')}",
           {"username": "alice", "email": "alice@new.example.com", "active": "y"})
    assert whoami(alice["laptop"]) == "alice"
    assert whoami(app.test_client(), bearer(alice["token"])) == "alice"


def test_sign_out_everywhere_ends_every_session_cookie_and_token(app, alice, admin_client):
    edit = admin_client.get(f"/admin/user/edit/?id={user_id(app, 'alice')}").get_data(True)
    assert "alice is signed in on 2 browsers." in edit  # laptop and phone (a token is no browser session)
    response = post_form(admin_client, "/admin/user/sign-out-everywhere/", {"id": str(user_id(app, "alice"))},
                         follow_redirects=True)
    assert "alice was signed out everywhere" in response.get_data(True)
    assert everything_ended(app, alice)
    assert whoami(admin_client) == "root"
    assert whoami(sign_in(app, "alice")) == "alice"  # the password still works


def test_signing_yourself_out_everywhere_ends_your_own_session_too(app, make_user):
    make_user("ursula", permissions=[USERS])
    here, elsewhere = sign_in(app, "ursula"), sign_in(app, "ursula")
    response = post_form(here, "/admin/user/sign-out-everywhere/", {"id": str(user_id(app, "ursula"))})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert whoami(here) is None and whoami(elsewhere) is None


def test_sign_out_everywhere_needs_the_users_permission(app, alice, make_user):
    make_user("mallory")
    mallory = sign_in(app, "mallory")
    response = post_form(mallory, "/admin/user/sign-out-everywhere/", {"id": str(user_id(app, "alice"))})
    assert response.status_code == 403
    assert whoami(alice["laptop"]) == "alice"


@pytest.mark.parametrize("target", ["99999", "99999999999999999999", "x", ""])
def test_sign_out_everywhere_of_nobody_is_404(admin_client, target):
    assert post_form(admin_client, "/admin/user/sign-out-everywhere/", {"id": target}).status_code == 404


def test_admin_changing_his_own_password_signs_himself_out(app, make_user):
    make_user("root", roles=[ADMIN_ROLE])
    root = sign_in(app, "root")
    response = submit(root, f"/admin/user/edit/?id={user_id(app, 'root')}",
                      {"username": "root", "email": "root@example.com", "active": "y",
                       "roles": [str(role_id_by_name(app, ADMIN_ROLE))], "new_password": "another long one"})
    assert response.status_code == 302
    assert whoami(root) is None
    assert whoami(sign_in(app, "root", "another long one")) == "root"
