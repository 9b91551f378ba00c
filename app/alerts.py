"""Alerts without extra infrastructure: a recurring check that emails people when jobs go wrong.

A recurring check on the workers' scheduler — a duty of the maintenance leader (one worker at a
time holds its lease), every ``JOBS_ALERT_INTERVAL_SECONDS`` (60; ``0`` turns alerts off) — looks
at three signals, each with a threshold from the environment (``0`` turns a signal off):

* **failures** of one task — attempts that raised (retried or not) within
  ``JOBS_ALERT_FAILURE_WINDOW_SECONDS`` (900), at least ``JOBS_ALERT_FAILURES`` (10);
* **waiting** — the oldest waiting job of a queue has waited ``JOBS_ALERT_QUEUE_WAIT_SECONDS`` (600);
* **no worker** — a queue has jobs waiting, no live worker reads it, and its oldest job has waited
  ``JOBS_ALERT_NO_WORKER_SECONDS`` (60; a deploy restarting workers doesn't page anyone).

A breach opens an **incident** (a ``job_incidents`` row whose ``open_key`` — kind and subject — is
unique while it is open) and emails every active user whose role holds "Job alerts" once; when
the signal is back under its threshold the incident is resolved and one more email says so.
Nothing is sent while an incident stays open, so a flapping job never floods anyone. The emails
are ``email.send`` jobs enqueued in the same transaction as the incident, on the ``email`` queue
when a live worker reads it, else on a queue one does (an alert about the email queue still goes
out). Open incidents show as a banner on the dashboard's overview (and in ``/api/stats``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import Permission, Role, User
from app.permissions import JOB_ALERTS
from tasks import enqueue, metrics
from tasks.ledger import utcnow
from tasks.recovery import leader_duty

log = logging.getLogger(__name__)

FAILURES, WAITING, NO_WORKER = "failures", "waiting", "no_worker"
#: config key → default, for each threshold (``0`` turns the signal off)
THRESHOLDS = {"JOBS_ALERT_FAILURES": 10.0, "JOBS_ALERT_FAILURE_WINDOW_SECONDS": 900.0,
              "JOBS_ALERT_QUEUE_WAIT_SECONDS": 600.0, "JOBS_ALERT_NO_WORKER_SECONDS": 60.0}
DEFAULT_INTERVAL = 60.0
TITLES = {FAILURES: "Task failing", WAITING: "Queue backed up", NO_WORKER: "No worker for a queue"}


class Incident(db.Model):
    """One time a signal crossed its threshold: when it opened, what it measured, when it resolved."""

    __tablename__ = "job_incidents"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    #: ``<kind>:<subject>`` while open (unique), NULL once resolved
    open_key: Mapped[str | None] = mapped_column(String(240), unique=True, index=True)
    summary: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    checked_at: Mapped[datetime] = mapped_column(DateTime)

    @property
    def title(self) -> str:
        """What kind of incident this is, in words."""
        return TITLES.get(self.kind, self.kind)

    def as_json(self) -> dict:
        """The JSON form (times ISO 8601 UTC)."""
        iso = lambda v: v.isoformat() + "Z" if v else None  # noqa: E731
        return {"id": self.id, "kind": self.kind, "subject": self.subject, "title": self.title,
                "summary": self.summary, "value": self.value, "threshold": self.threshold,
                "opened_at": iso(self.opened_at), "resolved_at": iso(self.resolved_at)}


@dataclass(frozen=True)
class Breach:
    """A signal over its threshold now."""

    kind: str
    subject: str
    value: float
    threshold: float
    summary: str

    @property
    def key(self) -> str:
        """The incident's ``open_key``."""
        return f"{self.kind}:{self.subject}"[:240]


def threshold(name: str) -> float:
    """The configured threshold ``name`` (``THRESHOLDS`` gives the default; 0 means off)."""
    value = current_app.config.get(name)
    return float(THRESHOLDS[name] if value is None else value)


def wait_words(seconds: float | None) -> str:
    """``95 s`` or ``12 min``."""
    seconds = seconds or 0.0
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def failure_breaches(now: datetime) -> list[Breach]:
    """Tasks whose failed attempts within the window reach ``JOBS_ALERT_FAILURES``."""
    limit, span = threshold("JOBS_ALERT_FAILURES"), threshold("JOBS_ALERT_FAILURE_WINDOW_SECONDS")
    if limit <= 0 or span <= 0:
        return []
    failures: dict[str, int] = {}
    for (task, kind), measure in metrics.window(now - timedelta(seconds=span)).items():
        if kind in (metrics.FAILED, metrics.RETRIED):
            failures[task] = failures.get(task, 0) + measure.count
    return [Breach(FAILURES, task, count, limit,
                   f"{task} failed {count} time{'' if count == 1 else 's'} in the last {wait_words(span)} "
                   f"(threshold {limit:g}).")
            for task, count in sorted(failures.items()) if count >= limit]


