"""Email jobs for the tests, and the positive signal a "nothing else arrives" check waits for."""
from __future__ import annotations

from tasks import lifecycle
from tests.helpers.ledger import job_state
from tests.workers import wait_for


def enqueue_email(app, key: str, subject: str = "Hi", to: str = "ann@example.com") -> str:
    """Enqueue one email job (``app.mail.send_later``) keyed ``key``; returns the job id."""
    from app.mail import send_later

    with app.app_context():
        return send_later(key, [to], subject, "Hello from a job")


def after_a_later_email(app, server, key: str = "sentinel") -> list:
    """Send one more email through the same queue and wait until it arrives at ``server``: the worker has
    moved past whatever came before, so a duplicate would have arrived by now. The messages before it."""
    job_id = enqueue_email(app, key, subject="sentinel")
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=30, message="the later email")
    wait_for(lambda: any(m["Subject"] == "sentinel" for m in server.inbox.messages), timeout=30,
             message="the later email over SMTP")
    return [m for m in server.inbox.messages if m["Subject"] != "sentinel"]
