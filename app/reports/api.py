"""The reports JSON API at ``/api/reports``: the pages' features for API clients.

| route | what |
|---|---|
| ``GET /api/reports`` | the caller's reports, newest first (``?scope=all``: everyone's, for "All reports") |
| ``POST /api/reports`` | ``{"kind", "format", "start", "end", "include_inactive"}`` → 201 and the report |
| ``GET /api/reports/<id>`` | the report: state, progress, message, error, download URL once ready |
| ``GET /api/reports/<id>/download`` | the file (404 until it is ready) |
| ``POST /api/reports/<id>/retry`` | build a failed report again (409 unless it failed) |

Authorization is the pages': a bearer token or a session (changes then need ``X-CSRFToken``);
a report that doesn't exist and one the caller may not see get the same 404. Errors are
``{"error": ...}`` (field problems add ``"errors": {field: [messages]}``).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from app.auth.csrf import csrf_refusal
from app.auth.responses import json_error
from app.extensions import csrf
from app.openapi.registry import (ANY, DATE_TIME, STRING, Param, Response, array_of, documented, enum, error,
                                  obj)
from app.reports.catalog import KINDS, kinds_for
from app.reports.forms import ReportForm
from app.reports.models import Report
from app.reports.status import REPORT_STATUS, status_json
from app.reports.storage import FORMATS
from app.reports.views import history, rebuild, sees_all, send_report, start_report, visible_report
from app.web import add_api_prefix

bp = Blueprint("reports_api", __name__, url_prefix="/api/reports")
csrf.exempt(bp)
TAGS = ("Reports",)
FIELD_TYPES = {"kind": str, "format": str, "start": str, "end": str, "include_inactive": bool}

REPORT = {**REPORT_STATUS,
          "properties": {**REPORT_STATUS["properties"], "kind": enum(KINDS), "parameters": obj(required=[]),
                         "created_at": DATE_TIME, "expires_at": DATE_TIME},
          "required": sorted([*REPORT_STATUS["required"], "kind", "parameters", "created_at", "expires_at"])}
NEW_REPORT = obj(
    required=["kind"], additional=False,
    kind=enum(KINDS), format={**enum(FORMATS), "default": "csv"},
    start={"type": "string", "format": "date", "description": "first UTC day (job activity)"},
    end={"type": "string", "format": "date", "description": "last UTC day, inclusive (job activity)"},
    include_inactive={"type": "boolean", "default": False, "description": "access review"},
)
FIELD_ERRORS = Response("a field is missing, of the wrong type or refused",
                        obj(error=STRING, errors=obj(required=[], additional=array_of(STRING)),
                            required=["error"]))
NOT_FOUND = error("no such report (or not the caller's)")


def iso(moment) -> str:
    """A naive UTC datetime as ISO 8601 with ``Z``."""
    return moment.isoformat(timespec="seconds") + "Z"


def report_json(report: Report) -> dict:
    """The API's view of ``report``: its status plus what was asked and when."""
    return status_json(report, "reports_api.download") | {
        "kind": report.kind, "parameters": report.parameters,
        "created_at": iso(report.created_at), "expires_at": iso(report.expires_at),
    }


def request_form() -> tuple[ReportForm | None, dict]:
    """The report form filled from the JSON body, or None and the field problems."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return None, {"body": ["expected a JSON object such as {\"kind\": \"job-activity\"}"]}
    problems = {name: [f"unknown field; one of {', '.join(FIELD_TYPES)}"]
                for name in data if name not in FIELD_TYPES}
    problems |= {name: [f"must be a {kind.__name__.replace('str', 'string').replace('bool', 'boolean')}"]
                 for name, kind in FIELD_TYPES.items() if name in data and not isinstance(data[name], kind)}
    if problems:
        return None, problems
    fields = MultiDict({name: value for name, value in data.items() if name != "include_inactive"})
    fields.setdefault("format", "csv")
    if data.get("include_inactive"):
        fields["include_inactive"] = "y"
    form = ReportForm(kinds_for(current_user), formdata=fields, meta={"csrf": False})
    return (form, {}) if form.validate() else (None, form.errors)


@bp.before_request
def changes_need_csrf_or_bearer():
    """A change needs a bearer token, or the session's CSRF token (see :mod:`app.auth.csrf`)."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and current_user.is_authenticated:
        return csrf_refusal()
    return None


@bp.route("", methods=["GET"])
@login_required
@documented("List your reports", {200: obj(reports=array_of(REPORT))}, tags=TAGS, query=[
    Param("scope", enum(["mine", "all"]), "all: everyone's (needs Pages.Reports.All; else yours)"),
])
def index():
    """The caller's newest reports (everyone's with ``?scope=all`` for holders of "All reports")."""
    everyone = request.args.get("scope") == "all" and sees_all()
    return jsonify(reports=[report_json(report) for report in history(everyone)])


@bp.route("", methods=["POST"])
@login_required
@documented("Generate a report", {201: Response("accepted: the build job is enqueued", REPORT,
                                                headers={"Location": "the report's URL"}),
                                  400: FIELD_ERRORS, 403: error("a session request without X-CSRFToken")},
            methods=["POST"], body=NEW_REPORT, tags=TAGS)
def create():
    """Record the report, enqueue its build and answer 201 at once (the job builds it)."""
    form, problems = request_form()
    if form is None:
        response = jsonify(error="; ".join(f"{name}: {' '.join(text)}" for name, text in problems.items()),
                           errors=problems)
        return response, 400
    report = start_report(form)
    return jsonify(report_json(report)), 201, {"Location": url_for(".show", report_id=report.id)}


@bp.route("/<id:report_id>", methods=["GET"])
@login_required
@documented("A report's status and progress", {200: REPORT, 404: NOT_FOUND}, tags=TAGS)
def show(report_id: int):
    """The report: state, progress and message while it builds, the download URL once ready."""
    response = jsonify(report_json(visible_report(report_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<id:report_id>/download", methods=["GET"])
@login_required
@documented("Download a ready report", {
    200: Response("the file", {"type": "string", "contentMediaType": "application/octet-stream"},
                  media_types=tuple(media for _, media in FORMATS.values())),
    404: error("no such report, not the caller's, or not ready"),
}, tags=TAGS)
def download(report_id: int):
    """The file, as an attachment."""
    return send_report(visible_report(report_id))


@bp.route("/<id:report_id>/retry", methods=["POST"])
@login_required
@documented("Build a failed report again", {
    200: REPORT, 404: NOT_FOUND, 409: error("the report hasn't failed"),
    403: error("a session request without X-CSRFToken"),
}, methods=["POST"], body=ANY, body_required=False, tags=TAGS)
def retry(report_id: int):
    """Enqueue a new build of a failed report; 409 when it hasn't failed."""
    report = visible_report(report_id)
    if not rebuild(report):
        return json_error(409, f"report #{report.id} hasn't failed; nothing to retry")
    return jsonify(report_json(report))


def init_app(app) -> None:
    """Register the blueprint (its path is under ``/api/``: every answer is JSON)."""
    add_api_prefix(app, "/api/")
    app.register_blueprint(bp)