def queue_breaches(rows: list[dict]) -> list[Breach]:
    """Queues (``admin.dashboard.live.queue_rows``) whose oldest job waits too long, or that have work
    and no live reader."""
    wait_limit = threshold("JOBS_ALERT_QUEUE_WAIT_SECONDS")
    unread_limit = threshold("JOBS_ALERT_NO_WORKER_SECONDS")
    breaches = []
    for row in rows:
        name, age, waiting = row["name"], row["oldest_age_seconds"], row["length"] or 0
        if wait_limit > 0 and waiting and age is not None and age >= wait_limit:
            breaches.append(Breach(WAITING, name, age, wait_limit,
                                   f"The oldest of {waiting} job(s) in queue {name} has waited "
                                   f"{wait_words(age)} (threshold {wait_words(wait_limit)})."))
        if unread_limit > 0 and waiting and row["workers"] == 0 and (age is None or age >= unread_limit):
            breaches.append(Breach(NO_WORKER, name, waiting, unread_limit,
                                   f"{waiting} job(s) wait in queue {name} and no live worker reads it "
                                   f"(the oldest for {wait_words(age)})."))
    return breaches


def recipients() -> list[str]:
    """Email addresses of active users whose roles hold "Job alerts"."""
    query = (select(User.email).join(User.roles).join(Role.permissions)
             .where(Permission.name == JOB_ALERTS, User.active.is_(True)).distinct().order_by(User.email))
    return [email for email in db.session.scalars(query) if email]


def dashboard_link() -> str:
    """The dashboard's address for the email (absolute with ``PUBLIC_URL``)."""
    base = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    return base + (current_app.config.get("JOBS_DASHBOARD_PATH") or "/hangfire")


def notify(incident: Incident, opened: bool, queue: str, to: list[str]) -> None:
    """Enqueue the email about ``incident`` opening or resolving (joins the session's transaction)."""
    if not to:
        log.warning("incident %s %s, but no active user holds “Job alerts”", incident.open_key or incident.id,
                    "opened" if opened else "resolved")
        return
    what = "opened" if opened else "resolved"
    subject = f"[jobs] {'' if opened else 'Resolved: '}{incident.title}: {incident.subject}"
    at = incident.opened_at if opened else incident.resolved_at
    lines = [f"Incident #{incident.id} {what} at {at:%Y-%m-%d %H:%M:%S} UTC.", "", incident.summary, ""]
    if not opened:
        lasted = (incident.resolved_at - incident.opened_at).total_seconds()
        lines += [f"It was open for {wait_words(lasted)}.", ""]
    lines += [f"Dashboard: {dashboard_link()}", "",
              "You get this because your role holds the “Job alerts” permission."]
    enqueue("email.send", [f"alert-{incident.id}-{what}", to, subject, "\n".join(lines), []], queue=queue)


@dataclass
class CheckResult:
    """What one check did: incidents opened, resolved, and still open."""

    opened: list[str]
    resolved: list[str]
    still_open: list[str]

    def as_json(self) -> dict:
        """The check job's result."""
        return {"opened": self.opened, "resolved": self.resolved, "open": self.still_open}


def mail_queue(rows: list[dict]) -> str:
    """Where alert emails go: ``email`` when a live worker reads it, else the first queue one reads."""
    read = [row["name"] for row in rows if row["workers"]]
    return "email" if "email" in read or not read else read[0]


def check(now: datetime | None = None) -> CheckResult:
    """Compare the signals with the open incidents: open new ones, resolve recovered ones, email each
    change once. Another check committing the same incident first wins."""
    from admin.dashboard.live import queue_rows

    now = now or utcnow()
    rows = queue_rows()
    queue = mail_queue(rows)
    breaches = {breach.key: breach for breach in failure_breaches(now) + queue_breaches(rows)}
    current = {incident.open_key: incident
               for incident in db.session.scalars(select(Incident).where(Incident.open_key.is_not(None)))}
    to = recipients()
    opened, resolved = [], []
    for key, breach in breaches.items():
        incident = current.get(key)
        if incident is None:
            incident = Incident(kind=breach.kind, subject=breach.subject[:200], open_key=key,
                                summary=breach.summary, value=breach.value, threshold=breach.threshold,
                                opened_at=now, checked_at=now)
            db.session.add(incident)
            db.session.flush()
            notify(incident, True, queue, to)
            opened.append(key)
        else:
            incident.checked_at = now
    for key, incident in current.items():
        if key not in breaches:
            incident.open_key, incident.resolved_at, incident.checked_at = None, now, now
            notify(incident, False, queue, to)
            resolved.append(key)
    try:
        db.session.commit()
    except IntegrityError:  # another check opened one of these meanwhile: its emails went out
        db.session.rollback()
        return CheckResult([], [], sorted(current))
    for key in opened:
        log.warning("alert opened: %s", breaches[key].summary)
    for key in resolved:
        log.warning("alert resolved: %s", key)
    return CheckResult(opened, resolved, sorted(set(current) - set(resolved) | set(opened)))


def open_incidents() -> list[Incident]:
    """Incidents open now, oldest first (the overview's banner)."""
    return list(db.session.scalars(select(Incident).where(Incident.open_key.is_not(None))
                                   .order_by(Incident.opened_at, Incident.id)))


def check_interval() -> float:
    """Seconds between checks (``JOBS_ALERT_INTERVAL_SECONDS``, default 60; 0 turns alerts off)."""
    return float(current_app.config.get("JOBS_ALERT_INTERVAL_SECONDS", DEFAULT_INTERVAL))


@leader_duty("job alerts", check_interval)
def leader_check() -> dict:
    """The maintenance leader's round: check the signals, mail on the queue live workers read."""
    return check().as_json()
