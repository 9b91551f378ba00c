"""Continuations: a job that waits (Awaiting) until its parent reaches a final state.

``continue_on="success"`` runs the child only if the parent Succeeded (it is
Deleted otherwise); ``"finished"`` runs it after any final state.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from tasks import ledger, lifecycle
from tasks.codec import Delivery, PoisonMessage, delivery_from_row
from tasks.ledger import jobs_table
from tasks.lifecycle import Transition

ON_SUCCESS, ON_FINISHED = "success", "finished"
CONTINUE_ON = (ON_SUCCESS, ON_FINISHED)


def resolve(conn: Connection, parents: dict[str, str]) -> list[Delivery]:
    """Release or delete the Awaiting children of finished ``parents`` (id → final state).

    Returns the messages to dispatch once the caller's transaction commits.
    """
    if not parents:
        return []
    c = jobs_table.c
    children = []
    for part in ledger.chunks(sorted(parents), 500):
        children += conn.execute(select(c.id, c.task, c.queue, c.priority, c.args, c.kwargs, c.max_attempts,
                                        c.parent_id, c.continue_on, c.tenant)
                                 .where(c.parent_id.in_(part), c.state == lifecycle.AWAITING)).all()
    at = ledger.utcnow()
    transitions, deliveries = [], []
    for child in children:
        parent_state = parents[child.parent_id]
        if parent_state == lifecycle.SUCCEEDED or child.continue_on == ON_FINISHED:
            try:
                deliveries.append(delivery_from_row(child, 1, None))
            except PoisonMessage as poison:  # this child fails; its siblings are released
                transitions.append(Transition(child.id, lifecycle.FAILED, at,
                                              ledger.clip(poison.reason, 1000),
                                              fields={"finished_at": at, "exception_type": "PoisonMessage",
                                                      "exception_message": poison.reason},
                                              data={"parent": child.parent_id}))
                continue
            transitions.append(Transition(child.id, lifecycle.ENQUEUED, at,
                                          f"Parent {child.parent_id} {parent_state.lower()}",
                                          fields={"enqueued_at": at}, data={"parent": child.parent_id}))
        else:
            transitions.append(Transition(child.id, lifecycle.DELETED, at,
                                          f"Parent {child.parent_id} ended {parent_state}; "
                                          "continuation skipped",
                                          fields={"finished_at": at}, data={"parent": child.parent_id}))
    outcomes = ledger.apply(conn, transitions)
    released = {o.transition.job_id for o in outcomes if o.applied}
    return [d for d in deliveries if d.id in released]


def known(conn: Connection, job_ids, tenant: str | None = None) -> list[str]:
    """Which of ``job_ids`` exist in the ledger and may be waited for by a job of ``tenant``: a
    tenant's job continues only after that tenant's jobs (the host's may follow any job)."""
    c = jobs_table.c
    mine = [] if tenant is None else [c.tenant == tenant]
    return [i for part in ledger.chunks(sorted(set(job_ids)), 500)
            for (i,) in conn.execute(select(c.id).where(c.id.in_(part), *mine))]


def final_parents(conn: Connection, parent_ids) -> dict[str, str]:
    """Of ``parent_ids``, those in a final state, with that state."""
    c = jobs_table.c
    found: dict[str, str] = {}
    for part in ledger.chunks(sorted(set(parent_ids)), 500):
        found.update(conn.execute(select(c.id, c.state).where(c.id.in_(part),
                                                              c.state.in_(lifecycle.FINAL_STATES))).all())
    return found


def stranded(conn: Connection, limit: int = 500) -> dict[str, str]:
    """Parents (id → final state) that have Awaiting children although they finished (self-healing)."""
    c = jobs_table.c
    parents = conn.execute(select(c.parent_id).where(c.state == lifecycle.AWAITING).distinct().limit(limit))
    return final_parents(conn, [p for (p,) in parents if p])
