"""The dashboard's HTML pages, their live fragments, the exports and the form actions.

:class:`HangfireDashboardView` is mounted at ``app.config["JOBS_DASHBOARD_PATH"]``
(default ``/hangfire``) behind the guard of :mod:`admin.dashboard.guard`.

Pages (under the dashboard path): ``/`` overview, ``/jobs/<list>`` (a state, ``retries``
or ``all``; ``?recurring=<id>`` lists one recurring job's runs), ``/job/<id>``, ``/recurring``,
``/queues``, ``/servers``, ``/metrics`` (``?window=hour|day|week``), ``/audit``, ``/enqueue``.
Each live part has a ``…/fragment`` twin that the page's script re-fetches.
"""
from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, flash, redirect, request, url_for
from flask_admin import expose

from admin.dashboard.actions import (
    ActionError,
    UnknownRecurring,
    act_on_filter,
    act_on_jobs,
    act_on_recurring,
    bulk_message,
    set_queue_paused,
)
from admin.dashboard.audit import MAX_CURSOR, audit_rows
from admin.dashboard.data import (
    JobPage,
    job_page,
    list_menu,
    overview,
    recurring_rows,
    retry_count,
)
from admin.dashboard.detail import arguments_download, job_detail
from admin.dashboard.enqueue import EnqueueForm, enqueueable_tasks, submit_enqueue
from admin.dashboard.parameters import parameters, plain_help, signature_text, summary
from admin.dashboard.export import FORMATS, export_response
from admin.dashboard.formats import Formats
from admin.dashboard.guard import DashboardView
from admin.dashboard.live import live, queue_rows, server_rows
from admin.dashboard.metrics import WINDOWS, UnknownWindow, metrics_page
from admin.dashboard.search import destination
from admin.dashboard.lists import (
    FILTER_LABELS,
    is_job_id,
    JOB_LISTS,
    PAGE_SIZES,
    STATE_LISTS,
    BadListQuery,
    JobList,
    ListQuery,
    list_for_state,
    parse_list_query,
)
from app.metrics import HOST_ONLY
from app.web import safe_next_url
from tasks import queries
from tasks.actions import RECURRING_ACTIONS
from tasks.registry import REGISTRY
from tasks.ledger import Job
from tasks.tenancy import current_scope

DEFAULT_REFRESH_SECONDS = 3.0


def refresh_milliseconds() -> int:
    """How often live parts refresh (``JOBS_DASHBOARD_REFRESH_SECONDS``, default 3 s, at least 0.5 s)."""
    seconds = float(current_app.config.get("JOBS_DASHBOARD_REFRESH_SECONDS") or DEFAULT_REFRESH_SECONDS)
    return int(max(seconds, 0.5) * 1000)


def fragment(html: str) -> Response:
    """A live fragment: marked for the page script, never cached."""
    response = Response(html, mimetype="text/html")
    response.headers["X-Dashboard-Fragment"] = "1"
    response.headers["Cache-Control"] = "no-store"
    return response


def job_list_or_404(slug: str) -> JobList:
    """The list called ``slug``; 404 for anything else."""
    job_list = JOB_LISTS.get(slug)
    if job_list is None:
        abort(404)
    return job_list


def list_menu_for(query: ListQuery, result: JobPage) -> list[tuple[str, str, str]]:
    """The list menu's entries; a complete retries page counts itself (no second count)."""
    complete = not (query.narrowed or query.cursor or result.next_cursor)
    own = query.job_list.slug == "retries" and complete
    retries = (result.total, result.capped) if own else retry_count()
    return list_menu(queries.state_counts(), retries)


