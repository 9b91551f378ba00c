"""indexes for dashboard lists and text search (trigram on PostgreSQL)

Revision ID: 0008_search_indexes
Revises: 0007_reports
Create Date: 2026-11-22

"""
from alembic import op

revision = "0008_search_indexes"
down_revision = "0007_reports"
branch_labels = None
depends_on = None

TRIGRAM_COLUMNS = ("args", "kwargs", "exception_message", "exception_type")


def upgrade():
    op.create_index("ix_jobs_changed", "jobs", ["state_changed_at", "id"])
    op.create_index("ix_jobs_state_attempt", "jobs", ["state", "attempt"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in TRIGRAM_COLUMNS:
            op.create_index(f"ix_jobs_{column}_trgm", "jobs", [column], postgresql_using="gin",
                            postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for column in TRIGRAM_COLUMNS:
            op.drop_index(f"ix_jobs_{column}_trgm", table_name="jobs")
    op.drop_index("ix_jobs_state_attempt", table_name="jobs")
    op.drop_index("ix_jobs_changed", table_name="jobs")
