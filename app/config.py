"""Configuration read from the environment, with safe development defaults.

Every setting can be overridden by the mapping given to ``create_app(config)``;
tests use that, deployments use environment variables (twelve-factor).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production-000"
MIN_METRICS_TOKEN = 16


class ConfigError(RuntimeError):
    """Raised when the configuration is unsafe or unusable."""


#: Engine tuning read from the environment when set (seconds); defaults live in tasks.engine.Settings.
TRUE_WORDS = ("1", "true", "yes", "on")
JOB_TUNING = ("JOBS_DEAD_AFTER", "JOBS_HEARTBEAT_INTERVAL", "JOBS_SHUTDOWN_GRACE", "JOBS_RETENTION_SECONDS",
              "JOBS_RECONCILE_INTERVAL", "JOBS_RECONCILE_GRACE", "JOBS_BACKOFF_SCALE", "JOBS_MAX_ARGS_BYTES",
              "JOBS_PREFETCH_BUDGET", "JOBS_HOLD_LIMIT")


#: alert thresholds and check interval (defaults in app.alerts; 0 turns one off)
ALERT_SETTINGS = ("JOBS_ALERT_INTERVAL_SECONDS", "JOBS_ALERT_FAILURES", "JOBS_ALERT_FAILURE_WINDOW_SECONDS",
                  "JOBS_ALERT_QUEUE_WAIT_SECONDS", "JOBS_ALERT_NO_WORKER_SECONDS")


def seconds(env: Mapping[str, str], key: str) -> float:
    """``env[key]`` as a number ≥ 0; ``ConfigError`` naming the variable otherwise."""
    try:
        value = float(env[key])
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {env[key]!r}") from None
    if not value >= 0:
        raise ConfigError(f"{key} must not be negative, got {env[key]!r}")
    return value


def database_url(raw: str | None, instance_path: str) -> str:
    """Normalise ``DATABASE_URL``: Heroku's ``postgres://`` means psycopg 3 here."""
    if not raw:
        return "sqlite:///" + os.path.join(instance_path, "app.db")
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def engine_options(url: str) -> dict:
    """Pool settings: a server database gets a liveness ping per checkout (it may restart under us)."""
    return {} if url.startswith("sqlite") else {"pool_pre_ping": True}


def app_env(env: Mapping[str, str]) -> str:
    """``APP_ENV`` if set; ``production`` on a Heroku dyno; ``development`` otherwise."""
    if env.get("APP_ENV"):
        return env["APP_ENV"].lower()
    return "production" if env.get("DYNO") else "development"


def csv_list(raw: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]``; None when unset or blank."""
    items = [item.strip() for item in (raw or "").split(",") if item.strip()]
    return items or None


def hop_count(raw: str | None) -> int:
    """``TRUSTED_PROXIES``: how many proxies in front of the app set ``X-Forwarded-*`` (0 = none)."""
    try:
        hops = int(raw or 0)
    except ValueError:
        raise ConfigError(f"TRUSTED_PROXIES must be a number of proxy hops, got {raw!r}") from None
    if hops < 0:
        raise ConfigError(f"TRUSTED_PROXIES must not be negative, got {hops}")
    return hops


def from_environment(instance_path: str, env: Mapping[str, str] = os.environ) -> dict:
    """Build the configuration mapping from environment variables."""
    mode = app_env(env)
    secure_cookies = mode == "production"
    return {
        "APP_ENV": mode,
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "MAIL_URL": env.get("MAIL_URL") or None,
        "MAIL_FROM": env.get("MAIL_FROM", "jobs@localhost"),
        "ADMIN_PASSWORD": env.get("ADMIN_PASSWORD") or None,
        "ADMIN_EMAIL": env.get("ADMIN_EMAIL") or "admin@example.com",
        "JOBS_DASHBOARD_PATH": env.get("JOBS_DASHBOARD_PATH", "/hangfire").rstrip("/") or "/hangfire",
        # ABP's enableTenant: may tenant users open the dashboard (scoped to their tenant's jobs)?
        "JOBS_DASHBOARD_TENANTS": env.get("JOBS_DASHBOARD_TENANTS", "").strip().lower() in TRUE_WORDS,
        "JWT_EXPIRES": timedelta(seconds=int(env.get("JWT_EXPIRES_SECONDS", "3600"))),
        "LOGIN_THROTTLE_MAX_FAILURES": int(env.get("LOGIN_THROTTLE_MAX_FAILURES", "5")),
        "LOGIN_THROTTLE_IP_MAX_FAILURES": int(env.get("LOGIN_THROTTLE_IP_MAX_FAILURES", "20")),
        "LOGIN_THROTTLE_WINDOW": timedelta(seconds=int(env.get("LOGIN_THROTTLE_WINDOW_SECONDS", "900"))),
        "LOGIN_THROTTLE_SLOWDOWN_AFTER": int(env.get("LOGIN_THROTTLE_SLOWDOWN_AFTER", "10")),
        "LOGIN_THROTTLE_MAX_DELAY": timedelta(seconds=int(env.get("LOGIN_THROTTLE_MAX_DELAY_SECONDS", "60"))),
        "PUBLIC_URL": (env.get("PUBLIC_URL") or "").rstrip("/") or None,
        "TRUSTED_HOSTS": csv_list(env.get("TRUSTED_HOSTS")),
        "TRUSTED_PROXIES": hop_count(env.get("TRUSTED_PROXIES")),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(2 * 1024 * 1024))),
        "JSON_MAX_DEPTH": int(env.get("JSON_MAX_DEPTH", "32")),
        "SESSION_LIFETIME": timedelta(hours=float(env.get("SESSION_LIFETIME_HOURS", "12"))),
        "SESSION_COOKIE_SECURE": secure_cookies,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure_cookies,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_DURATION": timedelta(days=14),
        "WTF_CSRF_TIME_LIMIT": None,
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "LOG_FORMAT": (env.get("LOG_FORMAT") or "text").strip().lower(),
        "JOBS_MODULES": env.get("JOBS_MODULES", ""),
        "JOBS_QUEUES": env.get("JOBS_QUEUES", "email,default,reports"),
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        **{key: seconds(env, key) for key in ALERT_SETTINGS if env.get(key)},
        **{key: float(env[key]) for key in JOB_TUNING if env.get(key)},
    }


def check(config: Mapping) -> None:
    """Refuse configurations that are unsafe for their mode."""
    if config.get("APP_ENV") == "production":
        secret = config.get("SECRET_KEY") or ""
        if secret == DEV_SECRET_KEY:
            raise ConfigError("SECRET_KEY is the development default; set SECRET_KEY in production")
        if len(secret.encode()) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 bytes in production")
        if not config.get("PUBLIC_URL"):
            raise ConfigError("PUBLIC_URL must be set in production (links in emails are built from it)")
    if config.get("LOG_FORMAT", "text") not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, got {config.get('LOG_FORMAT')!r}")
    token = config.get("METRICS_TOKEN")
    if token is not None and len(token) < MIN_METRICS_TOKEN:
        raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters (a random secret)")
    public_url = config.get("PUBLIC_URL")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_URL must start with http:// or https://, got {public_url!r}")
