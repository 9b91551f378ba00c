"""The job lifecycle: every state, every allowed transition, and what each records.

Read top to bottom, this module is the whole state machine::

    (new) ──► Enqueued ──────► Processing ──► Succeeded
    (new) ──► Scheduled ──┬──►     │  ▲   ├─► Failed     (after the last attempt)
    (new) ──► Awaiting ───┘        │  │   └─► Scheduled  (retry with backoff) ──► Enqueued when due
                                   └──┘ Processing (a lost worker's job claimed again)
    any non-final ──► Deleted ;   Succeeded | Failed | Deleted ──► Enqueued (requeued by a person)

Who moves a job, and why (the ``reason`` kept in its history row):

============================  =====================================================
Enqueued / Scheduled          the client (``enqueue``, ``schedule``); Awaiting for a continuation
Scheduled → Enqueued          the scheduler, when due ("Due"); a person ("Requeued by …")
Enqueued|Scheduled → Processing  a worker's fetcher claims it before a thread may run it ("Attempt n of m")
Processing → Succeeded        the job returned ("Completed", result, duration)
Processing → Scheduled        the job raised and has attempts left ("Retry attempt …")
Processing → Failed           the job raised on its last attempt, or the message was poison
Processing → Enqueued         hand-back: at shutdown, a claimed job no thread started within the hold
                              limit, a dead worker's job recovered (fenced on the worker that had it)
Processing → Processing       a redelivered job claimed again by another worker
Processing → Deleted          the job stopped after a cancel request ("Cancelled: …")
Enqueued → Scheduled          its mutex was taken: rescheduled, not failed ("Waiting for mutex …")
Awaiting → Enqueued|Deleted   its parent finished (succeeded, or failed when only success counts)
any non-final → Failed        its message or ledger row can't be decoded (poison), with the reason
any non-final → Deleted       a person deleted it
============================  =====================================================

Each transition writes one history row (state, reason, time, data) and updates the job
row's columns listed in ``RECORDS``. The ledger applies transitions; nothing else
changes a job's state.

Where the worker pipeline (``tasks.server``) moves a job, in order::

    transport ──fetch──► in flight ──claim──► Processing ──run──► outcome ──commit──► final state ──► ack
               Fetcher            (Completer batch)   Processor       (Completer batch)       transport

* The **fetcher** moves a message into the worker's in-flight set and submits the claim
  (→ Processing). Only a claim the ledger accepts lets the job run, so a job deleted or
  finished in the ledger before the worker took it never runs. It holds at most one job
  per idle thread plus a prefetch of short jobs (by measured run time); a claimed job no
  thread starts within ``JOBS_HOLD_LIMIT`` (1 s) is handed back. So **Processing means a
  thread has the job**, or will within that limit — in practice within milliseconds.
* The **processor** runs the job and returns an outcome; it writes nothing.
* The **completer** writes claims and outcomes in order, in batches that grow with the
  backlog, and only after a batch commits acknowledges (or reschedules) its messages:
  **a job leaves the transport only after its final state is committed**.
* **Recovery** (maintenance) moves due jobs, re-enqueues a dead worker's in-flight jobs,
  and — on the leader — re-dispatches what the transport lost and expires old jobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ENQUEUED = "Enqueued"
SCHEDULED = "Scheduled"
PROCESSING = "Processing"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
DELETED = "Deleted"
AWAITING = "Awaiting"  # a continuation waiting for its parent

STATES = (ENQUEUED, SCHEDULED, PROCESSING, SUCCEEDED, FAILED, DELETED, AWAITING)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, DELETED})
#: States in which the transport should hold the job (queue, schedule or in-flight).
LIVE_STATES = frozenset({ENQUEUED, SCHEDULED, PROCESSING})
#: Final states that expire after the retention period (Failed waits for a person).
EXPIRING_STATES = frozenset({SUCCEEDED, DELETED})

#: state -> the states a job may move to from it. ``None`` is "not yet created".
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({ENQUEUED, SCHEDULED, AWAITING}),
    AWAITING: frozenset({ENQUEUED, DELETED, FAILED}),
    SCHEDULED: frozenset({ENQUEUED, PROCESSING, DELETED, FAILED}),
    ENQUEUED: frozenset({PROCESSING, SCHEDULED, DELETED, FAILED}),
    # Processing → Processing: a redelivered message (its worker was lost) claimed again
    PROCESSING: frozenset({PROCESSING, SUCCEEDED, FAILED, SCHEDULED, ENQUEUED, DELETED}),
    SUCCEEDED: frozenset({ENQUEUED, SCHEDULED}),
    FAILED: frozenset({ENQUEUED, SCHEDULED, DELETED}),
    DELETED: frozenset({ENQUEUED, SCHEDULED}),
}

#: The job-row columns a transition into each state may write (besides ``state`` and its
#: reason/time); ``Transition`` refuses any other, so this table stays true.
RECORDS: dict[str, frozenset[str]] = {
    # a person's requeue also gives a fresh attempt budget and clears progress and cancel requests
    ENQUEUED: frozenset({"enqueued_at", "attempt", "progress", "progress_message", "cancel_requested_at",
                         "cancel_reason"}),
    # a retry also records the exception of the attempt that failed
    SCHEDULED: frozenset({"scheduled_for", "exception_type", "exception_message", "exception_traceback"}),
    # a claim clears the previous attempt's progress
    PROCESSING: frozenset({"started_at", "worker", "attempt", "progress", "progress_message"}),
    SUCCEEDED: frozenset({"finished_at", "result"}),
    # a poison message also names the worker that refused it
    FAILED: frozenset({"finished_at", "worker", "exception_type", "exception_message",
                       "exception_traceback"}),
    DELETED: frozenset({"finished_at"}),
    AWAITING: frozenset(),
}


class IllegalTransition(ValueError):
    """A transition the lifecycle does not allow (e.g. Succeeded → Processing)."""

    def __init__(self, job_id: str, current: str | None, target: str):
        super().__init__(f"job {job_id}: {current or 'new'} → {target} is not allowed")
        self.job_id, self.current, self.target = job_id, current, target


def can_move(current: str | None, target: str) -> bool:
    """True when a job in ``current`` may enter ``target``."""
    return target in TRANSITIONS.get(current, frozenset())


def sources(target: str) -> frozenset[str]:
    """Every state from which ``target`` can be entered."""
    return frozenset(s for s, targets in TRANSITIONS.items() if s and target in targets)


@dataclass
class Transition:
    """One state change of one job, as the ledger will record it.

    ``fields`` are job-row columns this state records (a subset of ``RECORDS``);
    ``data`` is the free-form detail kept in the history row (queue, worker,
    latency, duration, exception, ...).
    """

    job_id: str
    state: str
    at: datetime
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: states the job must currently be in; defaults to the lifecycle's sources
    expected: frozenset[str] | None = None
    #: when set, the job's ``worker`` must still be this one (fences recovery against a newer claim)
    expected_worker: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.fields) - RECORDS[self.state]
        if unknown:
            raise ValueError(f"a transition to {self.state} doesn't record {sorted(unknown)} (see RECORDS)")

    def allowed_from(self) -> frozenset[str]:
        """States from which this transition may apply."""
        return self.expected if self.expected is not None else sources(self.state)
