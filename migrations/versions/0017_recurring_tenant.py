"""recurring jobs may belong to one tenant: their runs are that tenant's jobs, and only that tenant's
dashboard (and the host's) lists them

Existing recurring jobs stay the host's (a NULL tenant).

Revision ID: 0017_recurring_tenant
Revises: 0016_tenants
Create Date: 2026-12-02

"""
import sqlalchemy as sa
from alembic import op

revision = "0017_recurring_tenant"
down_revision = "0016_tenants"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("recurring_jobs", sa.Column("tenant", sa.String(64), nullable=True))


def downgrade():
    with op.batch_alter_table("recurring_jobs") as batch:
        batch.drop_column("tenant")
