"""Recurring jobs declared in code, run on a cron schedule in a time zone.

    from tasks import job
    from tasks.recurring import recurring

    @recurring("nightly-digest", cron="0 3 * * *", tz="Europe/London")
    @job(name="digest.nightly", queue="default")
    def nightly_digest(): ...

Definitions are synced to the ``recurring_jobs`` table (added, changed, removed);
``enabled`` is kept across syncs so a person's pause survives deploys. The
maintenance leader checks every second which are due and enqueues them with a
compare-and-set on ``next_run_at``, so two schedulers can never both run one
occurrence. Cron has 5 fields, or 6 with seconds first. Times are wall-clock
times in the job's zone: across DST a 02:30 run that doesn't exist runs at the
first instant after the gap, and one that exists twice runs once.

Misfire policies, for runs that were due while no scheduler was running:
``relaxed`` (one run now, the default), ``strict`` (one run per missed time, at
most ``MAX_CATCH_UP``) and ``skip`` (none; wait for the next time).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks import registry
from tasks.codec import check_arguments
from tasks.ledger import utcnow
from tasks.tenancy import current_scope

log = logging.getLogger("tasks.recurring")

MISFIRE_POLICIES = ("relaxed", "strict", "skip")
MAX_CATCH_UP = 100
ON_TIME = timedelta(seconds=60)  # a run this late is still "on time", not a misfire


class RecurringJob(db.Model):
    """A job run on a cron schedule, synced from code."""

    __tablename__ = "recurring_jobs"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    queue: Mapped[str] = mapped_column(String(64), default="default")
    args: Mapped[str] = mapped_column(Text, default="[]")
    kwargs: Mapped[str] = mapped_column(Text, default="{}")
    misfire: Mapped[str] = mapped_column(String(16), default="relaxed")
    enabled: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_job_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: the tenant whose jobs its runs are (None: the host's); only that tenant's dashboard lists it
    tenant: Mapped[str | None] = mapped_column(String(64))

    @property
    def description(self) -> str:
        """The cron expression in words ("At 03:00 AM")."""
        return describe(self.cron)


@dataclass(frozen=True)
class RecurringDefinition:
    """A recurring job as declared in code."""

    id: str
    task: str
    cron: str
    tz: str = "UTC"
    queue: str | None = None
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    misfire: str = "relaxed"
    tenant: str | None = None


DEFINITIONS: dict[str, RecurringDefinition] = {}


def check_schedule(cron: str, tz: str, misfire: str = "relaxed") -> None:
    """Raise ValueError unless the cron expression, zone and policy are valid."""
    fields = cron.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=len(fields) == 6):
        raise ValueError(f"invalid cron expression {cron!r}: use 5 fields, or 6 with seconds first")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    if misfire not in MISFIRE_POLICIES:
        raise ValueError(f"misfire must be one of {', '.join(MISFIRE_POLICIES)}, got {misfire!r}")
    try:
        next_run(cron, tz, utcnow())
    except Exception:  # noqa: BLE001 - croniter gives up on dates that don't exist (30 February)
        raise ValueError(f"cron expression {cron!r} never fires (no such date within the years croniter "
                         f"searches)") from None


def recurring(recurring_id: str, cron: str, tz: str = "UTC", queue: str | None = None, args=(), kwargs=None,
              misfire: str = "relaxed", tenant: str | None = None):
    """Declare that a ``@job`` function runs on ``cron`` in zone ``tz`` under id ``recurring_id``.

    ``tenant`` (a tenant's name) makes its runs that tenant's jobs; only that tenant's dashboard and
    the host's list it. Left out, it is the host's.
    """
    check_schedule(cron, tz, misfire)
    if not recurring_id or len(recurring_id) > 100:
        raise ValueError("a recurring job id must be 1 to 100 characters")
    if tenant is not None and (not isinstance(tenant, str) or not 0 < len(tenant) <= 64):
        raise ValueError(f"tenant must be a tenant's name (1 to 64 characters) or None, got {tenant!r}")

    def register(fn):
        definition = registry.definition(fn)
        check_arguments(list(args), dict(kwargs or {}), definition.parameter_names())
        definition.check_call(list(args), dict(kwargs or {}))
        DEFINITIONS[recurring_id] = RecurringDefinition(recurring_id, definition.name, cron, tz, queue,
                                                        list(args), dict(kwargs or {}), misfire, tenant)
        return fn

    return register


def describe(cron: str) -> str:
    """Human description of a cron expression (falls back to the expression)."""
    try:
        from cron_descriptor import get_description

        return get_description(cron)
    except Exception:  # noqa: BLE001 - a description is a nicety
        return cron


def occurrences(cron: str, tz: str, after: datetime):
    """Run times (naive UTC) strictly after ``after`` (naive UTC), in order, forever."""
    zone = ZoneInfo(tz)
    local = after.replace(tzinfo=timezone.utc).astimezone(zone).replace(tzinfo=None)
    seconds_first = len(cron.split()) == 6
    walker = croniter(cron, local, second_at_beginning=seconds_first)
    previous = after
    while True:
        wall = walker.get_next(datetime)
        instant = to_utc(wall, zone)
        if instant > previous:  # ambiguous wall times map to their first instant once
            previous = instant
            yield instant


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Naive UTC instant of a wall-clock time in ``zone``; a time in a DST gap moves to the gap's end."""
    candidate = wall
    while True:
        instant = candidate.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
        if instant.astimezone(zone).replace(tzinfo=None) == candidate:
            return instant.replace(tzinfo=None)
        candidate = candidate.replace(second=0, microsecond=0) + timedelta(minutes=1)


def next_run(cron: str, tz: str, after: datetime) -> datetime:
    """The first run time strictly after ``after`` (naive UTC)."""
    return next(occurrences(cron, tz, after))


def due_runs(row: RecurringJob, now: datetime) -> tuple[list[datetime], datetime]:
    """Which runs to start now under the row's misfire policy, and the next run time after them."""
    if row.next_run_at is None or row.next_run_at > now:
        return [], row.next_run_at or next_run(row.cron, row.timezone, now)
    missed = [row.next_run_at]
    for at in occurrences(row.cron, row.timezone, row.next_run_at):
        if at > now or len(missed) > MAX_CATCH_UP:
            following = at if at > now else next_run(row.cron, row.timezone, now)
            break
        missed.append(at)
    on_time = len(missed) == 1 and now - missed[0] <= ON_TIME
    if on_time or row.misfire == "relaxed":
        return [missed[-1]], following
    if row.misfire == "strict":
        return missed[:MAX_CATCH_UP], following
    return [], following  # skip


def sync(now: datetime | None = None) -> dict:
    """Make the table match the code's definitions (keeps ``enabled``); returns counts and errors.

    A definition that can't be synced (a schedule that never fires, an unknown task) is
    reported under ``errors`` by id and skipped; the others are synced all the same.
    """
    now = now or utcnow()
    rows = {r.id: r for r in db.session.scalars(select(RecurringJob))}
    added = changed = 0
    errors: dict[str, str] = {}
    for definition in DEFINITIONS.values():
        try:
            check_schedule(definition.cron, definition.tz, definition.misfire)
            counted = sync_one(definition, rows.get(definition.id), now)
        except Exception as exc:  # noqa: BLE001 - one bad definition never stops the others
            errors[definition.id] = f"{type(exc).__name__}: {exc}"
            log.error("recurring job %s not synced: %s", definition.id, errors[definition.id])
            continue
        added += counted == "added"
        changed += counted == "changed"
    removed = [r for r in rows if r not in DEFINITIONS]
    if removed:
        db.session.execute(delete(RecurringJob).where(RecurringJob.id.in_(removed)))
    db.session.commit()
    return {"added": added, "changed": changed, "removed": len(removed), "errors": errors}


def sync_one(definition: RecurringDefinition, row: RecurringJob | None, now: datetime) -> str | None:
    """Add or update one definition's row; returns "added", "changed" or None."""
    values = {"task": definition.task, "cron": definition.cron, "timezone": definition.tz,
              "queue": definition.queue or registry.definition(definition.task).queue,
              "args": json.dumps(definition.args), "kwargs": json.dumps(definition.kwargs),
              "misfire": definition.misfire, "tenant": definition.tenant}
    if row is None:
        row = RecurringJob(id=definition.id, enabled=True, created_at=now, updated_at=now, **values)
        row.next_run_at = next_run(row.cron, row.timezone, now)
        db.session.add(row)
        return "added"
    if any(getattr(row, k) != v for k, v in values.items()):
        schedule_changed = (row.cron, row.timezone) != (values["cron"], values["timezone"])
        for key, value in values.items():
            setattr(row, key, value)
        if schedule_changed:
            row.next_run_at = next_run(row.cron, row.timezone, now)
        row.updated_at = now
        return "changed"
    return None


def run_due(now: datetime | None = None) -> list[str]:
    """Enqueue every enabled recurring job that is due; returns the new job ids."""
    now = now or utcnow()
    query = select(RecurringJob).where(RecurringJob.enabled.is_(True), RecurringJob.next_run_at <= now)
    started: list[str] = []
    for row in db.session.scalars(query).all():
        try:
            started += fire(row, now)
        except Exception as exc:  # noqa: BLE001 - one bad row never stops the others
            log.exception("recurring job %s could not be scheduled", row.id)
            db.session.rollback()
            db.session.execute(update(RecurringJob).where(RecurringJob.id == row.id)
                               .values(enabled=False, error=f"{type(exc).__name__}: {exc}"[:2000]))
            db.session.commit()
    return started


def fire(row: RecurringJob, now: datetime) -> list[str]:
    """Claim the row's due runs (compare-and-set on ``next_run_at``) and enqueue them."""
    runs, following = due_runs(row, now)
    claimed = db.session.execute(
        update(RecurringJob).where(RecurringJob.id == row.id, RecurringJob.next_run_at == row.next_run_at)
        .values(next_run_at=following, updated_at=now)
    ).rowcount
    if claimed != 1:
        db.session.rollback()  # another scheduler took this occurrence
        return []
    ids: list[str] = []
    try:
        definition = registry.definition(row.task)
        call = (json.loads(row.args), json.loads(row.kwargs))
        for run in runs:
            ids += current_engine().enqueue_many(definition, [call], queue=row.queue, recurring_id=row.id,
                                                 occurrence=run, tenant=row.tenant)
        if ids:
            db.session.execute(update(RecurringJob).where(RecurringJob.id == row.id)
                               .values(last_run_at=runs[-1], last_job_id=ids[-1], error=None))
    except Exception as exc:  # noqa: BLE001 - record the error on the row; the schedule moves on
        log.exception("recurring job %s could not be enqueued", row.id)
        db.session.rollback()
        db.session.execute(update(RecurringJob).where(RecurringJob.id == row.id)
                           .values(next_run_at=following, error=f"{type(exc).__name__}: {exc}"[:2000]))
    db.session.commit()
    return ids


def visible(recurring_id: str) -> RecurringJob | None:
    """The recurring job ``recurring_id`` if it exists and is in the current scope (a tenant's dashboard
    sees only that tenant's; the host every one), else None."""
    row = db.session.get(RecurringJob, recurring_id)
    scope = current_scope()
    return row if row is not None and (scope is None or row.tenant == scope) else None


def trigger(recurring_id: str, by: str | None = None) -> str | None:
    """Run a recurring job now, outside its schedule; returns the job id (None if unknown)."""
    row = visible(recurring_id)
    if row is None:
        return None
    ids = current_engine().enqueue_many(registry.definition(row.task),
                                        [(json.loads(row.args), json.loads(row.kwargs))],
                                        queue=row.queue, recurring_id=row.id, enqueued_by=by,
                                        tenant=row.tenant)
    row.last_run_at, row.last_job_id = utcnow(), ids[0]
    db.session.commit()
    return ids[0]


def set_enabled(recurring_id: str, enabled: bool, now: datetime | None = None) -> bool:
    """Enable or disable a recurring job (persisted); re-enabling resumes from now. False if unknown."""
    row = visible(recurring_id)
    if row is None:
        return False
    now = now or utcnow()
    if enabled and not row.enabled:
        row.next_run_at = next_run(row.cron, row.timezone, now)
    row.enabled, row.updated_at = enabled, now
    db.session.commit()
    return True


def remove(recurring_id: str) -> bool:
    """Delete a recurring job row (a later sync re-creates it if the code still declares it)."""
    if visible(recurring_id) is None:
        return False
    removed = db.session.execute(delete(RecurringJob).where(RecurringJob.id == recurring_id)).rowcount
    db.session.commit()
    return bool(removed)


def current_engine():
    """The app's job engine (imported late to avoid a cycle)."""
    from tasks.engine import current_engine as engine

    return engine()
