"""queues declared at run time (``jobs queues declare NAME``)

Revision ID: 0011_declared_queues
Revises: 0010_list_order_indexes
Create Date: 2026-12-01

"""
import sqlalchemy as sa
from alembic import op

revision = "0011_declared_queues"
down_revision = "0010_list_order_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "job_queues",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("declared_at", sa.DateTime(), nullable=False),
    )


def downgrade():
    op.drop_table("job_queues")
