"""The app's one navigation bar, built from the admin's menu for whoever is signed in.

Every page — sign-in, Reports, the admin, the dashboard, error pages — renders the same
bar (``templates/layout.html`` calls ``navigation()``): the dashboard, Reports, the
Configuration views and the Outbox, each only when the user may open it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app, redirect, request, url_for
from flask_admin.menu import MenuCategory, MenuLink, MenuView
from flask_login import current_user

from admin.access import is_active_user
from admin.dashboard.guard import ENDPOINT as DASHBOARD_ENDPOINT


@dataclass
class NavItem:
    """One entry of the bar: a link, or a category holding links."""

    name: str
    url: str = ""
    children: list["NavItem"] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """True when the current page is this entry (or one under it)."""
        if self.children:
            return any(child.active for child in self.children)
        path = request.path.rstrip("/") or "/"
        url = self.url.rstrip("/") or "/"
        return path == url or path.startswith(url + "/")


def entry(item) -> NavItem | None:
    """The bar's entry for one admin menu item, if the current user may open it."""
    if isinstance(item, MenuCategory):
        children = [child for child in (entry(c) for c in item.get_children()) if child]
        return NavItem(item.name, children=children) if children else None
    if isinstance(item, (MenuView, MenuLink)) and item.is_accessible() and item.is_visible():
        return NavItem(item.name, url=item.get_url())
    return None


def current_admin():
    """The application's Flask-Admin (None before ``init_admin``)."""
    admins = current_app.extensions.get("admin") or []
    return admins[0] if admins else None


def menu_items(admin) -> list:
    """The admin's menu and links, without its own home page."""
    return [item for item in admin.menu() + admin.menu_links()
            if not (isinstance(item, MenuView) and item._view is admin.index_view)]


def navigation() -> list[NavItem]:
    """The bar's entries for the current user (nothing for a visitor who isn't signed in)."""
    admin = current_admin()
    if admin is None or not is_active_user(current_user):
        return []
    return [item for item in map(entry, menu_items(admin)) if item]


@dataclass(frozen=True)
class AdminPage:
    """An admin view the current user may open: its name, address and endpoint."""

    name: str
    url: str
    endpoint: str


def open_views(admin) -> list[AdminPage]:
    """The admin views (not links, not its home) the current user may open."""
    pages = []
    for item in menu_items(admin):
        for view in (item.get_children() if isinstance(item, MenuCategory) else [item]):
            if isinstance(view, MenuView) and view.is_accessible() and view.is_visible():
                pages.append(AdminPage(view.name, view.get_url(), view._view.endpoint))
    return pages


def landing_url() -> str:
    """Where a person starts: the sign-in page, the jobs dashboard, the admin, or else Reports."""
    admin = current_admin()
    if not is_active_user(current_user) or admin is None:
        return url_for("auth.login")
    pages = open_views(admin)
    for page in pages:
        if page.endpoint == DASHBOARD_ENDPOINT:
            return page.url
    return url_for(f"{admin.index_view.endpoint}.index") if pages else url_for("reports.index")


def landing():
    """``/``: redirect to where this person starts (:func:`landing_url`)."""
    return redirect(landing_url())


def init_app(app: Flask) -> None:
    """Make ``navigation()`` available to every template and ``/`` lead to :func:`landing_url`."""
    app.jinja_env.globals["navigation"] = navigation
    app.add_url_rule("/", "landing", landing)
