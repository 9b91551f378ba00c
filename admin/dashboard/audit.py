"""The audit log, readable: each entry as the button that was pressed and a sentence
("olivia retried 3 jobs"), with links to the jobs and to the list a bulk action matched.

Action names and wording come from the action registry (``tasks.actions``); the few actions
that aren't on jobs (enqueue, pause and resume a queue) are described here. Entries written
before the names were made consistent ("requeue all matching", "pause queue",
"recurring-trigger") read the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import url_for

from admin.dashboard.formats import Formats, plural
from admin.dashboard.guard import ENDPOINT
from admin.dashboard.lists import list_for_state
from tasks import queries
from tasks.actions import JOB_ACTIONS, MATCHING_SUFFIX, RECURRING_ACTIONS

#: the actions that aren't on jobs: (button label, phrase with ``{jobs}`` and ``{queue}``)
OTHER_ACTIONS = {
    "enqueue": ("Enqueue", "enqueued {jobs}"),
    "pause-queue": ("Pause", "paused queue {queue}"),
    "resume-queue": ("Resume", "resumed queue {queue}"),
}
#: names written before they were made consistent → today's name
LEGACY_NAMES = {"pause queue": "pause-queue", "resume queue": "resume-queue",
                **{f"{name} all matching": name + MATCHING_SUFFIX for name in JOB_ACTIONS},
                **{f"recurring-{name}": f"{name}-recurring" for name in RECURRING_ACTIONS}}
MAX_LINKED_JOBS = 5
#: audit ids are BIGINT: a cursor beyond that can't name an entry
MAX_CURSOR = 2 ** 63 - 1
#: how each filter field reads
FILTER_WORDS = {
    "state": "state {}", "queue": "queue {}", "task": "task {}", "text": "text “{}”",
    "enqueued_by": "enqueued by {}",
    "since": "changed since {}", "until": "changed before {}", "recurring_id": "runs of recurring job {}",
    "id_prefix": "id starting {}", "retrying": "waiting for a retry", "tasks": "tasks {}",
    "states": "states {}", "tenant": "tenant {}",
}
#: filter fields → the list page's query parameters
FILTER_PARAMS = {"text": "q", "task": "task", "queue": "queue", "enqueued_by": "enqueued_by",
                 "since": "since",
                 "until": "until", "recurring_id": "recurring", "id_prefix": "id", "tenant": "tenant"}


def filter_words(job_filter: dict) -> str:
    """A bulk action's filter in words: ``state Failed, text “kaput”``."""
    words = []
    for key, value in job_filter.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        words.append(FILTER_WORDS.get(key, key + " {}").format(shown))
    return ", ".join(words) or "no filter (every job)"


def filter_url(job_filter: dict) -> str:
    """The list page showing what a bulk action's filter matches (as it matches now)."""
    slug = "retries" if job_filter.get("retrying") else list_for_state(job_filter.get("state")).slug
    params = {FILTER_PARAMS[key]: value for key, value in job_filter.items() if key in FILTER_PARAMS}
    return url_for(f"{ENDPOINT}.jobs", slug=slug, **params)


@dataclass
class AuditRow:
    """One audit entry, in words."""

    id: int
    at: datetime
    user: str | None
    action: str
    job_ids: list[str]
    job_filter: dict | None
    count: int

    @property
    def name(self) -> str:
        """The action's name as written today."""
        return LEGACY_NAMES.get(self.action, self.action)

    @property
    def label(self) -> str:
        """The label of the button that was pressed."""
        name = self.name
        if name in JOB_ACTIONS:
            return JOB_ACTIONS[name].label
        if name.endswith(MATCHING_SUFFIX) and name[:-len(MATCHING_SUFFIX)] in JOB_ACTIONS:
            return JOB_ACTIONS[name[:-len(MATCHING_SUFFIX)]].label + " all matching"
        if name.endswith("-recurring") and name[:-len("-recurring")] in RECURRING_ACTIONS:
            return RECURRING_ACTIONS[name[:-len("-recurring")]].label
        return OTHER_ACTIONS.get(name, (name, ""))[0]

    @property
    def is_bulk(self) -> bool:
        """True for an action started on everything a filter matched."""
        return self.name.endswith(MATCHING_SUFFIX)

    @property
    def recurring_ids(self) -> list[str]:
        """The recurring jobs a recurring action named."""
        found = (self.job_filter or {}).get("recurring_ids") or (self.job_filter or {}).get("recurring_id")
        return list(found) if isinstance(found, list) else ([found] if found else [])

    @property
    def phrase(self) -> str:
        """What was done, after the user's name: ``retried 2 of 3 selected jobs``."""
        name, count, asked = self.name, self.count, len(self.job_ids)
        if name in JOB_ACTIONS:
            jobs = plural(asked) if count == asked else f"{count:,} of {plural(asked, 'selected job')}"
            return JOB_ACTIONS[name].did.format(jobs=jobs)
        if self.is_bulk:
            action = JOB_ACTIONS[name[:-len(MATCHING_SUFFIX)]]
            return (f"started “{action.label}” on {plural(count)} matching "
                    f"{filter_words(self.job_filter or {})}, in the background")
        if name.endswith("-recurring") and name[:-len("-recurring")] in RECURRING_ACTIONS:
            ids = self.recurring_ids
            what = f"recurring job {ids[0]}" if len(ids) == 1 else f"{plural(len(ids), 'recurring job')}: " \
                + ", ".join(ids[:MAX_LINKED_JOBS]) + (" …" if len(ids) > MAX_LINKED_JOBS else "")
            return RECURRING_ACTIONS[name[:-len("-recurring")]].did.format(what=what)
        if name in OTHER_ACTIONS:
            queue = (self.job_filter or {}).get("queue", "")
            return OTHER_ACTIONS[name][1].format(jobs="a job" if asked == 1 else plural(asked), queue=queue)
        return f"did “{self.action}” ({plural(count)})"

    @property
    def sentence(self) -> str:
        """The whole entry in words: ``olivia retried 3 jobs``."""
        return f"{self.user or 'someone'} {self.phrase}"

    @property
    def linked_jobs(self) -> list[str]:
        """The jobs to link to (a bulk entry's is its background job)."""
        return self.job_ids[:MAX_LINKED_JOBS]

    @property
    def list_url(self) -> str | None:
        """For a bulk action: the list of what its filter matches."""
        return filter_url(self.job_filter or {}) if self.is_bulk else None

    def as_json(self) -> dict:
        """The JSON API form."""
        return {"id": self.id, "at": Formats.iso(self.at), "user": self.user, "action": self.name,
                "label": self.label, "sentence": self.sentence, "job_ids": self.job_ids,
                "filter": self.job_filter, "count": self.count}


def audit_rows(limit: int = 100, cursor: int | None = None) -> tuple[list[AuditRow], int | None]:
    """A page of the audit log, newest first, and the cursor of the next page."""
    entries, next_cursor = queries.audit_log(limit=limit, cursor=cursor)
    return [AuditRow(id=e.id, at=e.at, user=e.user, action=e.action, job_ids=e.ids, job_filter=e.filter,
                     count=e.count) for e in entries], next_cursor
