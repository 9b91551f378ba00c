"""Fixtures: a private redis-server, a fresh database per run, the app, client and runner."""
from __future__ import annotations

import re

import pytest
import redis as redis_lib
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.models import Role, User
from app.permissions import sync as sync_permissions
from tests.browser import browser_fixture, live_server_fixture, new_page_fixture  # noqa: F401  (one Playwright)
from tests.services import RedisServer, database_url

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A redis-server on a free port, owned by this test run."""
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """URL of a database whose schema was built by the migrations (``db upgrade``)."""
    url, drop = database_url(str(tmp_path_factory.mktemp("db")))
    app = create_app(base_config(url, None, str(tmp_path_factory.mktemp("instance"))))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    yield url
    drop()


def base_config(database_url: str, redis_url: str | None, instance_path: str) -> dict:
    """The configuration every test app starts from."""
    return {
        "TESTING": True,
        "APP_ENV": "testing",
        "SECRET_KEY": TEST_SECRET,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "INSTANCE_PATH": instance_path,
        "LOG_LEVEL": "WARNING",
        "JOBS_MODULES": "tests.jobs",
    }


def clean_database() -> None:
    """Empty every table (faster than rebuilding the schema per test)."""
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    else:
        for table in tables:
            db.session.execute(text(f'DELETE FROM "{table}"'))
    db.session.commit()


@pytest.fixture
def app_config(database, redis_server, tmp_path):
    """Configuration for the ``app`` fixture; tests may tweak it before ``app`` is built."""
    return base_config(database, redis_server.url, str(tmp_path / "instance"))


@pytest.fixture
def app(app_config, redis_server):
    """A fresh application on a clean database and an empty Redis, permissions synced."""
    redis_lib.Redis.from_url(redis_server.url).flushdb()
    application = create_app(app_config)
    with application.app_context():
        clean_database()
        sync_permissions()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client for ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for ``app``."""
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create a user, optionally with a role holding ``permissions``; returns the user id."""

    def make(username: str, password: str = "correct horse battery", permissions=(), roles=(),
             active: bool = True) -> int:
        with app.app_context():
            user = User(username=username, email=f"{username}@example.com", active=active)
            user.set_password(password)
            for role_name in roles:
                user.roles.append(Role.by_name(role_name))
            if permissions:
                from app.models import Permission

                role = Role(name=f"{username}-role")
                role.permissions = [
                    db.session.scalar(db.select(Permission).where(Permission.name == name))
                    for name in permissions
                ]
                user.roles.append(role)
            db.session.add(user)
            db.session.commit()
            return user.id

    return make


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token embedded in a rendered form."""
    match = CSRF_RE.search(html) or re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no csrf_token in page"
    return match.group(1)


@pytest.fixture
def login(client):
    """Sign ``client`` in through the real login form (with its CSRF token)."""

    def do_login(username: str, password: str = "correct horse battery", remember: bool = False):
        page = client.get("/login")
        data = {"username": username, "password": password, "csrf_token": csrf_token(page.get_data(True))}
        if remember:
            data["remember"] = "y"
        return client.post("/login", data=data)

    return do_login


@pytest.fixture
def start_worker(app_config):
    """Start real worker processes sharing the test database and Redis; all stopped at teardown."""
    from tests.workers import WorkerProcess

    started: list[WorkerProcess] = []

    def start(queues: str = "default", concurrency: int = 2, processes: bool = False, config=None, **env):
        worker = WorkerProcess(config or app_config, queues, concurrency, processes, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.alive():
            worker.kill()


def fetch(app, model, key):
    """A fresh copy of the ``model`` row with primary key ``key`` (None if absent), usable outside the app context."""
    with app.app_context():
        row = db.session.get(model, key)
        if row is not None:
            db.session.expunge(row)
        return row


def job_state(app, job_id: str) -> str | None:
    """The ledger's current state of ``job_id`` (fresh read)."""
    from tasks.ledger import Job

    job = fetch(app, Job, job_id)
    return job.state if job else None


FAULT_LINES: list[str] = []


@pytest.fixture
def fault_report():
    """Collect one summary line per fault scenario (printed at the end of the run)."""
    return FAULT_LINES.append


def pytest_terminal_summary(terminalreporter):
    """Print the fault suite's per-scenario counts."""
    if FAULT_LINES:
        terminalreporter.section("fault suite")
        for line in FAULT_LINES:
            terminalreporter.write_line(line)
