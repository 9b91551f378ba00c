"""The audit log of dashboard actions: who did what to which jobs, and when."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from tasks.ledger import utcnow

MAX_IDS_KEPT = 1000


class AuditEntry(db.Model):
    """One action taken on jobs or queues by a person."""

    __tablename__ = "job_audit"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    job_ids: Mapped[str] = mapped_column(Text, default="[]")
    job_filter: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(default=0)
    #: the tenant whose dashboard the action was taken on; None for the host's
    tenant: Mapped[str | None] = mapped_column(String(64), index=True)

    @property
    def ids(self) -> list[str]:
        """The job ids the action named (at most ``MAX_IDS_KEPT``)."""
        return json.loads(self.job_ids or "[]")

    @property
    def filter(self) -> dict | None:
        """The filter a bulk action matched, if any."""
        return json.loads(self.job_filter) if self.job_filter else None


def record_audit(user: str | None, action: str, job_ids: list[str] | None = None,
                 job_filter: dict | None = None, count: int | None = None) -> None:
    """Append an entry (own transaction, so a failed action is still audited).

    ``count`` is how many jobs the action changed (default: the number of ids named).
    """
    from tasks.tenancy import current_scope

    ids = list(job_ids or [])[:MAX_IDS_KEPT]
    with db.engine.begin() as conn:
        conn.execute(insert(AuditEntry.__table__).values(
            at=utcnow(), user=user, action=action[:64], job_ids=json.dumps(ids), tenant=current_scope(),
            job_filter=json.dumps(job_filter, default=str) if job_filter is not None else None,
            count=len(job_ids or []) if count is None else count,
        ))


def audit_log(limit: int = 100, cursor: int | None = None):
    """Newest entries first; ``cursor`` is the id to continue below. Returns (entries, next_cursor).

    Within a tenant scope, only the entries of actions taken on that tenant's dashboard.
    """
    from tasks.tenancy import current_scope

    limit = max(1, min(int(limit), 500))
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if current_scope() is not None:
        query = query.where(AuditEntry.tenant == current_scope())
    if cursor:
        query = query.where(AuditEntry.id < int(cursor))
    entries = list(db.session.scalars(query))
    more = len(entries) > limit
    entries = entries[:limit]
    return entries, (entries[-1].id if more and entries else None)