class HangfireDashboardView(DashboardView):
    """The dashboard's pages, live fragments, exports and form actions."""

    write_views = frozenset({"enqueue"})

    def render(self, template: str, **kwargs: Any) -> str:
        """Render with what every dashboard template uses (read-only flag, formats, refresh rate)."""
        kwargs.setdefault("read_only", self.read_only)
        kwargs.setdefault("fmt", Formats())
        kwargs.setdefault("refresh_ms", refresh_milliseconds())
        kwargs.setdefault("state_lists", STATE_LISTS)
        kwargs.setdefault("live", live())
        kwargs.setdefault("recurring_actions", RECURRING_ACTIONS)
        kwargs.setdefault("tenant_scope", current_scope())  # a tenant user's pages show no tenant column
        return super().render(template, **kwargs)

    def fragment(self, template: str, **kwargs: Any) -> Response:
        """A live fragment of ``template``, with a fresh copy of the transport banner (a live slot)."""
        return fragment(self.render(template, **kwargs) + self.render("hangfire/_transport.html"))

    # --- overview ----------------------------------------------------------------------------
    @expose("/")
    @expose("")
    def index(self):
        """The overview: counters, live workers, realtime and history graphs."""
        return self.render("hangfire/index.html", page="overview", overview=overview())

    @expose("/fragment/overview")
    def overview_fragment(self):
        """The overview's live part."""
        return self.fragment("hangfire/_overview.html", overview=overview())

    # --- search --------------------------------------------------------------------------------
    @expose("/search")
    def search(self):
        """The header search: a job id goes to the job, a task name to its jobs, other text to a search."""
        return redirect(destination(request.args.get("q", "")))

    # --- job lists ---------------------------------------------------------------------------
    @expose("/jobs/")
    def jobs_root(self):
        """``/jobs/?list=failed`` (or ``?state=Failed``, ``?retrying=1``) → that list, keeping the filter."""
        slug = request.args.get("list")
        if slug not in JOB_LISTS:
            state = request.args.get("state") or None
            slug = "retries" if request.args.get("retrying") else list_for_state(state).slug
        args = {k: v for k, v in request.args.items() if k not in ("list", "state", "retrying")}
        return redirect(url_for(".jobs", slug=slug, **args))

    def list_query(self, slug: str) -> ListQuery:
        """The list request for ``slug`` (404 unknown list, 400 bad cursor)."""
        try:
            return parse_list_query(job_list_or_404(slug), request.args)
        except BadListQuery as exc:
            abort(400, str(exc))

    @expose("/jobs/<slug>")
    def jobs(self, slug: str):
        """A job list: its menu with counts, the filter, a page of rows, actions."""
        query = self.list_query(slug)
        result = job_page(query)
        return self.render("hangfire/jobs.html", page="jobs", query=query, result=result,
                           menu=list_menu_for(query, result), page_sizes=PAGE_SIZES, tasks=sorted(REGISTRY),
                           queues=queue_rows(), filter_labels=FILTER_LABELS)

    @expose("/jobs/<slug>/fragment")
    def jobs_fragment(self, slug: str):
        """A job list's live rows, with a fresh copy of the list menu's counts."""
        query = self.list_query(slug)
        result = job_page(query)
        return self.fragment("hangfire/_jobs_table.html", query=query, result=result,
                             menu=list_menu_for(query, result), live_menu=True)

    @expose("/jobs/<slug>/export.<fmt>")
    def export(self, slug: str, fmt: str):
        """Every job of the filtered list, streamed as CSV or JSON."""
        if fmt not in FORMATS:
            abort(404)
        query = self.list_query(slug)
        return export_response(query.job_filter, fmt, slug, query.job_list.order)

    # --- one job -----------------------------------------------------------------------------
    @staticmethod
    def job_or_404(job_id: str) -> Job:
        """The job called ``job_id``; 404 when there is none (or the id can't be one)."""
        job = queries.get_job(job_id) if is_job_id(job_id) else None
        if job is None:
            abort(404)
        return job

    def detail_or_404(self, job_id: str):
        """The job page's content for ``job_id``; 404 when there is no such job."""
        return job_detail(self.job_or_404(job_id))

    @expose("/job/<job_id>")
    def job(self, job_id: str):
        """A job: arguments, state history, every failed attempt, result, actions."""
        return self.render("hangfire/job.html", page="jobs", detail=self.detail_or_404(job_id))

    @expose("/job/<job_id>/arguments.json")
    def job_arguments(self, job_id: str):
        """The job's whole arguments as a JSON download (the page cuts huge ones short)."""
        job = self.job_or_404(job_id)
        response = Response(arguments_download(job), mimetype="application/json")
        response.headers["Content-Disposition"] = f'attachment; filename="job-{job.id}-arguments.json"'
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/job/<job_id>/fragment")
    def job_fragment(self, job_id: str):
        """A job page's live part."""
        return self.fragment("hangfire/_job.html", detail=self.detail_or_404(job_id))

    # --- queues, servers, audit ----------------------------------------------------------------
    @expose("/queues")
    def queues(self):
        """Queues: length, oldest job's age, paused or not."""
        return self.render("hangfire/queues.html", page="queues", queues=queue_rows())

    @expose("/fragment/queues")
    def queues_fragment(self):
        """The queues table."""
        return self.fragment("hangfire/_queues.html", queues=queue_rows())

    @expose("/queues/<operation>", methods=("POST",))
    def queue_action(self, operation: str):
        """Pause or resume the queue named in the form."""
        if operation not in ("pause", "resume"):
            abort(404)
        try:
            flash(set_queue_paused(request.form.get("queue", ""), operation == "pause"), "success")
        except ActionError as exc:
            flash(str(exc), "error")
        return redirect(url_for(".queues"))

    # --- recurring jobs ------------------------------------------------------------------------
    @expose("/recurring")
    def recurring(self):
        """Recurring jobs: schedule, time zone, next and last run, enabled, error; their actions."""
        return self.render("hangfire/recurring.html", page="recurring", recurring=recurring_rows())

    @expose("/fragment/recurring")
    def recurring_fragment(self):
        """The recurring jobs table."""
        return self.fragment("hangfire/_recurring.html", recurring=recurring_rows())

    @expose("/recurring/actions/<action>", methods=("POST",))
    def recurring_bulk(self, action: str):
        """Trigger, enable, disable or delete the ticked recurring jobs."""
        if action not in RECURRING_ACTIONS:
            abort(404)
        try:
            outcome = act_on_recurring(action, request.form.getlist("ids"))
            flash(outcome.message(), "success" if len(outcome.done) == len(outcome.requested) else "warning")
        except (ActionError, UnknownRecurring) as exc:
            flash(str(exc), "error")
        return redirect(url_for(".recurring"))

    @expose("/recurring/<path:recurring_id>/<action>", methods=("POST",))
    def recurring_action(self, recurring_id: str, action: str):
        """Trigger now, enable, disable or delete one recurring job (404 for an unknown one)."""
        try:
            outcome = act_on_recurring(action, [recurring_id])
        except (ActionError, UnknownRecurring):
            abort(404)
        flash(outcome.message(), "success")
        return redirect(url_for(".recurring"))

    @expose("/servers")
    def servers(self):
        """Workers: host, pid, queues, concurrency, heartbeats, jobs in flight; dead ones flagged."""
        return self.render("hangfire/servers.html", page="servers", servers=server_rows())

    @expose("/fragment/servers")
    def servers_fragment(self):
        """The servers table."""
        return self.fragment("hangfire/_servers.html", servers=server_rows())

    @expose("/metrics")
    def metrics(self):
        """Per task over the last hour, day or week: runs, failures, run times, queue waits, a chart (host
        users only: 403 for a tenant's)."""
        if current_scope() is not None:
            abort(403, HOST_ONLY)
        try:
            figures = metrics_page(request.args.get("window"))
        except UnknownWindow as exc:
            abort(400, str(exc))
        return self.render("hangfire/metrics.html", page="metrics", figures=figures, windows=WINDOWS)

    @expose("/audit")
    def audit(self):
        """The audit log of dashboard actions, newest first."""
        cursor = request.args.get("cursor", type=int)
        if cursor is not None and not 0 < cursor <= MAX_CURSOR:
            abort(400, "That page of the audit log doesn't exist.")
        entries, next_cursor = audit_rows(limit=100, cursor=cursor)
        return self.render("hangfire/audit.html", page="audit", entries=entries, next_cursor=next_cursor,
                           first_page=cursor is None)

    # --- actions -----------------------------------------------------------------------------
    @expose("/enqueue", methods=("GET", "POST"))
    def enqueue(self):
        """The enqueue form; on POST, validate and enqueue (errors re-rendered with a 400)."""
        if request.method == "GET":
            form = EnqueueForm(task=request.args.get("task", ""))
            return self.render_enqueue(form)
        form = EnqueueForm.from_mapping(request.form)
        job_id = submit_enqueue(form)
        if job_id is None:
            return self.render_enqueue(form), 400
        flash(f"Enqueued job {job_id}.", "success")
        return redirect(url_for(".job", job_id=job_id))

    def render_enqueue(self, form: EnqueueForm) -> str:
        """The enqueue page for ``form``: the task picker, then the chosen task's fields and help."""
        offered = enqueueable_tasks()
        chosen = next((d for d in offered if d.name == form.task), None)
        return self.render("hangfire/enqueue.html", page="enqueue", form=form, tasks=offered, chosen=chosen,
                           parameters=parameters(chosen) if chosen else [],
                           help_text=plain_help(chosen.func.__doc__) if chosen else "", queues=queue_rows(),
                           signature=signature_text(chosen) if chosen else "", summaries={
                               d.name: summary(d) for d in offered})

    @expose("/actions/<action>", methods=("POST",))
    def act(self, action: str):
        """Requeue, trigger, delete or cancel the selected jobs, or start it on everything matching."""
        back = safe_next_url(request.form.get("next"), url_for(".index"))
        try:
            if request.form.get("scope") == "all":
                flash(bulk_message(act_on_filter(action, self.submitted_filter())), "success")
            else:
                outcome = act_on_jobs(action, self.submitted_ids())
                flash(outcome.message(), "success" if outcome.changed else "warning")
        except (ActionError, BadListQuery) as exc:
            flash(str(exc), "error")
        return redirect(back)

    @staticmethod
    def submitted_ids() -> list[str]:
        """The job of the row button that was clicked, else the ticked rows."""
        single = request.form.get("job")
        return [single] if single else request.form.getlist("ids")

    @staticmethod
    def submitted_filter():
        """The filter of the list a bulk-on-all form was posted from."""
        job_list = JOB_LISTS.get(request.form.get("list", ""))
        if job_list is None:
            raise ActionError("Unknown list; reload the page and try again.")
        query = parse_list_query(job_list, request.form)
        if query.problems:
            raise ActionError(" ".join(query.problems))
        return query.job_filter
