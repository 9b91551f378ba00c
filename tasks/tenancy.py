"""Which tenant's jobs may be read and changed now: the one scope every job query applies.

A tenant user's dashboard request (set by the dashboard's guard) and a job running for a tenant
(its ``JobContext.tenant``) are *scoped*: every read of the ledger made through ``tasks.queries``,
``tasks.actions`` and ``tasks.commands`` sees that tenant's jobs only, so a job of another tenant
is never listed, counted, found by id or acted on. The host (no tenant) is unscoped.
"""
from __future__ import annotations

from flask import g, has_app_context

from tasks.context import current_context

_SCOPE_KEY = "job_scope"


def scope_to(tenant: str | None) -> None:
    """Scope the rest of this app context to ``tenant``'s jobs (None: every job)."""
    setattr(g, _SCOPE_KEY, tenant)


def current_scope() -> str | None:
    """The tenant whose jobs alone may be read now; None when every job may (the host).

    The dashboard's setting for this request first, else the running job's tenant.
    """
    if has_app_context() and _SCOPE_KEY in g:
        return g.get(_SCOPE_KEY)
    running = current_context()
    return running.tenant if running is not None else None


def scope_clauses(columns) -> list:
    """SQL conditions limiting the ``jobs`` table (``columns``: its ``.c``) to the current scope."""
    scope = current_scope()
    return [] if scope is None else [columns.tenant == scope]
