"""Reports: signed-in users generate them at ``/reports``; a job builds them; email delivers them.

``init_app(app)`` reads the reports settings, registers the ``reports`` blueprint and the
``flask reports cleanup`` command; importing this package registers the
``reports.build`` and ``reports.cleanup`` jobs (in web and worker processes alike).

Settings (environment variables, or ``create_app(config)``):

| setting | default | meaning |
|---|---|---|
| ``REPORTS_RETENTION_DAYS`` | 7 | days a report (row and file) is kept after it is built |
| ``REPORTS_ATTACH_MAX_BYTES`` | 5 MiB | larger reports are emailed as a link instead of attached |
| ``REPORTS_CHUNK_DELAY`` | 0 | seconds to pause after each chunk (demos, crash tests) |

Links in emails start with ``PUBLIC_URL`` (``app.config``; required in production).
"""
from __future__ import annotations

import os

from flask import Flask

from app.reports import jobs, retention  # noqa: F401  (register the jobs)
from app.reports import models  # noqa: F401  (register the table)

SETTINGS: dict[str, float] = {
    "REPORTS_RETENTION_DAYS": 7.0,
    "REPORTS_ATTACH_MAX_BYTES": 5 * 1024 * 1024,
    "REPORTS_CHUNK_DELAY": 0.0,
}


def configure(app: Flask) -> None:
    """Fill the reports settings from the environment unless the app config sets them."""
    for key, default in SETTINGS.items():
        if key not in app.config:
            app.config[key] = type(default)(os.environ.get(key) or default)


def init_app(app: Flask) -> None:
    """Configure reports and register the pages, the JSON API and the CLI group."""
    from app.reports import api
    from app.reports.retention import reports_cli
    from app.reports.views import bp

    configure(app)
    app.register_blueprint(bp)
    api.init_app(app)
    app.cli.add_command(reports_cli)
