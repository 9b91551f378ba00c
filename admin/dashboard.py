"""The jobs dashboard, mounted at ``app.config["JOBS_DASHBOARD_PATH"]`` (default ``/hangfire``).

:class:`DashboardView` is the reusable guard: every route a subclass exposes runs the
authorization chain of :mod:`admin.authorization` first, and the menu hides the view
from users the chain refuses. :class:`HangfireDashboardView` is the current page
(account counts); the jobs dashboard replaces its body later.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask_admin import BaseView, expose
from sqlalchemy import func, select

from admin.authorization import Decision, current_decision, refuse_decision
from app.extensions import db
from app.models import Role, User

DEFAULT_PATH = "/hangfire"
ENDPOINT = "hangfire"


def dashboard_path(app: Flask) -> str:
    """The configured mount path, normalised to ``/segment[/segment...]`` without a trailing slash."""
    path = str(app.config.get("JOBS_DASHBOARD_PATH") or DEFAULT_PATH).strip().strip("/")
    return "/" + path if path else DEFAULT_PATH


class DashboardView(BaseView):
    """A Flask-Admin view whose every exposed route is guarded by the dashboard chain.

    Anonymous browsers are redirected to the login page, anonymous API callers get a
    401 JSON body, signed-in users refused by a filter get a 403. Views listed in
    ``api_views`` (method names) always answer refusals in JSON. Inside a route,
    ``self.decision`` tells whether the user is read-only.
    """

    api_views: frozenset[str] = frozenset()

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

    def _handle_view(self, name: str, **kwargs: Any):
        """Run the chain before every exposed route."""
        decision = self.decision
        if not decision.allowed:
            return refuse_decision(decision, api=True if name in self.api_views else None)
        return None


def account_counts() -> dict[str, int]:
    """How many users and roles exist."""
    return {
        "users": db.session.scalar(select(func.count()).select_from(User)) or 0,
        "roles": db.session.scalar(select(func.count()).select_from(Role)) or 0,
    }


class HangfireDashboardView(DashboardView):
    """The dashboard page and its JSON stats."""

    api_views = frozenset({"stats"})

    @expose("/")
    @expose("")
    def index(self):
        """The dashboard page."""
        return self.render("hangfire/index.html", counts=account_counts(), read_only=self.read_only)

    @expose("/api/stats")
    def stats(self):
        """The dashboard's numbers as JSON."""
        return jsonify(account_counts() | {"read_only": self.read_only})


def dashboard_view(app: Flask) -> HangfireDashboardView:
    """The dashboard view for ``app``, mounted at its configured path."""
    return HangfireDashboardView(name="Hangfire Dashboard", endpoint=ENDPOINT, url=dashboard_path(app))
