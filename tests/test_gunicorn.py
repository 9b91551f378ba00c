"""One live run under gunicorn, started exactly as the Procfile's ``web:`` line starts it, in production
mode behind one trusted proxy hop (``TRUSTED_PROXIES=1``, as app.json sets for Heroku's router).
"""
from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from tests.helpers.web import PASSWORD, csrf_token
from tests.services import free_port
from tests.workers import ROOT, wait_for, worker_env

pytestmark = pytest.mark.slow

HOST = "jobs.example.com"


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's ``web:`` command with ``$PORT`` filled in."""
    with open(os.path.join(ROOT, "Procfile")) as fh:
        line = next(line for line in fh if line.startswith("web:"))
    command = line.split(":", 1)[1].strip().replace("${PORT:-5000}", str(port))
    return shlex.split(command)


class Site:
    """Plain HTTP requests to the gunicorn server, as Heroku's router forwards them."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, *, client: str = "203.0.113.9", host: str = HOST,
                cookie: str = "", form: dict | None = None) -> http.client.HTTPResponse:
        """One request from ``client`` (its X-Forwarded-For), over "https" (X-Forwarded-Proto)."""
        headers = {"Host": host, "X-Forwarded-For": client, "X-Forwarded-Proto": "https",
                   "X-Forwarded-Port": "443", "Referer": f"https://{HOST}/login"}
        body = None
        if cookie:
            headers["Cookie"] = cookie
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.text = response.read().decode()
        connection.close()
        return response

    def sign_in(self, username: str, password: str, client: str) -> int:
        """Post the login form (with its CSRF token and session cookie) from ``client``; the status."""
        page = self.request("GET", "/login", client=client)
        cookie = re.search(r"session=([^;]+)", page.getheader("Set-Cookie")).group(1)
        response = self.request("POST", "/login", client=client, cookie=f"session={cookie}",
                                form={"username": username, "password": password,
                                      "csrf_token": csrf_token(page.text)})
        return response.status


@pytest.fixture
def gunicorn(app_config, make_user):
    """gunicorn serving the test database in production mode behind one trusted proxy."""
    port = free_port()
    env = worker_env(app_config, APP_ENV="production", PUBLIC_URL=f"https://{HOST}", TRUSTED_PROXIES="1",
                     TRUSTED_HOSTS=HOST, LOGIN_THROTTLE_IP_MAX_FAILURES="3", WEB_CONCURRENCY="2",
                     PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    log = open(os.path.join(app_config["INSTANCE_PATH"], "gunicorn.log"), "wb")
    process = subprocess.Popen(procfile_web_command(port), cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    site = Site(port)

    def ready() -> bool:
        try:
            return site.request("GET", "/healthz").status == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60, message="gunicorn answered /healthz")
        yield site
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()


def test_gunicorn_behind_one_trusted_proxy(gunicorn, make_user):
    make_user("alice")
    page = gunicorn.request("GET", "/login")
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
    assert "'nonce-" in page.getheader("Content-Security-Policy")
    assert page.getheader("X-Frame-Options") == "DENY"
    assert "Secure" in page.getheader("Set-Cookie")  # production cookies, the router speaks HTTPS

    assert gunicorn.request("GET", "/login", host="evil.example").status == 400  # TRUSTED_HOSTS

    # the throttle charges the address the router forwarded, not the router's own
    for _ in range(3):
        assert gunicorn.sign_in("nobody", "wrong", client="203.0.113.9") == 200
    assert gunicorn.sign_in("alice", PASSWORD, client="203.0.113.9") == 429
    assert gunicorn.sign_in("alice", PASSWORD, client="198.51.100.4") == 302
