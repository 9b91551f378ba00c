"""Who may use the dashboard, route by route: the base of its page and API views.

:class:`DashboardView` runs the authorization chain of :mod:`admin.authorization` before
every route a subclass exposes, refuses every change (and the ``write_views``) to
read-only users with a 403, and hides the view from the menu of users the chain refuses.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_admin import BaseView

from admin.access import refuse
from admin.authorization import Decision, current_decision, refuse_decision
from tasks.tenancy import scope_to

DEFAULT_PATH = "/hangfire"
ENDPOINT = "hangfire"
API_ENDPOINT = "hangfire_api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def dashboard_path(app: Flask) -> str:
    """The configured mount path, normalised to ``/segment[/segment...]`` without a trailing slash."""
    path = str(app.config.get("JOBS_DASHBOARD_PATH") or DEFAULT_PATH).strip().strip("/")
    return "/" + path if path else DEFAULT_PATH


def api_path(app: Flask) -> str:
    """Where the dashboard's JSON API is mounted (``<dashboard path>/api``)."""
    return dashboard_path(app) + "/api"


class DashboardView(BaseView):
    """A Flask-Admin view whose every exposed route is guarded by the dashboard chain.

    Anonymous browsers are redirected to the login page, anonymous API callers get a
    401 JSON body, signed-in users refused by a filter get a 403. Read-only users get a
    403 for every request that isn't GET/HEAD/OPTIONS and for the routes listed in
    ``write_views`` (forms that only exist to change things). Every route of a view with
    ``json_api`` set answers refusals in JSON. Inside a route, ``self.read_only`` tells
    whether the user may only look.
    """

    write_views: frozenset[str] = frozenset()
    json_api: bool = False

    @property
    def decision(self) -> Decision:
        """The chain's decision for the current request."""
        return current_decision()

    @property
    def read_only(self) -> bool:
        """True when the current user may look but not change anything."""
        return self.decision.read_only

    def is_accessible(self) -> bool:
        """True when every filter of the chain passes (also hides the menu entry)."""
        return self.decision.allowed

    def answers_json(self) -> bool | None:
        """True when refusals are always JSON (else they follow the request)."""
        return True if self.json_api else None

    def changes_things(self, name: str) -> bool:
        """True when route ``name`` (as requested now) would change something."""
        return request.method not in SAFE_METHODS or name in self.write_views

    def _handle_view(self, name: str, **kwargs: Any):
        """Run the chain before every exposed route; refuse changes to read-only users."""
        decision = self.decision
        if not decision.allowed:
            return refuse_decision(decision, api=self.answers_json())
        scope_to(decision.tenant)  # every job query of this request sees the user's tenant's jobs only
        if decision.read_only and self.changes_things(name):
            return refuse(True, api=self.answers_json())
        return None
