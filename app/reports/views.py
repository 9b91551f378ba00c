"""``/reports``: generate reports, watch them build, download them.

| route | what |
|---|---|
| ``GET /reports`` | the form and the history (``?scope=all``: everyone's, with ``Pages.Reports.All``) |
| ``POST /reports`` | create a report and enqueue ``reports.build``; redirects back at once |
| ``GET /reports/<id>/status`` | JSON (state, progress, message, download URL) for the live progress bar |
| ``GET /reports/<id>/download`` | the file, to its owner or a holder of ``Pages.Reports.All`` |
| ``POST /reports/<id>/retry`` | build a failed report again |

Reports are named by integer id only. A report that doesn't exist and one the user
may not see get the same 404.
"""
from __future__ import annotations

import json
import os

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request
from flask import send_file, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.openapi.registry import documented, error
from app.permissions import REPORTS_ALL
from app.reports import storage
from app.reports.catalog import kinds_for
from app.reports.forms import ReportForm
from app.reports.jobs import build_report, retention
from app.reports.models import FAILED, QUEUED, READY, Report
from app.reports.notify import download_name
from app.reports.status import REPORT_STATUS, status_json, status_of
from tasks.ledger import utcnow

bp = Blueprint("reports", __name__, url_prefix="/reports")
HISTORY_LIMIT = 50


def sees_all() -> bool:
    """True when the signed-in user may see everyone's reports."""
    return current_user.has_permission(REPORTS_ALL)


def visible_report(report_id: int) -> Report:
    """The report, if the signed-in user owns it or sees all (a tenant's user: of their tenant); 404
    otherwise."""
    report = db.session.get(Report, report_id)
    in_reach = current_user.tenant_id is None or (report is not None
                                                  and report.user.tenant_id == current_user.tenant_id)
    if report is None or (report.user_id != current_user.id and not (sees_all() and in_reach)):
        abort(404)
    return report


def history(everyone: bool) -> list[Report]:
    """The newest reports of the signed-in user (or of everyone: a tenant's user sees their tenant's)."""
    query = select(Report).order_by(Report.created_at.desc(), Report.id.desc()).limit(HISTORY_LIMIT)
    if not everyone:
        query = query.where(Report.user_id == current_user.id)
    elif current_user.tenant_id is not None:
        query = query.join(User, Report.user_id == User.id).where(User.tenant_id == current_user.tenant_id)
    return list(db.session.scalars(query))


def render_page(form: ReportForm, status: int = 200):
    """The reports page: the form and the history."""
    everyone = request.args.get("scope") == "all" and sees_all()
    reports = history(everyone)
    return render_template("reports/index.html", form=form, reports=reports, everyone=everyone,
                           sees_all=sees_all(), statuses={r.id: status_of(r) for r in reports},
                           download_name=download_name), status


@bp.route("", methods=["GET"])
@login_required
def index():
    """The form and the history of past reports."""
    return render_page(ReportForm(kinds_for(current_user)))


@bp.route("", methods=["POST"])
@login_required
def create():
    """Record the report, enqueue its build (after commit) and come back to the page at once."""
    form = ReportForm(kinds_for(current_user))
    if not form.validate_on_submit():
        return render_page(form, 400)
    report = start_report(form)
    flash(f"Report #{report.id} is being generated. You can leave this page: it will be emailed to you.",
          f"info:report-{report.id}")
    return redirect(url_for(".index", _anchor=f"report-{report.id}"))


@bp.route("/<id:report_id>/status")
@login_required
@documented("A report's status for the reports page's progress bar (the API's is /api/reports/{report_id})",
            {200: REPORT_STATUS, 404: error("no such report (or not the caller's)")}, tags=("Reports",))
def status(report_id: int):
    """The report's live status as JSON (polled by the progress bar)."""
    response = jsonify(status_json(visible_report(report_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


def start_report(form: ReportForm) -> Report:
    """Record the report a validated ``form`` asks for (owned by the signed-in user), enqueue its
    build and commit."""
    kind, params = form.chosen_kind(), form.parameters()
    report = Report(user_id=current_user.id, kind=kind.key, format=form.format.data,
                    params=json.dumps(params), title=kind.describe(params),
                    origin=request.url_root.rstrip("/"), expires_at=utcnow() + retention())
    db.session.add(report)
    db.session.flush()
    report.job_id = build_report.enqueue(report.id)
    db.session.commit()
    return report


def send_report(report: Report):
    """The report's file as an attachment; 404 unless ready and its file present."""
    if report.state != READY:
        abort(404)
    try:
        path = storage.file_path(report.user_id, report.token, report.format)
    except storage.UnsafePath:
        abort(404)
    if not os.path.isfile(path):
        abort(404)
    response = send_file(path, mimetype=storage.FORMATS[report.format][1], as_attachment=True,
                         download_name=download_name(report), max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/<id:report_id>/download")
@login_required
def download(report_id: int):
    """The report file as an attachment; 404 unless ready, present and visible to the user."""
    return send_report(visible_report(report_id))


def rebuild(report: Report) -> bool:
    """Build a failed ``report`` again as a new job (committed); False when it hasn't failed."""
    if status_of(report).state != FAILED:
        return False
    report.state, report.error, report.started_at, report.finished_at = QUEUED, None, None, None
    report.expires_at = utcnow() + retention()
    report.job_id = build_report.enqueue(report.id)
    db.session.commit()
    current_app.logger.info("report #%s retried by %s as job %s", report.id, current_user.username,
                            report.job_id)
    return True


@bp.route("/<id:report_id>/retry", methods=["POST"])
@login_required
def retry(report_id: int):
    """Build a failed report again, as a new job."""
    report = visible_report(report_id)
    if not rebuild(report):
        flash(f"Report #{report.id} hasn't failed; nothing to retry.", "warning")
        return redirect(url_for(".index"))
    flash(f"Report #{report.id} is being generated again.", f"info:report-{report.id}")
    return redirect(url_for(".index", _anchor=f"report-{report.id}"))
