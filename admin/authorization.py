"""Who may open the jobs dashboard: a chain of authorization filters.

Modelled on Hangfire's ``DashboardOptions.Authorization``: a filter is any callable
taking a :class:`DashboardContext` and returning a bool, and the request is let in
only when every filter of ``app.config["JOBS_DASHBOARD_AUTHORIZATION"]`` passes.
The default chain lets in holders of either dashboard permission::

    app.config["JOBS_DASHBOARD_AUTHORIZATION"] = [PermissionFilter(HANGFIRE, HANGFIRE_READ_ONLY)]

Custom filters are plain callables, for example only the user called ``admin``::

    app.config["JOBS_DASHBOARD_AUTHORIZATION"] = [
        lambda ctx: ctx.user.is_authenticated and ctx.user.username == "admin"
    ]
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Flask, Request, current_app, request
from flask_login import current_user

from admin.access import is_active_user, is_signed_in, refuse
from app.permissions import HANGFIRE, HANGFIRE_READ_ONLY
from app.tenants import user_tenant

log = logging.getLogger(__name__)

CONFIG_KEY = "JOBS_DASHBOARD_AUTHORIZATION"
_DECISION_KEY = "jobs.dashboard.decision"


@dataclass(frozen=True)
class DashboardContext:
    """What a filter may look at: the request and the current (maybe anonymous) user."""

    request: Request
    user: Any

    @classmethod
    def current(cls) -> "DashboardContext":
        """The context of the request being handled."""
        return cls(request=request._get_current_object(), user=current_user._get_current_object())


AuthorizationFilter = Callable[[DashboardContext], bool]


@dataclass(frozen=True)
class Decision:
    """The outcome of the chain: may the request go on, and may it change anything."""

    allowed: bool
    read_only: bool = False
    authenticated: bool = False
    #: the tenant whose jobs alone the request sees (None: every tenant's, for host users)
    tenant: str | None = None


class PermissionFilter:
    """Passes for an active, signed-in user holding any of the given permissions."""

    def __init__(self, *names: str) -> None:
        if not names:
            raise ValueError("PermissionFilter needs at least one permission name")
        self.names = names

    def __call__(self, context: DashboardContext) -> bool:
        """True when the context's user holds one of ``self.names``."""
        return is_active_user(context.user) and context.user.has_permission(*self.names)

    def __repr__(self) -> str:
        return f"PermissionFilter({', '.join(map(repr, self.names))})"


class LocalRequestsOnly:
    """Passes for requests from the loopback interface (127.0.0.0/8 or ::1)."""

    def __call__(self, context: DashboardContext) -> bool:
        """True when the remote address is a loopback address."""
        return is_loopback(context.request.remote_addr)

    def __repr__(self) -> str:
        return "LocalRequestsOnly()"


def is_loopback(address: str | None) -> bool:
    """True for a loopback IPv4/IPv6 address (IPv4-mapped IPv6 included)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def default_filters() -> list[AuthorizationFilter]:
    """The default chain: holders of the full or the read-only dashboard permission."""
    return [PermissionFilter(HANGFIRE, HANGFIRE_READ_ONLY)]


def configure(app: Flask) -> None:
    """Install the default chain unless the application configured its own."""
    app.config.setdefault(CONFIG_KEY, default_filters())


def configured_filters() -> list[AuthorizationFilter]:
    """The application's chain; a single callable is accepted as a chain of one."""
    filters = current_app.config.get(CONFIG_KEY)
    if filters is None:
        return default_filters()
    if callable(filters):
        return [filters]
    return list(filters)


def passes(check: AuthorizationFilter, context: DashboardContext) -> bool:
    """Run one filter; a filter that raises counts as failed (fail closed) and is logged."""
    try:
        return bool(check(context))
    except Exception:  # noqa: BLE001 - a broken filter must never open the dashboard
        log.exception("dashboard authorization filter %r raised; access denied", check)
        return False


def is_read_only(user: Any) -> bool:
    """True when the user may only look: holds the read-only permission but not the full one."""
    if not is_active_user(user):
        return False
    return not user.has_permission(HANGFIRE) and user.has_permission(HANGFIRE_READ_ONLY)


def authorize(
    context: DashboardContext | None = None,
    filters: Iterable[AuthorizationFilter] | None = None,
) -> Decision:
    """Run the chain (``filters`` or the configured one) for ``context`` (or this request).

    A deactivated account is refused before any filter runs, and so is a tenant's user unless
    ``JOBS_DASHBOARD_TENANTS`` lets tenants in (whatever their roles: ABP's ``enableTenant``).
    """
    context = context or DashboardContext.current()
    authenticated = is_signed_in(context.user)
    if authenticated and not is_active_user(context.user):
        return Decision(allowed=False, authenticated=True)
    tenant = user_tenant(context.user)
    if tenant is not None and not current_app.config.get("JOBS_DASHBOARD_TENANTS"):
        return Decision(allowed=False, authenticated=True, tenant=tenant)
    chain = configured_filters() if filters is None else list(filters)
    allowed = all(passes(check, context) for check in chain)
    return Decision(allowed=allowed, read_only=allowed and is_read_only(context.user),
                    authenticated=authenticated, tenant=tenant)


def current_decision() -> Decision:
    """The decision for the current request, computed once per request."""
    decision = request.environ.get(_DECISION_KEY)
    if decision is None:
        decision = authorize()
        request.environ[_DECISION_KEY] = decision
    return decision


def refuse_decision(decision: Decision, api: bool | None = None):
    """The response for a refused decision: login/401 when anonymous, else 403."""
    return refuse(decision.authenticated, api=api)


def dashboard_access_required(view: Callable) -> Callable:
    """Decorate a plain Flask view so the dashboard chain guards it."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any):
        """Refuse (login, 401 or 403) unless the chain allows the request."""
        decision = current_decision()
        if not decision.allowed:
            return refuse_decision(decision)
        return view(*args, **kwargs)

    return guarded
