"""job metrics (per minute/hour and cumulative totals) and alert incidents

Revision ID: 0012_metrics_incidents
Revises: 0011_declared_queues
Create Date: 2026-12-01

"""
import sqlalchemy as sa
from alembic import op

revision = "0012_metrics_incidents"
down_revision = "0011_declared_queues"
branch_labels = None
depends_on = None

BANDS = [f"h{index:02d}" for index in range(19)]  # tasks.metrics.BANDS when this revision was written


def measures():
    """count, observed, seconds and one count per histogram band."""
    return [sa.Column("count", sa.BigInteger(), nullable=False),
            sa.Column("observed", sa.BigInteger(), nullable=False),
            sa.Column("seconds", sa.Float(), nullable=False),
            *(sa.Column(band, sa.BigInteger(), nullable=False) for band in BANDS)]


def upgrade():
    op.create_table(
        "job_metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        *measures(),
    )
    op.create_index("ix_job_metrics_bucket", "job_metrics", ["bucket"])
    op.create_index("ix_job_metrics_grain_bucket", "job_metrics", ["grain", "bucket"])
    op.create_table(
        "job_metric_totals",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        *measures(),
    )
    op.create_table(
        "job_incidents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("open_key", sa.String(240), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_job_incidents_open_key", "job_incidents", ["open_key"], unique=True)
    op.create_index("ix_job_incidents_opened_at", "job_incidents", ["opened_at"])


def downgrade():
    op.drop_index("ix_job_incidents_opened_at", table_name="job_incidents")
    op.drop_index("ix_job_incidents_open_key", table_name="job_incidents")
    op.drop_table("job_incidents")
    op.drop_table("job_metric_totals")
    op.drop_index("ix_job_metrics_grain_bucket", table_name="job_metrics")
    op.drop_index("ix_job_metrics_bucket", table_name="job_metrics")
    op.drop_table("job_metrics")
