"""Jobs the engine runs for itself (bulk actions started from the dashboard)."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from tasks.api import JobContext, job
from tasks.ledger import Job

BATCH = 1000


def matching_ids(job_filter, after: str, limit: int = BATCH) -> list[str]:
    """Ids matching ``job_filter`` greater than ``after``, in id order (stable while states change)."""
    query = select(Job.id).where(*job_filter.clauses(), Job.id > after).order_by(Job.id).limit(limit)
    return list(db.session.scalars(query))


@job(name="jobs.bulk_action", queue="default", retries=5, backoff=[5, 30, 120], display_name="Bulk {0}",
     internal=True)
def bulk_action(action: str, job_filter: dict, by: str | None, context: JobContext) -> dict:
    """Apply ``action`` (requeue, delete, trigger) to every job matching ``job_filter``, in batches.

    Safe to re-run: each action skips jobs no longer in a state it applies to.
    """
    from tasks import commands
    from tasks.queries import JobFilter

    command = commands.BULK_ACTIONS[action]
    matched = JobFilter.from_dict(job_filter)
    after, done, seen = "", 0, 0
    while True:
        ids = matching_ids(matched, after)
        if not ids:
            return {"action": action, "matched": seen, "changed": done}
        seen += len(ids)
        done += len(command(ids, by=by))
        after = ids[-1]
        db.session.expire_all()
