"""The Flask application factory."""
from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from app import config as app_config
from app import logs
from app.extensions import csrf, db, login_manager, migrate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(config: Mapping | None = None) -> Flask:
    """Build the application: environment config, then ``config`` overrides."""
    config = dict(config or {})
    app = Flask(
        __name__,
        instance_path=config.pop("INSTANCE_PATH", None)
        or os.environ.get("INSTANCE_PATH")
        or os.path.join(ROOT, "instance"),
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(app_config.from_environment(app.instance_path))
    if config:
        app.config.update(config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS",
                          app_config.engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))
    app_config.check(app.config)
    logs.init_app(app)

    from app import models  # noqa: F401  (register the tables with the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)

    from app import alerts  # noqa: F401  (the leader's alert check and the incidents table)
    from app import auth, cli, health, inputs, mail, metrics, openapi, reports, security, web
    from tasks import init_app as init_jobs
    from admin import init_admin

    security.init_app(app)
    inputs.init_app(app)
    app.url_map.converters["id"] = inputs.IdConverter
    web.init_app(app)
    auth.init_app(app)
    health.init_app(app)
    metrics.init_app(app)
    init_jobs(app)
    mail.init_app(app)
    reports.init_app(app)
    init_admin(app)
    openapi.init_app(app)
    cli.init_app(app)
    return app
