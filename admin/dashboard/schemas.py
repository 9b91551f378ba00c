"""JSON schemas of the dashboard API's requests and answers (used by ``@documented`` in :mod:`.api`).

Objects list the fields clients rely on; answers may carry more (``additionalProperties`` stays open).
Figures that depend on the transport (live workers, paused flags) are ``null`` while it doesn't answer.
"""
from __future__ import annotations

from app.openapi.registry import (ANY, BOOLEAN, DATE_TIME, INTEGER, NUMBER, STRING, Param, Response, array_of,
                                  enum, error, nullable, obj)
from tasks import lifecycle
from tasks.actions import JOB_ACTIONS, RECURRING_ACTIONS

TAGS = ("Dashboard",)
NULLABLE_TIME = nullable(DATE_TIME)
TRANSPORT = obj(available=BOOLEAN, error=nullable(STRING))
QUEUE = obj(name=STRING, length=nullable(INTEGER), oldest_age_seconds=nullable(NUMBER),
            paused=nullable(BOOLEAN), workers=nullable(INTEGER), unread=nullable(BOOLEAN), required=["name"])
QUEUES = obj(queues=array_of(QUEUE), transport=TRANSPORT)
STATS = obj(states=obj(required=[], additional=INTEGER), retries=INTEGER, retries_capped=BOOLEAN,
            recurring=INTEGER, workers=obj(alive=nullable(INTEGER), dead=nullable(INTEGER)),
            unread_queues=array_of(STRING), queues=array_of(QUEUE), read_only=BOOLEAN, transport=TRANSPORT,
            incidents=array_of(obj(required=[])))
JOB_SUMMARY = obj(id=STRING, task=STRING, queue=STRING, state=enum(lifecycle.STATES), attempt=INTEGER,
                  max_attempts=INTEGER, priority=INTEGER, display_name=nullable(STRING),
                  enqueued_by=nullable(STRING), created_at=DATE_TIME, state_changed_at=NULLABLE_TIME,
                  scheduled_for=NULLABLE_TIME, started_at=NULLABLE_TIME, finished_at=NULLABLE_TIME,
                  exception_type=nullable(STRING), exception_message=nullable(STRING),
                  required=["id", "task", "queue", "state"])
LISTED_JOB = {**JOB_SUMMARY, "properties": {**JOB_SUMMARY["properties"], "duration_s": nullable(NUMBER),
                                            "latency_s": nullable(NUMBER)}}
JOB_PAGE = obj(jobs=array_of(LISTED_JOB),
               next_cursor=nullable(STRING), count=INTEGER, count_capped=BOOLEAN, limit=INTEGER)
HISTORY_ENTRY = obj(state=STRING, at=DATE_TIME, reason=nullable(STRING), data=ANY, required=["state", "at"])
JOB_DETAIL = {**JOB_SUMMARY,
              "properties": {**JOB_SUMMARY["properties"], "args": ANY, "kwargs": ANY, "result": ANY,
                             "exception_traceback": nullable(STRING), "history": array_of(HISTORY_ENTRY)},
              "required": [*JOB_SUMMARY["required"], "history"]}
SERVERS = obj(servers=array_of(obj(required=[])), transport=TRANSPORT)
AUDIT_ENTRY = obj(id=INTEGER, at=DATE_TIME, user=nullable(STRING), action=STRING, label=STRING,
                  sentence=STRING, job_ids=array_of(STRING), filter=ANY, count=nullable(INTEGER))
AUDIT = obj(entries=array_of(AUDIT_ENTRY), next_cursor=nullable(INTEGER))
RECURRING = obj(recurring=array_of(obj(id=STRING, task=STRING, cron=STRING, timezone=STRING, enabled=BOOLEAN,
                                       next_run_at=NULLABLE_TIME, last_run_at=NULLABLE_TIME,
                                       last_job_id=nullable(STRING), last_state=nullable(STRING),
                                       error=nullable(STRING), tenant=nullable(STRING),
                                       required=["id", "task", "cron", "enabled"])))
SEARCH = obj(go=nullable(STRING), suggestions=array_of(obj(label=STRING, detail=STRING, url=STRING)))
INDEX = obj(endpoints=array_of(STRING), read_only=BOOLEAN)


