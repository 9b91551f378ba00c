"""Real services for the suite: a private redis-server, a database per run, an SMTP server."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

import redis
from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server process owned by the tests, so they may kill and restart it."""

    def __init__(self, directory: str, port: int | None = None):
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start (or restart) the server on the same port, without persistence."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL when ``kill``)."""
        if self.process and self.process.poll() is None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(10)
        self.process = None


def database_url(tmpdir: str) -> tuple[str, callable]:
    """A fresh database for this run: PostgreSQL from ``TEST_DATABASE_URL`` or a SQLite file.

    Returns the SQLAlchemy URL and a function that drops the database afterwards.
    """
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        return "sqlite:///" + os.path.join(tmpdir, "test.db"), lambda: None
    import psycopg

    base = (base.replace("postgres://", "postgresql://", 1)
            .replace("postgresql+psycopg://", "postgresql://", 1))
    name = "test_" + uuid.uuid4().hex[:12]
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name, drop


# --- a real SMTP server in the test process ----------------------------------------------------

class Inbox:
    """aiosmtpd handler keeping every accepted message (parsed) with its envelope and session facts."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content,
                                                policy=policy.default))
        self.envelopes.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                               "tls": session.ssl is not None,
                               "login": getattr(session.auth_data, "login", None)})
        return "250 Message accepted"


class SmtpServer:
    """An aiosmtpd server on a fixed port that tests may start late, stop and restart."""

    def __init__(self, port: int | None = None, **options):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.options = options
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    def start(self) -> "SmtpServer":
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def wait_for_messages(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        from tests.workers import wait_for

        wait_for(lambda: len(self.inbox.messages) >= count, timeout, message=f"{count} message(s) over SMTP")
        return self.inbox.messages
