"""Witnesses and faults for the fault suite: the jobs' own files, and a database that refuses work."""
from __future__ import annotations

import os
import sqlite3
from collections import Counter

from sqlalchemy import text


def lines(app, name: str) -> list[str]:
    """The non-empty lines of the file ``name`` in the instance folder (none if it is missing)."""
    path = os.path.join(app.instance_path, name)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [line.strip() for line in fh if line.strip()]


def completed_runs(app) -> Counter:
    """How many times each job id ran to completion (the jobs' own tally file)."""
    return Counter(lines(app, "tally.log"))


def starts(app) -> list[tuple[str, int]]:
    """(job id, worker pid) for every run that started."""
    return [(job_id, int(pid)) for job_id, pid in (line.split() for line in lines(app, "starts.log"))]


def running_on(app, pid: int) -> list[str]:
    """Jobs that started in process ``pid`` (or its children) and have not completed."""
    done = completed_runs(app)
    return [job_id for job_id, started_in in starts(app) if started_in == pid and not done.get(job_id)]


class DatabaseOutage:
    """Make the test database refuse work: PostgreSQL refuses connections, SQLite is locked."""

    def __init__(self, engine):
        self.engine = engine
        self.holder = None

    def begin(self) -> None:
        if self.engine.dialect.name == "postgresql":
            name = self.engine.url.database
            with self.admin() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        else:
            self.holder = sqlite3.connect(self.engine.url.database, isolation_level=None,
                                          check_same_thread=False)
            self.holder.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.engine.dialect.name == "postgresql":
            with self.admin() as conn:
                conn.execute(text(f'ALTER DATABASE "{self.engine.url.database}" WITH ALLOW_CONNECTIONS true'))
            self.engine.dispose()
        else:
            self.holder.execute("ROLLBACK")
            self.holder.close()

    def admin(self):
        from sqlalchemy import create_engine

        url = self.engine.url.set(database="postgres")
        return create_engine(url, isolation_level="AUTOCOMMIT").connect()
