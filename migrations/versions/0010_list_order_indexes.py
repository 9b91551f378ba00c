"""indexes for the dashboard's list orders: Scheduled by due time, Enqueued in run order

Revision ID: 0010_list_order_indexes
Revises: 0009_sessions
Create Date: 2026-12-01

"""
import sqlalchemy as sa
from alembic import op

revision = "0010_list_order_indexes"
down_revision = "0009_sessions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_jobs_state_due", "jobs", ["state", "scheduled_for", "id"])
    op.create_index("ix_jobs_state_run", "jobs", ["state", sa.desc(sa.column("priority")), "enqueued_at", "id"])


def downgrade():
    op.drop_index("ix_jobs_state_run", table_name="jobs")
    op.drop_index("ix_jobs_state_due", table_name="jobs")
