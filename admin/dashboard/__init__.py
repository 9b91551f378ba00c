"""The jobs dashboard (Hangfire-style), mounted at ``JOBS_DASHBOARD_PATH`` (default ``/hangfire``).

One module per concern:

* :mod:`~admin.dashboard.guard` — who may open it, route by route (the base view);
* :mod:`~admin.dashboard.pages` — the HTML pages, live fragments and form actions;
* :mod:`~admin.dashboard.api` — the same data and actions as JSON at ``<path>/api``;
* :mod:`~admin.dashboard.lists` — the job lists and how a request filters and pages them;
* :mod:`~admin.dashboard.data` — what the pages show, read from the engine's query API;
* :mod:`~admin.dashboard.actions` — the write side (job actions come from ``tasks.actions``);
* :mod:`~admin.dashboard.enqueue` — the enqueue form and its checks;
* :mod:`~admin.dashboard.charts`, :mod:`~admin.dashboard.export`, :mod:`~admin.dashboard.formats`.

The page and API views both build on the guard and the read/write modules; neither imports the other.
"""
from __future__ import annotations

from flask import Flask

from admin.dashboard.api import HangfireApiView
from admin.dashboard.guard import API_ENDPOINT, ENDPOINT, DashboardView, api_path, dashboard_path
from admin.dashboard.pages import HangfireDashboardView

__all__ = ["DashboardView", "HangfireApiView", "HangfireDashboardView", "api_path", "dashboard_path",
           "dashboard_views"]


def dashboard_views(app: Flask) -> list[DashboardView]:
    """The dashboard's views for ``app``: its pages and its JSON API (``<path>/api``)."""
    return [HangfireDashboardView(name="Dashboard", endpoint=ENDPOINT, url=dashboard_path(app)),
            HangfireApiView(name="Hangfire API", endpoint=API_ENDPOINT, url=api_path(app))]
