"""Bearer tokens: ``POST /api/token``, ``GET /api/me``, and every way a token is refused."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from app.auth.tokens import ALGORITHM, ExpiredToken, TokenError, issue_token, signing_key, verify_token
from app.extensions import db
from app.models import User
from app.permissions import HANGFIRE
from tests.conftest import TEST_SECRET
from tests.helpers.web import PASSWORD, bearer


def request_token(client, username, password=PASSWORD, **headers):
    """``POST /api/token`` with JSON credentials."""
    return client.post("/api/token", json={"username": username, "password": password}, headers=headers)


def signed(claims: dict, key: bytes | str = TEST_SECRET, algorithm: str = ALGORITHM) -> str:
    """A token with ``claims`` signed by ``key`` (the app's secret by default)."""
    return jwt.encode(claims, key, algorithm=algorithm)


def claims_for(user_id: int, issued: datetime | None = None, lifetime=timedelta(hours=1), **extra) -> dict:
    """Standard access-token claims for ``user_id``."""
    issued = issued or datetime.now(timezone.utc)
    return {"sub": str(user_id), "iat": issued, "exp": issued + lifetime, "type": "access", "sst": "a-stamp",
            **extra}


def b64url(data: dict) -> str:
    """Base64url-encoded JSON without padding (a JWT segment)."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_refused(response, reason: str) -> None:
    """A 401 JSON answer with ``reason``, a bearer challenge and no cookie."""
    assert response.status_code == 401
    assert response.get_json() == {"error": reason}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Set-Cookie" not in response.headers


@pytest.fixture
def alice(make_user) -> int:
    """An active user holding the Hangfire permission; returns the id."""
    return make_user("alice", permissions=[HANGFIRE])


# -- POST /api/token --------------------------------------------------------------------------

def test_token_issued_for_good_credentials(app, client, alice):
    response = request_token(client, "alice")
    body = response.get_json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        assert verify_token(body["access_token"]) == alice


def test_token_claims(client, alice):
    token = request_token(client, "alice").get_json()["access_token"]
    claims = jwt.decode(token, TEST_SECRET, algorithms=[ALGORITHM])
    assert claims["sub"] == str(alice) and claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_token_request_by_email(client, alice):
    assert request_token(client, "Alice@Example.com").status_code == 200


def test_token_request_updates_last_login_at(app, client, alice):
    request_token(client, "alice")
    with app.app_context():
        assert db.session.get(User, alice).last_login_at is not None


@pytest.mark.parametrize("username, password", [("alice", "wrong"), ("nobody", PASSWORD)])
def test_token_refused_for_bad_credentials(client, alice, username, password):
    response = request_token(client, username, password)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Invalid username or password"}


def test_token_refused_for_inactive_user(client, make_user):
    make_user("dormant", active=False)
    assert request_token(client, "dormant").status_code == 401


@pytest.mark.parametrize("body, error", [
    ({"password": PASSWORD}, "missing field: username"),
    ({"username": "alice"}, "missing field: password"),
    ({"username": "", "password": PASSWORD}, "missing field: username"),
    ({"username": "alice", "password": 123}, "password must be a string"),
    ({"username": ["alice"], "password": PASSWORD}, "username must be a string"),
    ({"username": "a" * 256, "password": PASSWORD}, "username is longer than 255 characters"),
    (["alice", PASSWORD], 'expected a JSON object with "username" and "password"'),
])
def test_token_request_with_bad_fields(client, alice, body, error):
    response = client.post("/api/token", json=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": error}


@pytest.mark.parametrize("kwargs", [
    {"data": "not json", "content_type": "application/json"},
    {"data": "{\"username\": \"alice\",", "content_type": "application/json"},
    {"data": {"username": "alice", "password": PASSWORD}},
    {"data": ""},
])
def test_token_request_that_is_not_json(client, alice, kwargs):
    response = client.post("/api/token", **kwargs)
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("invalid JSON")


@pytest.fixture
def two_failures_lock(app_config):
    """Two failures lock an account."""
    app_config["LOGIN_THROTTLE_MAX_FAILURES"] = 2


def test_token_requests_are_throttled(two_failures_lock, client, make_user):
    make_user("alice")
    request_token(client, "alice", "wrong")
    request_token(client, "alice", "wrong")
    response = request_token(client, "alice")
    assert response.status_code == 429
    assert response.get_json()["error"].startswith("Too many failed sign-ins; try again in")
    assert int(response.headers["Retry-After"]) > 0


def test_token_and_form_share_the_throttle(two_failures_lock, client, make_user, login):
    make_user("alice")
    request_token(client, "alice", "wrong")
    login("alice", "wrong")
    assert login("alice").status_code == 429


# -- GET /api/me with a bearer token ----------------------------------------------------------

def test_me_with_bearer_token(client, alice):
    token = request_token(client, "alice").get_json()["access_token"]
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {
        "id": alice, "username": "alice", "email": "alice@example.com", "tenant": None,
        "permissions": [HANGFIRE],
    }
    assert "Set-Cookie" not in response.headers
    assert "Authorization" in response.headers.get("Vary", "")


def test_me_with_session(client, alice, login):
    login("alice")
    response = client.get("/api/me")
    assert response.status_code == 200 and response.get_json()["username"] == "alice"


def test_bearer_request_never_sets_cookies_even_when_session_is_touched(client, alice):
    token = request_token(client, "alice").get_json()["access_token"]
    page = client.get("/login", headers=bearer(token))  # renders a CSRF token into the session
    assert "Set-Cookie" not in page.headers
    assert client.get_cookie("session") is None


def test_bearer_token_wins_over_session_and_remember_cookie(client, make_user, login):
    make_user("alice")
    make_user("bob")
    login("alice", remember=True)
    token = request_token(client, "bob").get_json()["access_token"]
    response = client.get("/api/me", headers=bearer(token))
    assert response.get_json()["username"] == "bob"
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/me").get_json()["username"] == "alice"


def test_bad_bearer_token_not_rescued_by_session(client, alice, login):
    login("alice")
    assert_refused(client.get("/api/me", headers=bearer("garbage")), "invalid token")


def test_expired_token_refused(client, alice):
    long_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    expired = signed(claims_for(alice, long_ago))
    assert_refused(client.get("/api/me", headers=bearer(expired)), "token expired")


def test_bad_signature_refused(client, alice):
    forged = signed(claims_for(alice), key="another-secret-key-that-is-long-enough-0123456789")
    assert_refused(client.get("/api/me", headers=bearer(forged)), "invalid token")


def test_tampered_payload_refused(client, alice, make_user):
    """Mallory's genuine token with the subject changed to Alice's id."""
    make_user("mallory")
    header, payload, signature = request_token(client, "mallory").get_json()["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = ".".join([header, b64url(claims | {"sub": str(alice)}), signature])
    assert_refused(client.get("/api/me", headers=bearer(tampered)), "invalid token")


def test_alg_none_token_refused(client, alice):
    now = int(datetime.now(timezone.utc).timestamp())
    payload = {"sub": str(alice), "iat": now, "exp": now + 3600, "type": "access"}
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(payload)}."
    assert_refused(client.get("/api/me", headers=bearer(unsigned)), "invalid token")


def test_other_algorithm_refused(client, alice):
    token = signed(claims_for(alice), key=TEST_SECRET * 2, algorithm="HS512")
    assert_refused(client.get("/api/me", headers=bearer(token)), "invalid token")


@pytest.mark.parametrize("drop", ["exp", "sub", "iat", "sst"])
def test_token_missing_required_claim_refused(client, alice, drop):
    claims = claims_for(alice)
    del claims[drop]
    assert_refused(client.get("/api/me", headers=bearer(signed(claims))), "invalid token")


@pytest.mark.parametrize("extra", [{"type": "refresh"}, {"sub": "not-a-number"}])
def test_token_with_wrong_type_or_subject_refused(client, alice, extra):
    assert_refused(client.get("/api/me", headers=bearer(signed(claims_for(alice) | extra))), "invalid token")


def test_token_for_inactive_user_refused(app, client, alice):
    token = request_token(client, "alice").get_json()["access_token"]
    with app.app_context():
        db.session.get(User, alice).active = False
        db.session.commit()
    assert_refused(client.get("/api/me", headers=bearer(token)), "account disabled")


def test_token_for_deleted_user_refused(app, client, alice):
    token = request_token(client, "alice").get_json()["access_token"]
    with app.app_context():
        db.session.delete(db.session.get(User, alice))
        db.session.commit()
    assert_refused(client.get("/api/me", headers=bearer(token)), "invalid token")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer not.a.jwt"])
def test_empty_or_malformed_bearer_refused(client, alice, header):
    assert_refused(client.get("/api/me", headers={"Authorization": header}), "invalid token")


def test_bad_token_refused_on_any_route(client):
    assert_refused(client.get("/login", headers=bearer("garbage")), "invalid token")


@pytest.fixture
def no_csrf(app_config):
    """CSRF off, so a form post carrying a bearer token reaches the sign-in itself (a bearer
    request's session is empty, so it never holds the CSRF token the form needs)."""
    app_config["WTF_CSRF_ENABLED"] = False


def test_bearer_request_cannot_sign_in_through_form(no_csrf, client, alice):
    """A bearer request's session is never saved, so the form's sign-in cannot stick."""
    token = request_token(client, "alice").get_json()["access_token"]
    response = client.post("/login", data={"username": "alice", "password": PASSWORD}, headers=bearer(token))
    assert response.status_code == 302  # the sign-in itself succeeded...
    assert "Set-Cookie" not in response.headers  # ...but no session or remember cookie was sent
    assert client.get_cookie("session") is None
    assert client.get("/api/me").status_code == 401


# -- the token functions ----------------------------------------------------------------------

def test_issue_and_verify_round_trip(app, alice):
    with app.app_context():
        token, expires_in = issue_token(db.session.get(User, alice))
        assert verify_token(token) == alice and expires_in == 3600


def test_lifetime_follows_config(app, alice):
    app.config["JWT_EXPIRES"] = timedelta(minutes=5)
    with app.app_context():
        token, expires_in = issue_token(db.session.get(User, alice))
    claims = jwt.decode(token, TEST_SECRET, algorithms=[ALGORITHM])
    assert expires_in == 300 and claims["exp"] - claims["iat"] == 300


def test_verify_raises_typed_errors(app, alice):
    long_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    with app.app_context():
        with pytest.raises(ExpiredToken):
            verify_token(signed(claims_for(alice, long_ago)))
        with pytest.raises(TokenError):
            verify_token("not a token")


def test_short_secret_is_stretched_without_warnings(app, alice):
    """Under filterwarnings=error a short HMAC key would fail; the derived key is 32 bytes."""
    app.config["SECRET_KEY"] = "short dev secret"
    with app.app_context():
        token, _ = issue_token(db.session.get(User, alice))
        assert verify_token(token) == alice
    key = signing_key("short dev secret")
    assert len(key) == 32 and key != b"short dev secret"
    assert signing_key(TEST_SECRET) == TEST_SECRET.encode()
