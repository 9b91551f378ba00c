"""The reports users can ask for, over the application's own data.

A :class:`ReportKind` splits its work into chunks planned up front (so progress is
``chunks done / chunks``) and yields each chunk's rows:

* ``job-activity`` — per day (UTC) and per task over a date range: jobs, succeeded,
  failed, other (still pending, or deleted), retries, average and longest run time.
  One chunk per day. Reads the job ledger, so it covers what retention keeps.
* ``access-review`` — every user with their roles, effective permissions and last
  sign-in. Chunks of users. Needs ``Pages.Reports.AccessReview``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Role, Tenant, User
from app.permissions import REPORTS_ACCESS_REVIEW
from tasks import lifecycle
from tasks.ledger import Job
from tasks.tenancy import current_scope, scope_clauses

MAX_DAYS = 366
USERS_PER_CHUNK = 25


@dataclass(frozen=True)
class ReportKind:
    """One kind of report: its columns, how to plan its chunks and produce their rows."""

    key: str
    title: str
    description: str
    columns: tuple[str, ...]
    plan: Callable[[dict], list[Any]]
    rows: Callable[[dict, Any], Iterable[Sequence[Any]]]
    describe: Callable[[dict], str]
    chunk_label: Callable[[Any], str]
    permission: str | None = None

    def allowed_for(self, user: Any) -> bool:
        """True when ``user`` may run this report."""
        return self.permission is None or user.has_permission(self.permission)


# -- job activity ----------------------------------------------------------------
def parse_day(value: str) -> date:
    """A ``YYYY-MM-DD`` parameter as a date."""
    return date.fromisoformat(value)


def activity_days(params: dict) -> list[str]:
    """Every day of the range, as ISO strings (the chunks)."""
    start, end = parse_day(params["start"]), parse_day(params["end"])
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


@dataclass
class TaskDay:
    """Counters of one task on one day."""

    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    durations: list[float] = field(default_factory=list)

    def add(self, state: str, attempt: int, started: datetime | None, finished: datetime | None) -> None:
        """Count one job."""
        self.jobs += 1
        self.succeeded += state == lifecycle.SUCCEEDED
        self.failed += state == lifecycle.FAILED
        self.retries += max(0, (attempt or 0) - 1)
        if started and finished and state in (lifecycle.SUCCEEDED, lifecycle.FAILED):
            self.durations.append((finished - started).total_seconds())

    def row(self, day: str, task: str) -> tuple:
        """The report row for this task and day."""
        durations = self.durations
        average = round(sum(durations) / len(durations), 3) if durations else None
        longest = round(max(durations), 3) if durations else None
        other = self.jobs - self.succeeded - self.failed
        return (day, task, self.jobs, self.succeeded, self.failed, other, self.retries, average, longest)


def activity_rows(params: dict, day: str) -> list[tuple]:
    """One row per task that had jobs created on ``day`` (UTC)."""
    start = datetime.combine(parse_day(day), datetime.min.time())
    c = Job.__table__.c
    query = (select(c.task, c.state, c.attempt, c.started_at, c.finished_at)
             .where(c.created_at >= start, c.created_at < start + timedelta(days=1), *scope_clauses(c)))
    tasks: dict[str, TaskDay] = defaultdict(TaskDay)
    rows = db.session.execute(query.execution_options(yield_per=2000))
    for task, state, attempt, started, finished in rows:
        tasks[task].add(state, attempt, started, finished)
    return [tasks[task].row(day, task) for task in sorted(tasks)]


def describe_activity(params: dict) -> str:
    """``Job activity 2026-11-01 – 2026-11-07``."""
    return f"Job activity {params['start']} – {params['end']}"


JOB_ACTIVITY = ReportKind(
    key="job-activity",
    title="Job activity",
    description="Per day and task: jobs run, successes, failures, retries and run times (UTC days).",
    columns=("Day", "Task", "Jobs", "Succeeded", "Failed", "Other", "Retries", "Avg seconds", "Max seconds"),
    plan=activity_days,
    rows=activity_rows,
    describe=describe_activity,
    chunk_label=lambda day: f"day {day}",
)


# -- access review ---------------------------------------------------------------
def user_id_chunks(params: dict) -> list[list[int]]:
    """User ids in id order, ``USERS_PER_CHUNK`` per chunk (inactive users only when asked)."""
    query = select(User.id).order_by(User.id)
    if current_scope() is not None:  # a report built for a tenant lists that tenant's users only
        query = query.join(Tenant, User.tenant_id == Tenant.id).where(Tenant.name == current_scope())
    if not params.get("include_inactive"):
        query = query.where(User.active.is_(True))
    ids = list(db.session.scalars(query))
    return [ids[i:i + USERS_PER_CHUNK] for i in range(0, len(ids), USERS_PER_CHUNK)] or [[]]


def access_rows(params: dict, user_ids: list[int]) -> list[tuple]:
    """One row per user: roles, effective permissions, last sign-in."""
    if not user_ids:
        return []
    query = (select(User).where(User.id.in_(user_ids)).order_by(User.id)
             .options(selectinload(User.roles).selectinload(Role.permissions)))
    return [(user.username, user.email, user.active, ", ".join(sorted(r.name for r in user.roles)),
             ", ".join(sorted(user.permission_names)), user.last_login_at, user.created_at)
            for user in db.session.scalars(query)]


def describe_access(params: dict) -> str:
    """``Access review (active users)`` or ``(all users)``."""
    return "Access review (" + ("all users" if params.get("include_inactive") else "active users") + ")"


ACCESS_REVIEW = ReportKind(
    key="access-review",
    title="Access review",
    description="Every user with their roles, effective permissions and last sign-in.",
    columns=("User", "Email", "Active", "Roles", "Permissions", "Last sign-in (UTC)", "Created (UTC)"),
    plan=user_id_chunks,
    rows=access_rows,
    describe=describe_access,
    chunk_label=lambda ids: f"{len(ids)} users",
    permission=REPORTS_ACCESS_REVIEW,
)

KINDS: dict[str, ReportKind] = {kind.key: kind for kind in (JOB_ACTIVITY, ACCESS_REVIEW)}


def kinds_for(user: Any) -> list[ReportKind]:
    """The report kinds ``user`` may run, in catalog order."""
    return [kind for kind in KINDS.values() if kind.allowed_for(user)]
