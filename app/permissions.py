"""The permission registry: every permission the code checks, declared once.

``flask permissions sync`` (:func:`app.models.sync_permissions`) upserts this registry into the
database and makes the ``Admin`` role hold all of it; the release phase runs that on every deploy.
This module is only the catalogue: it imports no model.
"""
from __future__ import annotations

from dataclasses import dataclass

ADMIN_ROLE = "Admin"

HANGFIRE = "Pages.Hangfire"
HANGFIRE_READ_ONLY = "Pages.Hangfire.ReadOnly"
ROLES = "Pages.Administration.Roles"
USERS = "Pages.Administration.Users"
OUTBOX = "Pages.Administration.Outbox"
REPORTS_ALL = "Pages.Reports.All"
REPORTS_ACCESS_REVIEW = "Pages.Reports.AccessReview"
JOB_ALERTS = "Pages.JobAlerts"  # not "Pages.Hangfire.…": that prefix would make it a dashboard alternative
TENANTS = "Pages.Tenants"


@dataclass(frozen=True)
class PermissionDef:
    """A permission as declared in code."""

    name: str
    display_name: str
    group: str
    #: only host roles may hold it (it reaches across tenants): a tenant's role never shows or takes it
    host_only: bool = False


REGISTRY: dict[str, PermissionDef] = {}


def define(name: str, display_name: str, group: str, host_only: bool = False) -> PermissionDef:
    """Declare a permission; features call this at import time."""
    definition = PermissionDef(name, display_name, group, host_only)
    REGISTRY[name] = definition
    return definition


def host_only_names() -> frozenset[str]:
    """Names of the permissions only host roles may hold."""
    return frozenset(name for name, definition in REGISTRY.items() if definition.host_only)


define(HANGFIRE, "Hangfire Dashboard", "Background jobs")
define(HANGFIRE_READ_ONLY, "Hangfire Dashboard (view only)", "Background jobs")
define(JOB_ALERTS, "Job alerts", "Background jobs")
define(ROLES, "Roles", "Administration")
define(USERS, "Users", "Administration")
define(OUTBOX, "Outbox", "Administration", host_only=True)  # every email sent, whoever it went to
define(TENANTS, "Tenants", "Administration", host_only=True)
define(REPORTS_ALL, "All reports", "Reports")
define(REPORTS_ACCESS_REVIEW, "Access review report", "Reports")
