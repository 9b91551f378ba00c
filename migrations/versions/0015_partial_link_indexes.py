"""jobs' parent and recurring-job indexes hold only the jobs that have one

Almost every job has neither a parent nor a recurring job. Indexing only the rows that do makes
both indexes tiny, and keeps SQLite's planner from reading its statistics (every row the same
NULL) as "this lookup matches every job" and scanning the table for a job page's continuations.

Revision ID: 0015_partial_link_indexes
Revises: 0014_search_text_index
Create Date: 2026-12-01

"""
import sqlalchemy as sa
from alembic import op

revision = "0015_partial_link_indexes"
down_revision = "0014_search_text_index"
branch_labels = None
depends_on = None

COLUMNS = ("parent_id", "recurring_id")


def upgrade():
    for column in COLUMNS:
        op.drop_index(f"ix_jobs_{column}", table_name="jobs")
        present = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_jobs_{column}", "jobs", [column], sqlite_where=present, postgresql_where=present)


def downgrade():
    for column in COLUMNS:
        op.drop_index(f"ix_jobs_{column}", table_name="jobs")
        op.create_index(f"ix_jobs_{column}", "jobs", [column])
