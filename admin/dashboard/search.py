"""The header search: where a typed text leads, and suggestions while typing.

* a full job id, the short id the lists show (``#1a2b3c4d``, with or without ``#``) or a
  unique id prefix goes straight to that job (several matches list them);
* a task name, or the start of task names, lists those tasks' jobs;
* anything else searches arguments and errors, as the lists' text filter does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from flask import url_for

from admin.dashboard.guard import ENDPOINT
from tasks import queries
from tasks.registry import REGISTRY

#: hex digits that may be (part of) a job id: 4 or more after a "#", else at least the short id's 8
ID_LIKE = re.compile(r"[0-9a-f]{4,32}")
SHORT_ID_LENGTH = 8
FULL_ID_LENGTH = 32
MAX_SUGGESTIONS = 5
#: a task filter ending with this matches every task whose name starts with the rest
TASK_PREFIX_MARK = "*"


def id_candidate(text: str) -> str | None:
    """``text`` as lower-case hex without its ``#`` when it reads as a job id or part of one."""
    text = text.strip()
    candidate = text.lstrip("#").strip().lower()
    if not ID_LIKE.fullmatch(candidate):
        return None
    return candidate if text.startswith("#") or len(candidate) >= SHORT_ID_LENGTH else None


def jobs_with_id(candidate: str, limit: int = 2) -> list[str]:
    """Ids matching ``candidate``: the id itself or ids starting with it, and (shorter than a full id)
    ids ending with it — the short ``#1a2b3c4d`` the lists show is an id's end."""
    found = queries.job_ids_starting(candidate, limit)
    if len(candidate) < FULL_ID_LENGTH:
        found += [job_id for job_id in queries.job_ids_ending(candidate, limit) if job_id not in found]
    return found[:limit]


def tasks_named(text: str) -> list[str]:
    """Registered task names equal to ``text``, else starting with it."""
    name = text.strip()
    if name in REGISTRY:
        return [name]
    return sorted(task for task in REGISTRY if name and task.startswith(name))


def task_filter(names: list[str], typed: str) -> str:
    """The list's ``task`` parameter for ``names``: the name itself, or ``typed*`` for several."""
    return names[0] if len(names) == 1 else typed.strip() + TASK_PREFIX_MARK


def expand_tasks(value: str) -> tuple[str, ...] | None:
    """The task names a ``task`` parameter means: None for an exact name, else the names it starts."""
    if not value.endswith(TASK_PREFIX_MARK):
        return None
    prefix = value[:-len(TASK_PREFIX_MARK)]
    return tuple(sorted(task for task in REGISTRY if task.startswith(prefix)))


def job_url(job_id: str) -> str:
    """The job page of ``job_id``."""
    return url_for(f"{ENDPOINT}.job", job_id=job_id)


def list_url(**params: str) -> str:
    """Every job, narrowed by ``params``."""
    return url_for(f"{ENDPOINT}.jobs", slug="all", **params)


def destination(text: str) -> str:
    """Where the header search for ``text`` leads (see the module docstring)."""
    text = text.strip()[:500]
    if not text:
        return list_url()
    candidate = id_candidate(text)
    if candidate:
        ids = jobs_with_id(candidate)
        if len(ids) == 1:
            return job_url(ids[0])
        if ids:
            return list_url(id=candidate)
    names = tasks_named(text)
    if names:
        return list_url(task=task_filter(names, text))
    return list_url(q=text)


@dataclass
class Suggestion:
    """One suggestion under the search box: what it says and where it leads."""

    label: str
    detail: str
    url: str

    def as_json(self) -> dict:
        """The suggestion as JSON."""
        return {"label": self.label, "detail": self.detail, "url": self.url}


def job_suggestions(candidate: str) -> list[Suggestion]:
    """Jobs whose id starts or ends with ``candidate``."""
    ids = jobs_with_id(candidate, MAX_SUGGESTIONS)
    jobs = [job for job in (queries.get_job(job_id) for job_id in ids) if job is not None]
    return [Suggestion(f"#{job.id[-8:]} {job.display_name or job.task}", f"{job.state} job", job_url(job.id))
            for job in jobs]


def task_suggestions(text: str) -> list[Suggestion]:
    """Registered tasks whose name starts with (then contains) ``text``."""
    needle = text.strip().lower()
    names = sorted(REGISTRY, key=lambda name: (not name.lower().startswith(needle), name))
    return [Suggestion(name, "jobs of this task", list_url(task=name))
            for name in names if needle in name.lower()][:MAX_SUGGESTIONS]


def suggestions(text: str) -> list[Suggestion]:
    """What the search box offers for ``text``: matching jobs, matching tasks, then a text search."""
    text = text.strip()[:500]
    if not text:
        return []
    candidate = id_candidate(text)
    found = job_suggestions(candidate) if candidate else []
    found += task_suggestions(text)
    found.append(Suggestion(f"Search arguments and errors for “{text}”", "text search", list_url(q=text)))
    return found
