"""Configuration from the environment, the safety checks, and the factory applying them."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest

from app import create_app
from app.config import DEV_SECRET_KEY, ConfigError, check, database_url, from_environment
from tests.conftest import TEST_SECRET
from tests.helpers.web import csrf_token

LONG_SECRET = "a-production-secret-that-is-comfortably-over-32-bytes"


@pytest.fixture
def clean_environ(monkeypatch):
    """No configuration variables inherited from the shell running the tests."""
    for name in ("APP_ENV", "DYNO", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "JOBS_DASHBOARD_PATH",
                 "PUBLIC_URL", "TRUSTED_HOSTS", "TRUSTED_PROXIES", "MAX_CONTENT_LENGTH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- DATABASE_URL -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("postgres://u:p@db.example.com:5432/app", "postgresql+psycopg://u:p@db.example.com:5432/app"),
    ("postgresql://u@localhost/app", "postgresql+psycopg://u@localhost/app"),
    ("postgresql+psycopg://u@localhost/app", "postgresql+psycopg://u@localhost/app"),
    ("sqlite:////var/data/app.db", "sqlite:////var/data/app.db"),
])
def test_database_url_normalised(raw, expected):
    assert database_url(raw, "/instance") == expected


def test_database_url_defaults_to_sqlite_in_instance(tmp_path):
    assert database_url(None, str(tmp_path)) == "sqlite:///" + os.path.join(str(tmp_path), "app.db")


# -- modes and defaults -----------------------------------------------------------------------

def test_development_defaults(tmp_path):
    config = from_environment(str(tmp_path), env={})
    assert config["APP_ENV"] == "development"
    assert config["SECRET_KEY"] == DEV_SECRET_KEY
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["REDIS_URL"] is None
    assert config["JOBS_DASHBOARD_PATH"] == "/hangfire"
    assert config["JWT_EXPIRES"] == timedelta(hours=1)
    assert config["LOGIN_THROTTLE_MAX_FAILURES"] == 5
    assert config["LOGIN_THROTTLE_IP_MAX_FAILURES"] == 20
    assert config["LOGIN_THROTTLE_WINDOW"] == timedelta(minutes=15)
    assert config["SESSION_COOKIE_SECURE"] is False and config["REMEMBER_COOKIE_SECURE"] is False
    assert config["PUBLIC_URL"] is None and config["TRUSTED_HOSTS"] is None
    assert config["TRUSTED_PROXIES"] == 0
    assert config["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024
    assert config["LOGIN_THROTTLE_SLOWDOWN_AFTER"] == 10
    assert config["LOGIN_THROTTLE_MAX_DELAY"] == timedelta(minutes=1)
    check(config)  # the development secret is fine in development


def test_environment_values_are_parsed(tmp_path):
    config = from_environment(str(tmp_path), env={
        "APP_ENV": "Staging",
        "SECRET_KEY": LONG_SECRET,
        "DATABASE_URL": "postgres://u@db/app",
        "REDIS_URL": "rediss://cache:6380/0",
        "JOBS_DASHBOARD_PATH": "/ops/jobs/",
        "JWT_EXPIRES_SECONDS": "600",
        "LOGIN_THROTTLE_MAX_FAILURES": "7",
        "LOGIN_THROTTLE_IP_MAX_FAILURES": "70",
        "LOGIN_THROTTLE_WINDOW_SECONDS": "60",
        "LOGIN_THROTTLE_SLOWDOWN_AFTER": "3",
        "LOGIN_THROTTLE_MAX_DELAY_SECONDS": "9",
        "PUBLIC_URL": "https://jobs.example.com/",
        "TRUSTED_HOSTS": "jobs.example.com, .example.org",
        "TRUSTED_PROXIES": "2",
        "MAX_CONTENT_LENGTH": "1000",
    })
    assert config["APP_ENV"] == "staging"
    assert config["SECRET_KEY"] == LONG_SECRET
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/app"
    assert config["REDIS_URL"] == "rediss://cache:6380/0"
    assert config["JOBS_DASHBOARD_PATH"] == "/ops/jobs"
    assert config["JWT_EXPIRES"] == timedelta(minutes=10)
    assert (config["LOGIN_THROTTLE_MAX_FAILURES"], config["LOGIN_THROTTLE_IP_MAX_FAILURES"]) == (7, 70)
    assert config["LOGIN_THROTTLE_WINDOW"] == timedelta(minutes=1)
    assert config["LOGIN_THROTTLE_SLOWDOWN_AFTER"] == 3
    assert config["LOGIN_THROTTLE_MAX_DELAY"] == timedelta(seconds=9)
    assert config["PUBLIC_URL"] == "https://jobs.example.com"
    assert config["TRUSTED_HOSTS"] == ["jobs.example.com", ".example.org"]
    assert (config["TRUSTED_PROXIES"], config["MAX_CONTENT_LENGTH"]) == (2, 1000)


def test_heroku_dyno_means_production(tmp_path):
    assert from_environment(str(tmp_path), env={"DYNO": "web.1"})["APP_ENV"] == "production"


def test_production_cookie_flags(tmp_path):
    config = from_environment(str(tmp_path), env={
        "APP_ENV": "production", "SECRET_KEY": LONG_SECRET, "PUBLIC_URL": "https://jobs.example.com"})
    for prefix in ("SESSION_COOKIE_", "REMEMBER_COOKIE_"):
        assert config[prefix + "SECURE"] is True
        assert config[prefix + "HTTPONLY"] is True
        assert config[prefix + "SAMESITE"] == "Lax"
    check(config)


# -- refusing unsafe production configurations ------------------------------------------------

@pytest.mark.parametrize("secret", [DEV_SECRET_KEY, "too-short-secret", ""])
def test_production_refuses_unsafe_secret(secret):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        check({"APP_ENV": "production", "SECRET_KEY": secret, "PUBLIC_URL": "https://jobs.example.com"})


def test_production_requires_public_url():
    with pytest.raises(ConfigError, match="PUBLIC_URL must be set"):
        check({"APP_ENV": "production", "SECRET_KEY": LONG_SECRET})
    check({"APP_ENV": "production", "SECRET_KEY": LONG_SECRET, "PUBLIC_URL": "https://jobs.example.com"})


@pytest.mark.parametrize("url", ["jobs.example.com", "//jobs.example.com", "ftp://jobs.example.com"])
def test_public_url_needs_a_web_scheme(url):
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        check({"APP_ENV": "development", "PUBLIC_URL": url})


@pytest.mark.parametrize("hops", ["one", "-1", "1.5"])
def test_trusted_proxies_is_a_hop_count(tmp_path, hops):
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        from_environment(str(tmp_path), env={"TRUSTED_PROXIES": hops})


@pytest.mark.parametrize("secret", [DEV_SECRET_KEY, "x" * 31])
def test_factory_refuses_unsafe_production_secret(clean_environ, tmp_path, secret):
    with pytest.raises(ConfigError):
        create_app({"APP_ENV": "production", "SECRET_KEY": secret, "INSTANCE_PATH": str(tmp_path)})


def test_factory_refuses_dev_secret_from_environment(clean_environ, tmp_path):
    clean_environ.setenv("DYNO", "web.1")
    with pytest.raises(ConfigError, match="development default"):
        create_app({"INSTANCE_PATH": str(tmp_path)})


def test_factory_overrides_win_over_environment(clean_environ, tmp_path):
    clean_environ.setenv("JWT_EXPIRES_SECONDS", "60")
    app = create_app({"INSTANCE_PATH": str(tmp_path), "JWT_EXPIRES": timedelta(seconds=5)})
    assert app.config["JWT_EXPIRES"] == timedelta(seconds=5)
    assert app.config["APP_ENV"] == "development"


@pytest.fixture
def production_app(clean_environ, app_config, request):
    """The test app built in production mode (secure cookies) with a long secret."""
    clean_environ.setenv("APP_ENV", "production")
    app_config["APP_ENV"] = "production"
    app_config["PUBLIC_URL"] = "https://jobs.example.com"
    assert len(TEST_SECRET) >= 32
    return request.getfixturevalue("app")


def test_production_app_sets_secure_cookies(production_app, make_user):
    make_user("alice")
    client = production_app.test_client()
    site = "https://jobs.example.com"
    page = client.get("/login", base_url=site)
    data = {"username": "alice", "password": "correct horse battery", "remember": "y",
            "csrf_token": csrf_token(page.get_data(True))}
    # Flask-WTF checks the Referer on HTTPS, as a browser would send it.
    response = client.post("/login", data=data, base_url=site, headers={"Referer": site + "/login"})
    cookies = {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}
    assert set(cookies) == {"session", "remember_token"}
    for header in cookies.values():
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header
