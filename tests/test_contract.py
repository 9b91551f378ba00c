"""Contract fuzzing: schemathesis against the served OpenAPI description of a live gunicorn server.

The server runs as the Procfile's ``web:`` line starts it, on the test database (SQLite, or
PostgreSQL with ``TEST_DATABASE_URL``) and the test Redis, seeded with jobs in several states, a
recurring job and a ready report. schemathesis reads ``/hangfire/api/openapi.json`` with a real
bearer token of an admin and calls every operation with generated requests; the run passes when
no answer is a server error and every answer has a documented status and matches its schema.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from app.permissions import ADMIN_ROLE
from tests.helpers.web import bearer_token
from tests.services import free_port
from tests.test_gunicorn import procfile_web_command
from tests.test_reports import ready_report
from tests.workers import ROOT, wait_for, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # about 2-4 minutes of fuzzing

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
EXAMPLES_PER_OPERATION = "20"
SPEC_PATH = "/hangfire/api/openapi.json"


def answers(port: int, path: str) -> bool:
    """True once the server answers ``path`` at all."""
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status < 500
    except OSError:
        return False


@pytest.fixture
def served_api(app_config):
    """gunicorn serving the test database and Redis; yields its base URL."""
    port = free_port()
    env = worker_env(app_config, WEB_CONCURRENCY="2", LOG_FORMAT="json",
                     LOGIN_THROTTLE_IP_MAX_FAILURES="1000", LOGIN_THROTTLE_MAX_FAILURES="1000",
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    log_path = os.path.join(app_config["INSTANCE_PATH"], "gunicorn-contract.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(procfile_web_command(port), cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: answers(port, "/healthz"), timeout=60, message="gunicorn answered /healthz")
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        output = fh.read()
    assert "Traceback" not in output, f"the server logged a traceback: see {log_path}"
    access = [json.loads(line) for line in output.splitlines() if "/healthz" in line]
    assert access and all(line["logger"] == "gunicorn.access" for line in access)  # JSON access lines


def test_the_api_keeps_its_contract_under_fuzzing(app, make_user, jobs, nightly, served_api):
    user_id = make_user("root", roles=[ADMIN_ROLE])
    ready_report(app, user_id, "day,jobs\n2026-12-01,3\n")
    token = bearer_token(app.test_client(), "root")
    command = [os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run", served_api + SPEC_PATH,
               "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "-n", EXAMPLES_PER_OPERATION,
               "--seed", "1"]
    result = subprocess.run(command, cwd=app.instance_path, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    summary = result.stdout[-6000:] + result.stderr[-2000:]
    print(summary)  # the schemathesis summary, shown with -s (and in the report of a failure)
    assert result.returncode == 0, summary
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", result.stdout).groups())
    assert selected == total == int(re.search(r"Tested: (\d+)", result.stdout)[1]) >= 20, summary
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", result.stdout).groups())
    assert generated == passed > 0, summary
