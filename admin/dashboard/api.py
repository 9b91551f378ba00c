"""The dashboard's JSON API at ``<dashboard path>/api``, under the same authorization chain.

Callers authenticate with a session cookie or a bearer token (``POST /api/token``).
Reads: ``GET /stats``, ``/jobs`` (filters as on the pages, plus ``state``/``retrying``,
``limit`` 1–1000, ``cursor``), ``/jobs/<id>``, ``/queues``, ``/servers``, ``/audit``,
``/recurring``, ``/search?q=`` (where the header search leads, and suggestions),
``/metrics?window=hour|day|week`` (per task figures, as on the Metrics page).
Actions (refused to read-only users with 403), job actions named as in ``tasks.actions``:

* ``POST /jobs`` enqueues ``{"task", "args", "kwargs", "queue", "delay"}`` (201, or 400 naming each field);
* ``POST /jobs/<id>/<action>``; ``POST /actions/<action>`` with ``{"ids": [...]}`` (now), or with
  ``{"filter": {...}}`` — a non-empty filter, or ``"all": true`` for every job — run in the
  background (202 with the bulk job's id and how many jobs it will touch);
* ``POST /queues/<pause|resume>`` with ``{"queue"}``;
* ``POST /recurring/<id>/<action>`` (404 for an unknown id) and ``POST /recurring/actions/<action>``
  with ``{"ids": [...]}``.

Every answer is JSON, errors included: a body that isn't a JSON object, fields of the wrong
type, unknown routes and methods get a 4xx with ``{"error": ...}``.

The app-wide CSRF check can't apply to bearer callers, so this view's blueprint is
exempt from it; instead every change must carry a bearer token, or else a valid
CSRF token (``X-CSRFToken`` header) with the session cookie — anything else is a 403.
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_admin import expose

from admin.access import json_error
from admin.dashboard.actions import (
    ActionError,
    UnknownRecurring,
    act_on_filter,
    act_on_jobs,
    act_on_recurring,
    bulk_json,
    set_queue_paused,
)
from admin.dashboard.audit import MAX_CURSOR, audit_rows
from admin.dashboard.data import job_page, overview, recurring_rows
from admin.dashboard.enqueue import EnqueueForm, submit_enqueue
from admin.dashboard.formats import Formats
from admin.dashboard.guard import DashboardView
from admin.dashboard.lists import FILTER_PARAMS, BadListQuery, api_list_query, is_job_id
from admin.dashboard.live import live, queue_rows, server_rows
from admin.dashboard.metrics import WINDOWS, UnknownWindow, metrics_page
from admin.dashboard.schemas import (ACTION_BODY, ACTION_DONE, AUDIT, AUDIT_QUERY, BAD_REQUEST,
                                     BULK_STARTED, ENQUEUED, FIELD_ERRORS, IDS_BODY, INDEX,
                                     JOB_ACTION, JOB_DETAIL, JOB_FILTERS, JOB_PAGE, NO_ACTION, NO_JOB,
                                     NO_RECURRING, QUEUE_BODY, QUEUE_DONE, QUEUES, RECURRING,
                                     RECURRING_ACTION, RECURRING_DONE, REFUSALS, SEARCH, SEARCH_QUERY,
                                     SERVERS, STATS, TAGS, METRICS, enqueue_body, metrics_query)
from admin.dashboard.search import destination, suggestions
from app.auth.csrf import csrf_refusal
from app.extensions import csrf
from app.metrics import HOST_ONLY
from app.openapi.registry import ANY, documented, enum
from app.openapi.registry import Response as Answer
from tasks import queries
from tasks.actions import JOB_ACTIONS, RECURRING_ACTIONS
from tasks.tenancy import current_scope

ENDPOINTS = ["GET stats", "GET jobs", "GET jobs/<id>", "GET queues", "GET servers", "GET audit",
             "GET recurring", "GET search?q=", "GET metrics?window=hour|day|week", "POST jobs",
             f"POST jobs/<id>/<{'|'.join(JOB_ACTIONS)}>",
             f"POST actions/<{'|'.join(JOB_ACTIONS)}>", "POST queues/<pause|resume>",
             f"POST recurring/<id>/<{'|'.join(RECURRING_ACTIONS)}>",
             f"POST recurring/actions/<{'|'.join(RECURRING_ACTIONS)}>"]
#: what a bulk filter may name: the list parameters, plus the state or retries list
FILTER_FIELDS = frozenset(FILTER_PARAMS) | {"state", "retrying"}
MAX_IDS = 10_000


class ApiError(Exception):
    """A request the API answers with a 4xx: ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def answer_error(error: ApiError) -> Response:
    """The JSON answer to an ``ApiError``."""
    return json_error(error.status, error.message)


