"""The dashboard's JSON API at ``<dashboard path>/api``, under the same authorization chain.

Callers authenticate with a session cookie or a bearer token (``POST /api/token``).
Reads:  ``GET /stats``, ``/jobs`` (filters as on the pages, plus ``state``/``retrying``,
``limit`` 1–1000, ``cursor``), ``/jobs/<id>``, ``/queues``, ``/servers``, ``/audit``.
Actions (refused to read-only users with 403):
``POST /jobs`` (enqueue ``{"task", "args", "kwargs", "queue", "delay"}``),
``POST /jobs/<id>/<requeue|trigger|delete|cancel>``,
``POST /actions/<requeue|trigger|delete|cancel>`` with ``{"ids": [...]}`` or ``{"filter": {...}}``
(bulk: 202 and the background job's id; not for cancel), ``POST /queues/<pause|resume>`` with ``{"queue"}``,
``POST /recurring/<id>/<trigger|enable|disable|delete>`` (404 for an unknown id).
Reads also include ``GET /recurring`` (every recurring job, its schedule and last run).

The app-wide CSRF check can't apply to bearer callers, so this view's blueprint is
exempt from it; instead every change must carry a bearer token, or else a valid
CSRF token (``X-CSRFToken`` header) with the session cookie — anything else is a 403.
"""
from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_admin import expose
from flask_wtf.csrf import CSRFError

from admin.access import json_error
from admin.dashboard.actions import (
    RECURRING_ACTIONS,
    ActionError,
    UnknownRecurring,
    act_on_filter,
    act_on_jobs,
    act_on_recurring,
    bulk_json,
    set_queue_paused,
)
from admin.dashboard.data import audit_rows, job_page, overview, recurring_rows
from admin.dashboard.live import live, queue_rows, server_rows
from admin.dashboard.enqueue import EnqueueForm, submit_enqueue
from admin.dashboard.formats import Formats
from admin.dashboard.guard import DashboardView
from admin.dashboard.lists import BadListQuery, api_list_query
from app.auth.tokens import bearer_token
from app.extensions import csrf
from tasks import queries

ENDPOINTS = ["GET stats", "GET jobs", "GET jobs/<id>", "GET queues", "GET servers", "GET audit",
             "GET recurring", "POST jobs", "POST jobs/<id>/<requeue|trigger|delete|cancel>",
             "POST actions/<requeue|trigger|delete|cancel>", "POST queues/<pause|resume>",
             "POST recurring/<id>/<trigger|enable|disable|delete>"]
CSRF_REFUSED = "a session request that changes something needs an X-CSRFToken header (or use a bearer token)"


def body() -> dict[str, Any]:
    """The request's JSON object (or form fields); an empty dict when there is none."""
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    return request.form.to_dict() if request.form else {}


def iso_times(record: dict) -> dict:
    """``record`` with its datetimes as ISO 8601 ``…Z`` strings."""
    return {key: Formats.iso(value) if hasattr(value, "isoformat") else value
            for key, value in record.items()}


def cookie_csrf_refusal():
    """None when this session request carries a valid CSRF token, else a 403 JSON answer."""
    try:
        csrf.protect()
    except CSRFError:
        return json_error(403, CSRF_REFUSED)
    return None


