"""The migrations against the models: no drift (``flask db check``), and a full round trip
(upgrade → downgrade to base → upgrade) on a database of its own, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.extensions import db
from tests.conftest import base_config
from tests.services import database_url

pytestmark = pytest.mark.slow


def check_models_match(application) -> None:
    """``flask db check`` on ``application``'s database: fails listing the operations a revision lacks."""
    result = application.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, f"the models differ from the migrations:\n{result.output}"


def test_the_models_match_the_migrations(app):
    check_models_match(app)


@pytest.fixture
def own_database(tmp_path):
    """An application on an empty database of its own (the suite's shared one stays at head)."""
    url, drop = database_url(str(tmp_path))
    application = create_app(base_config(url, None, str(tmp_path / "instance")))
    yield application
    with application.app_context():
        db.engine.dispose()
    drop()


def test_upgrade_downgrade_to_base_and_upgrade_again(own_database):
    with own_database.app_context():
        upgrade()
        tables_at_head = set(inspect(db.engine).get_table_names())
        assert {"users", "jobs", "job_states"} <= tables_at_head
        downgrade(revision="base")
        db.engine.dispose()
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        db.engine.dispose()
        assert set(inspect(db.engine).get_table_names()) == tables_at_head
    check_models_match(own_database)
