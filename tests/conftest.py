"""Fixtures: a private redis-server, a fresh database per run, the app, client and runner."""
from __future__ import annotations

import collections
import os
import signal
import time

import pytest
import redis as redis_lib
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.models import Role, User
from app.models import sync_permissions
from app.permissions import ADMIN_ROLE, HANGFIRE, HANGFIRE_READ_ONLY, USERS
from tests.helpers.accounts import make_role
from tests.helpers.ledger import enqueue, failed_job
from tests.helpers.web import PASSWORD, bearer_token, post_login, sign_in
from tests.services import RedisServer, SmtpServer, database_url

pytest_plugins = ["tests.browser"]  # the live server and one Chromium for the whole run

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
        "JOBS_ALERT_INTERVAL_SECONDS": 0,  # no alert emails unless a test turns the check on
        # scrypt at a cost of 2**10, not Werkzeug's 2**15: the default costs ~120 ms of CPU per hash,
        # minutes over a suite that signs thousands of people in
        "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
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
def app_config(request, database, redis_server, tmp_path):
    """Configuration for the ``app`` fixture; tests may tweak it before ``app`` is built.

    Browser tests refresh the dashboard's live parts every second, to watch changes quickly.
    """
    config = base_config(database, redis_server.url, str(tmp_path / "instance"))
    if request.node.get_closest_marker("browser"):
        config["JOBS_DASHBOARD_REFRESH_SECONDS"] = 1
    return config


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

    def make(username: str, password: str = PASSWORD, permissions=(), roles=(),
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


@pytest.fixture
def login(client):
    """Sign ``client`` in through the real login form (with its CSRF token)."""

    def do_login(username: str, password: str = PASSWORD, remember: bool = False):
        return post_login(client, username, password, remember=remember)

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
    stop_all(started)


def stop_all(workers, grace: float = 3.0) -> None:
    """Under coverage (``make test``): SIGTERM every live worker at once, so each exits through its own
    shutdown and coverage saves what it ran; whichever still runs ``grace`` seconds later (a job still
    sleeping) is killed. Otherwise kill them straight away (the quickest teardown)."""
    running = [worker for worker in workers if worker.alive()]
    if not (os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START")):
        for worker in running:
            worker.kill()
        return
    for worker in running:
        worker.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for worker in running:
        worker.stop(timeout=max(0.1, deadline - time.monotonic()))


# --- people and jobs many modules arrange -------------------------------------------------------

@pytest.fixture
def admin_client(app, make_user):
    """A client signed in as ``root``, a member of the Admin role (every permission)."""
    make_user("root", roles=[ADMIN_ROLE])
    return sign_in(app, "root")


USERS_BY_KIND = {"full": [HANGFIRE], "read_only": [HANGFIRE_READ_ONLY], "no_permission": [USERS]}


@pytest.fixture
def people(app, make_user):
    """Signed-in clients: ``full``, ``read_only``, ``no_permission``; ``anonymous`` is a fresh client."""
    clients = {"anonymous": app.test_client()}
    for kind, permissions in USERS_BY_KIND.items():
        make_user(kind, permissions=permissions)
        clients[kind] = sign_in(app, kind)
    return clients


@pytest.fixture
def bearer(app, make_user):
    """Bearer-token callers ``full``, ``read_only``, ``outsider`` (no dashboard permission):
    ``bearer(kind, method, url, **kwargs)`` makes one request on a fresh, cookie-less client."""
    make_user("tom", permissions=[HANGFIRE])
    make_user("rob", permissions=[HANGFIRE_READ_ONLY])
    make_user("otto")
    client = app.test_client()
    headers = {kind: {"Authorization": f"Bearer {bearer_token(client, name)}"}
               for kind, name in (("full", "tom"), ("read_only", "rob"), ("outsider", "otto"))}

    def call(kind: str, method: str, url: str, **kwargs):
        return getattr(app.test_client(), method)(url, headers=headers[kind], **kwargs)

    return call


@pytest.fixture
def operator(app, make_user):
    """A user whose role holds "Hangfire Dashboard"; returns the username."""
    make_role(app, "Operators", permissions=[HANGFIRE])
    make_user("olivia", roles=["Operators"])
    return "olivia"


@pytest.fixture
def jobs(app):
    """One job per interesting state: enqueued, scheduled, failed (two)."""
    return {
        "enqueued": enqueue(app, args=(1,)),
        "scheduled": enqueue(app, args=(2,), delay=3600),
        "failed": failed_job(app, message="kaput"),
        "failed2": failed_job(app, task="demo.fail", args=("second",), message="second failure"),
    }


NIGHTLY = "tests.nightly"


@pytest.fixture
def nightly(app):
    """A recurring job declared in code (03:00 London time) and synced to the ledger; returns its id."""
    from tasks import recurring
    from tests.jobs import recurring_tick

    recurring.recurring(NIGHTLY, cron="0 3 * * *", tz="Europe/London")(recurring_tick)
    with app.app_context():
        recurring.sync()
    yield NIGHTLY
    recurring.DEFINITIONS.pop(NIGHTLY, None)


@pytest.fixture
def smtp_server():
    """A running SMTP server (aiosmtpd; no TLS, no auth) on a free port."""
    with SmtpServer() as server:
        yield server


# --- the run's own report ----------------------------------------------------------------------

FAULT_LINES: list[str] = []
EXECUTED: collections.Counter = collections.Counter()  # tests run (not skipped) per marker, "" = all
MISSING: list[str] = []  # why this run fails although no test did


def pytest_addoption(parser):
    """``--require-markers``: markers of which at least one test must run (CI sets it by default)."""
    parser.addoption("--require-markers", default=None,
                     help="comma-separated markers that must each run at least one test; default in CI "
                          "(CI set): browser,fault, plus postgres when TEST_DATABASE_URL is set")


def required_markers(config) -> list[str]:
    """Markers this run must exercise: explicit, or CI's default."""
    option = config.getoption("--require-markers")
    if option is not None:
        return [m.strip() for m in option.split(",") if m.strip()]
    if not os.environ.get("CI"):
        return []
    return ["browser", "fault"] + (["postgres"] if os.environ.get("TEST_DATABASE_URL") else [])


def pytest_collection_modifyitems(items):
    """Tests that start real worker processes (the ``start_worker`` fixture) get the ``worker`` marker, so
    the fast tier (``make test-fast``) can leave them out."""
    for item in items:
        if "start_worker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.worker)


def pytest_runtest_setup(item):
    """PostgreSQL-only tests skip on SQLite (and must run on the PostgreSQL leg of CI)."""
    if "postgres" in item.keywords and not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL)")


def pytest_runtest_logreport(report):
    """Count tests that really ran (a skip in setup or call doesn't count)."""
    if report.when == "call" and not report.skipped:
        EXECUTED[""] += 1
        for marker in ("browser", "fault", "postgres", "slow"):
            if marker in report.keywords:
                EXECUTED[marker] += 1


def pytest_sessionfinish(session, exitstatus):
    """Fail a run that skipped everything, or that ran no test of a required marker."""
    if session.testscollected == 0 or exitstatus not in (0, 1) or session.config.option.collectonly:
        return
    problems = [] if EXECUTED[""] else ["every collected test was skipped"]
    problems += [f"no '{m}' test ran (all skipped or deselected)" for m in required_markers(session.config)
                 if not EXECUTED[m]]
    if problems:
        session.exitstatus = 1
        MISSING.extend(problems)


@pytest.fixture
def fault_report():
    """Collect one summary line per fault scenario (printed at the end of the run)."""
    return FAULT_LINES.append


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    """Print the fault suite's per-scenario counts, and why a run without failures still fails."""
    if FAULT_LINES:
        terminalreporter.section("fault suite")
        for line in FAULT_LINES:
            terminalreporter.write_line(line)
    if MISSING:
        terminalreporter.section("required tests missing: this run FAILS", red=True)
        for problem in MISSING:
            terminalreporter.write_line(problem, red=True)