def body() -> dict[str, Any]:
    """The request's JSON object (or form fields; ``{}`` when there is no body).

    ``ApiError`` 400 for a body that isn't valid JSON, or isn't an object.
    """
    if request.form:
        return {key: values if key == "ids" else values[0] for key, values in request.form.lists()}
    if not request.get_data(cache=True).strip():
        return {}
    data = request.get_json(force=True)  # bounded: malformed, too deep or unstorable text is a 400
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, not {type(data).__name__}")
    return data


def string_list(data: dict, name: str) -> list[str]:
    """``data[name]`` as a list of strings; ``ApiError`` 400 when it is anything else."""
    values = data.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ApiError(400, f"“{name}” must be a list of strings")
    if len(values) > MAX_IDS:
        raise ApiError(400, f"“{name}” may hold at most {MAX_IDS:,} entries")
    return values


def filter_query(data: dict):
    """The list query a bulk action's ``filter`` names; it must narrow, unless ``"all": true``."""
    job_filter, everything = data["filter"], data.get("all", False)
    if not isinstance(job_filter, dict):
        raise ApiError(400, "“filter” must be a JSON object of list parameters")
    if not isinstance(everything, bool):
        raise ApiError(400, "“all” must be true or false")
    unknown = sorted(set(job_filter) - FILTER_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown filter field {unknown[0]!r}; one of {', '.join(sorted(FILTER_FIELDS))}")
    if not all(isinstance(v, (str, int, float, bool)) for v in job_filter.values()):
        raise ApiError(400, "filter values must be strings, numbers or booleans")
    narrowing = {k: str(v) for k, v in job_filter.items() if v not in ("", None, False)}
    if not narrowing and not everything:
        raise ApiError(400, 'an empty filter matches every job: send "all": true to act on all of them')
    try:
        return api_list_query(narrowing)
    except BadListQuery as exc:
        raise ApiError(400, str(exc)) from None


def int_arg(name: str, default: int | None, low: int = 0, high: int = MAX_CURSOR) -> int | None:
    """Query parameter ``name`` as a whole number from ``low`` to ``high``; ``ApiError`` 400 otherwise."""
    text = request.args.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"“{name}” must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"“{name}” must be from {low:,} to {high:,}")
    return value


def iso_times(record: dict) -> dict:
    """``record`` with its datetimes as ISO 8601 ``…Z`` strings."""
    return {key: Formats.iso(value) if hasattr(value, "isoformat") else value
            for key, value in record.items()}


class HangfireApiView(DashboardView):
    """JSON stats, lists, job detail, search and actions."""

    json_api = True

    def is_visible(self) -> bool:
        """Never in the menu (the pages' view is)."""
        return False

    def create_blueprint(self, admin):
        """The view's blueprint: exempt from the app-wide CSRF check (see the module docstring), and
        answering its own refusals (``ApiError``) in JSON."""
        blueprint = super().create_blueprint(admin)
        csrf.exempt(blueprint)
        blueprint.register_error_handler(ApiError, answer_error)
        return blueprint

    def _handle_view(self, name: str, **kwargs: Any):
        """The chain, then: a change needs a bearer token or the session's CSRF token."""
        refused = super()._handle_view(name, **kwargs)
        if refused is None and self.changes_things(name):
            return csrf_refusal()
        return refused

    # --- reads -------------------------------------------------------------------------------
    @expose("/")
    @documented("What the dashboard API offers", {200: INDEX, **REFUSALS}, tags=TAGS)
    def index(self):
        """What this API offers (Flask-Admin needs a default route)."""
        return jsonify(endpoints=ENDPOINTS, read_only=self.read_only)

    @expose("/stats")
    @documented("Counters per state, retries, recurring, workers, queues", {200: STATS, **REFUSALS},
                tags=TAGS)
    def stats(self):
        """Counters per state, retries, recurring, workers, queues, the transport, and whether the caller
        is read-only (worker figures are null while the transport doesn't answer)."""
        return jsonify(overview(with_charts=False).as_json()
                       | {"queues": [iso_times(q) for q in queue_rows()], "read_only": self.read_only,
                          "transport": live().as_json()})

    @expose("/jobs")
    @documented("A page of jobs, filtered", {200: JOB_PAGE, **REFUSALS, 400: BAD_REQUEST},
                tags=TAGS, query=JOB_FILTERS)
    def jobs(self):
        """A page of jobs: ``state``/``retrying``, ``q``, ``task``, ``queue``, ``enqueued_by``, ``since``,
        ``until``, ``recurring``, ``id``, ``limit``, ``cursor``."""
        try:
            query = api_list_query(request.args)
        except BadListQuery as exc:
            raise ApiError(400, str(exc)) from None
        return jsonify(job_page(query).as_json())

    @expose("/search")
    @documented("Where the header search leads, and suggestions", {200: SEARCH, **REFUSALS},
                tags=TAGS, query=SEARCH_QUERY)
    def search(self):
        """``?q=``: where the header search leads (``go``) and suggestions while typing."""
        text = request.args.get("q", "")
        return jsonify(go=destination(text), suggestions=[s.as_json() for s in suggestions(text)])

    @expose("/jobs/<job_id>")
    @documented("Everything about one job, history included", {200: JOB_DETAIL, **REFUSALS, 404: NO_JOB},
                tags=TAGS)
    def job(self, job_id: str):
        """Everything about one job, history included."""
        job = queries.get_job(job_id) if is_job_id(job_id) else None
        if job is None:
            raise ApiError(404, "no such job")
        return jsonify(queries.job_detail(job))

    @expose("/queues")
    @documented("Every queue: length, oldest job's age, paused, live readers", {200: QUEUES, **REFUSALS},
                tags=TAGS)
    def queues(self):
        """Every queue: length, oldest job's age, paused and live readers (null when unknown)."""
        return jsonify(queues=queue_rows(), transport=live().as_json())

    @expose("/servers")
    @documented("Registered workers, live ones first", {200: SERVERS, **REFUSALS}, tags=TAGS)
    def servers(self):
        """Registered workers, live ones first."""
        return jsonify(servers=[iso_times(worker) for worker in server_rows()], transport=live().as_json())

    @expose("/audit")
    @documented("The audit log, newest first", {200: AUDIT, **REFUSALS, 400: BAD_REQUEST},
                tags=TAGS, query=AUDIT_QUERY)
    def audit(self):
        """The audit log, newest first, each entry with its button's label and a sentence (``cursor``
        continues, ``limit`` 1–500)."""
        limit, cursor = int_arg("limit", 100, 1, 500), int_arg("cursor", None, 1)
        entries, next_cursor = audit_rows(limit=limit, cursor=cursor)
        return jsonify(entries=[entry.as_json() for entry in entries], next_cursor=next_cursor)

    @expose("/recurring")
    @documented("Every recurring job", {200: RECURRING, **REFUSALS}, tags=TAGS)
    def recurring(self):
        """Every recurring job: schedule (and in words), zone, next run, last run and its state, error."""
        return jsonify(recurring=[iso_times(row) for row in recurring_rows()])

    @expose("/metrics")
    @documented("Per task figures over the last hour, day or week",
                {200: METRICS, **REFUSALS, 400: BAD_REQUEST}, tags=TAGS, query=metrics_query(WINDOWS))
    def metrics(self):
        """Per task over ``window`` (``hour``, the default, ``day`` or ``week``); 400 for another window.

        Answer: ``{"window": str, "since": ISO time (start of the oldest slot), "slot_seconds": int,
        "tasks": [{"task": str, "runs": int, "failures": int, "failure_rate": float|null,
        "succeeded": int, "failed": int, "retried": int, "deleted": int, "started": int,
        "duration_p50_s", "duration_p95_s", "duration_mean_s", "queue_wait_p95_s",
        "queue_wait_mean_s": float|null, "series": {"runs": [int], "failures": [int]}}]}``
        (runs are attempts that ended; failures the attempts that raised; a series has one count
        per slot, oldest first). Host users only: 403 for a tenant's.
        """
        if current_scope() is not None:
            raise ApiError(403, HOST_ONLY)
        try:
            return jsonify(metrics_page(request.args.get("window")).as_json())
        except UnknownWindow as exc:
            raise ApiError(400, str(exc)) from None

    # --- actions -----------------------------------------------------------------------------
    @expose("/jobs", methods=("POST",))
    @documented("Enqueue a registered task",
                {201: Answer("enqueued", ENQUEUED), 400: FIELD_ERRORS, **REFUSALS},
                methods=["POST"], body=enqueue_body, tags=TAGS)
    def enqueue(self):
        """Enqueue a registered task: 201 with its id, or 400 naming each problem."""
        try:
            form = EnqueueForm.from_mapping(body())
        except TypeError as exc:
            raise ApiError(400, str(exc)) from None
        job_id = submit_enqueue(form)
        if job_id is None:
            response = jsonify(error=form.error, errors=form.errors)
            response.status_code = 400
            return response
        return jsonify(id=job_id), 201

    @expose("/jobs/<job_id>/<action>", methods=("POST",))
    @documented("Run an action on one job", {200: ACTION_DONE, 400: BAD_REQUEST, 404: NO_ACTION, **REFUSALS},
                methods=["POST"], path={"action": JOB_ACTION}, body=ANY, body_required=False, tags=TAGS)
    def job_action(self, job_id: str, action: str):
        """Run one action on one job."""
        return self.run_action(action, {"ids": [job_id]})

    @expose("/actions/<action>", methods=("POST",))
    @documented("Run an action on jobs by id (now) or on everything a filter matches (in the background)", {
        200: ACTION_DONE, 202: Answer("the bulk job started", BULK_STARTED), 400: BAD_REQUEST,
        404: NO_ACTION, **REFUSALS},
        methods=["POST"], path={"action": JOB_ACTION}, body=ACTION_BODY, tags=TAGS)
    def act(self, action: str):
        """Run an action on ``{"ids": [...]}`` now, or on ``{"filter": {...}}`` in the background."""
        return self.run_action(action, body())

    @staticmethod
    def run_action(action: str, data: dict):
        """Apply ``action`` to ``data``'s ids (200) or filter (202, with the count it will touch)."""
        if action not in JOB_ACTIONS:
            raise ApiError(404, f"no action {action!r}; one of {', '.join(JOB_ACTIONS)}")
        try:
            if "filter" in data:
                return jsonify(bulk_json(act_on_filter(action, filter_query(data).job_filter))), 202
            if "ids" not in data:
                raise ApiError(400, 'send {"ids": [...]}, or {"filter": {...}} for everything matching')
            return jsonify(act_on_jobs(action, string_list(data, "ids")).as_json())
        except ActionError as exc:
            raise ApiError(400, str(exc)) from None

    @expose("/queues/<operation>", methods=("POST",))
    @documented("Pause or resume a queue", {200: QUEUE_DONE, 400: BAD_REQUEST, 404: NO_ACTION, **REFUSALS},
                methods=["POST"], path={"operation": enum(["pause", "resume"])}, body=QUEUE_BODY, tags=TAGS)
    def queue_action(self, operation: str):
        """Pause or resume ``{"queue": name}``."""
        if operation not in ("pause", "resume"):
            raise ApiError(404, "use /queues/pause or /queues/resume")
        queue = body().get("queue", "")
        if not isinstance(queue, str):
            raise ApiError(400, "“queue” must be a string")
        try:
            message = set_queue_paused(queue, operation == "pause")
        except ActionError as exc:
            raise ApiError(400, str(exc)) from None
        return jsonify(message=message, queue=queue, paused=operation == "pause")

    @expose("/recurring/actions/<action>", methods=("POST",))
    @documented("Trigger, enable, disable or delete recurring jobs", {
        200: RECURRING_DONE, 400: BAD_REQUEST, 404: NO_RECURRING, **REFUSALS},
        methods=["POST"], path={"action": RECURRING_ACTION}, body=IDS_BODY, tags=TAGS)
    def recurring_bulk(self, action: str):
        """Trigger, enable, disable or delete ``{"ids": [...]}`` recurring jobs."""
        return self.run_recurring(action, string_list(body(), "ids"))

    @expose("/recurring/<path:recurring_id>/<action>", methods=("POST",))
    @documented("Trigger, enable, disable or delete one recurring job", {
        200: RECURRING_DONE, 400: BAD_REQUEST, 404: NO_RECURRING, **REFUSALS},
        methods=["POST"], path={"action": RECURRING_ACTION}, body=ANY, body_required=False, tags=TAGS)
    def recurring_action(self, recurring_id: str, action: str):
        """Trigger now, enable, disable or delete one recurring job."""
        return self.run_recurring(action, [recurring_id])

    @staticmethod
    def run_recurring(action: str, recurring_ids: list[str]):
        """Apply a recurring action; 404 for an unknown action or recurring job."""
        if action not in RECURRING_ACTIONS:
            raise ApiError(404, f"no action {action!r}; one of {', '.join(RECURRING_ACTIONS)}")
        try:
            return jsonify(act_on_recurring(action, recurring_ids).as_json())
        except UnknownRecurring as exc:
            raise ApiError(404, str(exc)) from None
        except ActionError as exc:
            raise ApiError(400, str(exc)) from None
