"""Real worker processes for the tests: ``flask --app wsgi jobs worker`` in a subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker_env(config: dict, **extra: str) -> dict:
    """Environment for a worker process that shares the test app's database and transport."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update({
        "APP_ENV": "testing", "SECRET_KEY": config["SECRET_KEY"],
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "INSTANCE_PATH": config["INSTANCE_PATH"],
        "JOBS_MODULES": config.get("JOBS_MODULES", ""), "LOG_LEVEL": "WARNING", "PYTHONPATH": ROOT,
    })
    env.update({key: str(value) for key, value in config.items()
                if key.startswith("JOBS_") and isinstance(value, (str, int, float))})
    if config.get("REDIS_URL"):
        env["REDIS_URL"] = config["REDIS_URL"]
    env.update(extra)
    return env


class WorkerProcess:
    """One ``jobs worker`` process."""

    def __init__(self, config: dict, queues: str = "default", concurrency: int = 2, processes: bool = False,
                 log_path: str | None = None, **env: str):
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--queues", queues,
                   "--concurrency", str(concurrency)] + (["--processes"] if processes else [])
        self.log_path = log_path or os.path.join(config["INSTANCE_PATH"], f"worker-{time.monotonic_ns()}.log")
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=worker_env(config, **env), stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker's whole process group (like Heroku does)."""
        if self.alive():
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM and wait; SIGKILL if it doesn't exit in ``timeout``."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self.log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash)."""
        self.signal(signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        """What the worker printed so far."""
        self.log.flush()
        with open(self.log_path, "rb") as fh:
            return fh.read().decode(errors="replace")


def wait_for(predicate: Callable[[], object], timeout: float = 20, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until truthy; fail the test with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