class HangfireApiView(DashboardView):
    """JSON stats, lists, job detail and actions."""

    json_api = True

    def is_visible(self) -> bool:
        """Never in the menu (the pages' view is)."""
        return False

    def create_blueprint(self, admin):
        """The view's blueprint, exempt from the app-wide CSRF check (see the module docstring)."""
        blueprint = super().create_blueprint(admin)
        csrf.exempt(blueprint)
        return blueprint

    def _handle_view(self, name: str, **kwargs: Any):
        """The chain, then: a change needs a bearer token or the session's CSRF token."""
        refused = super()._handle_view(name, **kwargs)
        if refused is None and self.changes_things(name) and bearer_token(request) is None:
            return cookie_csrf_refusal()
        return refused

    # --- reads -------------------------------------------------------------------------------
    @expose("/")
    def index(self):
        """What this API offers (Flask-Admin needs a default route)."""
        return jsonify(endpoints=ENDPOINTS, read_only=self.read_only)

    @expose("/stats")
    def stats(self):
        """Counters per state, retries, recurring, workers, queues, and whether the caller is read-only."""
        return jsonify(overview(with_charts=False).as_json()
                       | {"queues": [iso_times(q) for q in queue_rows()], "read_only": self.read_only,
                          "transport": live().as_json()})

    @expose("/jobs")
    def jobs(self):
        """A page of jobs: ``state``/``retrying``, ``q``, ``task``, ``queue``, ``enqueued_by``, ``since``,
        ``until``, ``limit``, ``cursor``."""
        try:
            query = api_list_query(request.args)
        except BadListQuery as exc:
            return json_error(400, str(exc))
        return jsonify(job_page(query).as_json())

    @expose("/jobs/<job_id>")
    def job(self, job_id: str):
        """Everything about one job, history included."""
        job = queries.get_job(job_id[:64])
        if job is None:
            return json_error(404, "no such job")
        return jsonify(queries.job_detail(job))

    @expose("/queues")
    def queues(self):
        """Every queue: length, oldest job's age, paused."""
        return jsonify(queues=queue_rows(), transport=live().as_json())

    @expose("/servers")
    def servers(self):
        """Registered workers, live ones first."""
        return jsonify(servers=[iso_times(worker) for worker in server_rows()], transport=live().as_json())

    @expose("/audit")
    def audit(self):
        """The audit log, newest first (``cursor`` continues)."""
        entries, next_cursor = audit_rows(limit=request.args.get("limit", 100, type=int),
                                          cursor=request.args.get("cursor", type=int))
        return jsonify(entries=[entry.as_json() for entry in entries], next_cursor=next_cursor)

    @expose("/recurring")
    def recurring(self):
        """Every recurring job: schedule (and in words), zone, next run, last run and its state, error."""
        return jsonify(recurring=[iso_times(row) for row in recurring_rows()])

    # --- actions -----------------------------------------------------------------------------
    @expose("/jobs", methods=("POST",))
    def enqueue(self):
        """Enqueue a registered task: 201 with its id, or 400 naming each problem."""
        form = EnqueueForm.from_mapping(body())
        job_id = submit_enqueue(form)
        if job_id is None:
            response = jsonify(error=form.error, errors=form.errors)
            response.status_code = 400
            return response
        return jsonify(id=job_id), 201

    @expose("/jobs/<job_id>/<action>", methods=("POST",))
    def job_action(self, job_id: str, action: str):
        """Requeue, trigger, delete or cancel one job."""
        return self.run_action(action, {"ids": [job_id]})

    @expose("/actions/<action>", methods=("POST",))
    def act(self, action: str):
        """Requeue, trigger, delete or cancel ``{"ids": [...]}`` now, or ``{"filter": {...}}`` in the
        background (not cancel)."""
        return self.run_action(action, body())

    def run_action(self, action: str, data: dict):
        """Apply ``action`` to ``data``'s ids (200) or filter (202)."""
        try:
            if "filter" in data:
                if not isinstance(data["filter"], dict):
                    raise ActionError("filter must be a JSON object of list parameters")
                query = api_list_query({k: str(v) for k, v in data["filter"].items()})
                return jsonify(bulk_json(act_on_filter(action, query.job_filter))), 202
            ids = data.get("ids")
            if not isinstance(ids, list):
                raise ActionError('send {"ids": [...]} or {"filter": {...}}')
            return jsonify(act_on_jobs(action, [str(i) for i in ids]).as_json())
        except (ActionError, BadListQuery) as exc:
            return json_error(400, str(exc))

    @expose("/queues/<operation>", methods=("POST",))
    def queue_action(self, operation: str):
        """Pause or resume ``{"queue": name}``."""
        if operation not in ("pause", "resume"):
            return json_error(404, "use /queues/pause or /queues/resume")
        try:
            message = set_queue_paused(str(body().get("queue", "")), operation == "pause")
        except ActionError as exc:
            return json_error(400, str(exc))
        return jsonify(message=message, queue=body().get("queue"), paused=operation == "pause")

    @expose("/recurring/<path:recurring_id>/<action>", methods=("POST",))
    def recurring_action(self, recurring_id: str, action: str):
        """Trigger now, enable, disable or delete one recurring job."""
        if action not in RECURRING_ACTIONS:
            return json_error(404, "use /recurring/<id>/" + "|".join(RECURRING_ACTIONS))
        try:
            return jsonify(act_on_recurring(action, recurring_id).as_json())
        except UnknownRecurring as exc:
            return json_error(404, str(exc))