def enqueue_body() -> dict:
    """The body of ``POST /jobs``: ``task`` is one of the tasks the dashboard offers (asked when the
    description is built, so jobs registered later are in it)."""
    from admin.dashboard.enqueue import enqueueable_tasks

    return obj(task=enum(sorted(d.name for d in enqueueable_tasks())), args={"type": "array"},
               kwargs={"type": "object"}, queue=STRING,
               delay={"type": ["number", "string"], "description": "seconds from now"}, required=["task"])


ENQUEUED = obj(id=STRING)
FIELD_ERRORS = Response("a field is refused (each named in errors)",
                        obj(error=STRING, errors=obj(required=[], additional=STRING), required=["error"]))
JOB_ACTION = enum(JOB_ACTIONS)
RECURRING_ACTION = enum(RECURRING_ACTIONS)
IDS = {"type": "array", "items": STRING, "maxItems": 10_000}
FILTER = obj(required=[], additional={"type": ["string", "number", "boolean"]},
             **{name: STRING for name in ("q", "task", "queue", "enqueued_by", "since", "until", "recurring",
                                          "id", "state")})
ACTION_BODY = {"oneOf": [obj(ids=IDS, additional=False),
                         obj(filter=FILTER, all=BOOLEAN, required=["filter"], additional=False)]}
ACTION_DONE = obj(action=STRING, requested=array_of(STRING), changed=array_of(STRING), message=STRING)
BULK_STARTED = obj(action=STRING, bulk_job_id=STRING, estimate=INTEGER, estimate_capped=BOOLEAN,
                   message=STRING)
QUEUE_BODY = obj(queue=STRING)
QUEUE_DONE = obj(message=STRING, queue=STRING, paused=BOOLEAN)
IDS_BODY = obj(ids=IDS)
RECURRING_DONE = obj(action=STRING, requested=array_of(STRING), message=STRING,
                     done=obj(required=[], additional=nullable(STRING)),
                     required=["action", "requested", "done", "message"])

BAD_REQUEST = error("a parameter or the body is refused (the message names it)")
FORBIDDEN = error("the dashboard's authorization refuses the caller (or a read-only caller tried a change, "
                  "or a session change came without X-CSRFToken)")
NO_JOB = error("no such job")
NO_ACTION = error("no such action")
NO_RECURRING = error("no such recurring job or action")
REFUSALS = {403: FORBIDDEN}
JOB_FILTERS = tuple(Param(name, STRING, text) for name, text in (
    ("state", f"which list: one of {', '.join(lifecycle.STATES)} (default: all jobs)"),
    ("retrying", "1: the Retries list (Scheduled jobs waiting for another attempt)"),
    ("q", "text in arguments or errors"), ("task", "task name, or a prefix ending in *"),
    ("queue", "queue name"), ("enqueued_by", "who enqueued"), ("since", "ISO date or time"),
    ("until", "ISO date or time"), ("recurring", "recurring job id"), ("id", "start of a job id (hex)"),
    ("cursor", "next_cursor of the previous page"),
)) + (Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),)
AUDIT_QUERY = (Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
               Param("cursor", {"type": "integer", "minimum": 1}, "next_cursor of the previous page"))
SEARCH_QUERY = (Param("q", STRING, "what was typed in the header search"),)
SECONDS = nullable(NUMBER)
TASK_METRICS = obj(task=STRING, runs=INTEGER, failures=INTEGER, failure_rate=SECONDS, succeeded=INTEGER,
                   failed=INTEGER, retried=INTEGER, deleted=INTEGER, started=INTEGER, duration_p50_s=SECONDS,
                   duration_p95_s=SECONDS, duration_mean_s=SECONDS, queue_wait_p95_s=SECONDS,
                   queue_wait_mean_s=SECONDS, series=obj(runs=array_of(INTEGER), failures=array_of(INTEGER)),
                   required=["task", "runs", "failures"])
METRICS = obj(window=STRING, since=DATE_TIME, slot_seconds=INTEGER, tasks=array_of(TASK_METRICS))


def metrics_query(windows) -> tuple[Param, ...]:
    """The Metrics API's one parameter: which window (``hour`` when absent)."""
    return (Param("window", enum(windows), "hour, day or week"),)
