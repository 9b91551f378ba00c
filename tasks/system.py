"""Jobs the engine runs for itself (bulk actions started from the dashboard)."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from tasks.actions import BULK_TASK, job_action
from tasks.api import JobContext, job
from tasks.ledger import Job
from tasks.queries import JobFilter

BATCH = 1000


def matching_ids(job_filter: JobFilter, after: str, limit: int = BATCH) -> list[str]:
    """Ids matching ``job_filter`` greater than ``after``, in id order (stable while states change)."""
    query = select(Job.id).where(*job_filter.clauses(), Job.id > after).order_by(Job.id).limit(limit)
    return list(db.session.scalars(query))


@job(name=BULK_TASK, queue="default", retries=5, backoff=[5, 30, 120], display_name="Bulk {0}",
     internal=True)
def bulk_action(action: str, job_filter: dict, by: str | None, context: JobContext) -> dict:
    """Apply ``action`` (see ``tasks.actions``) to every job matching ``job_filter``, in batches.

    Safe to re-run: each action skips jobs no longer in a state it applies to.
    """
    command = job_action(action, bulk=True)
    matched = JobFilter.from_dict(job_filter)
    after, done, seen = "", 0, 0
    while True:
        ids = matching_ids(matched, after)
        if not ids:
            return {"action": action, "matched": seen, "changed": done}
        seen += len(ids)
        done += len(command.run(ids, by=by))
        after = ids[-1]
        db.session.expire_all()
