"""tenants: users and roles belong to the host or one tenant; jobs and audit entries carry their tenant

Existing users, roles, jobs and audit entries become the host's (a NULL tenant).

Revision ID: 0016_tenants
Revises: 0015_partial_link_indexes
Create Date: 2026-12-01

"""
import sqlalchemy as sa
from alembic import op

revision = "0016_tenants"
down_revision = "0015_partial_link_indexes"
branch_labels = None
depends_on = None

#: names SQLite's unnamed unique constraints get when a batch operation reflects them
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
#: what the tenant part of the per-tenant unique indexes is: the id, or 0 for the host (NULLs never clash)
HOST_KEY = sa.text("coalesce(tenant_id, 0)")


def drop_unique(table: str, column: str) -> None:
    """Drop the unique constraint on ``table.column``: by its reflected name (a downgrade names it), else by
    PostgreSQL's default name or, on SQLite, the name NAMING gives an unnamed one."""
    bind = op.get_bind()
    found = next((unique["name"] for unique in sa.inspect(bind).get_unique_constraints(table)
                  if unique["column_names"] == [column] and unique["name"]), None)
    if bind.dialect.name == "postgresql":
        op.drop_constraint(found or f"{table}_{column}_key", table, type_="unique")
        return
    with op.batch_alter_table(table, naming_convention=NAMING, recreate="always") as batch:
        batch.drop_constraint(found or f"uq_{table}_{column}", type_="unique")


def upgrade():
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    for table in ("users", "roles"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(f"fk_{table}_tenant", "tenants", ["tenant_id"], ["id"],
                                     ondelete="CASCADE")
            batch.create_index(f"ix_{table}_tenant_id", ["tenant_id"])
    drop_unique("users", "username")
    drop_unique("roles", "name")
    op.create_index("uq_users_tenant_username", "users", [HOST_KEY, sa.text("lower(username)")], unique=True)
    op.create_index("uq_roles_tenant_name", "roles", [HOST_KEY, "name"], unique=True)

    op.add_column("jobs", sa.Column("tenant", sa.String(64), nullable=True))
    # partial: the host's jobs (all of them in a single-tenant deployment) cost no extra index writes
    tenants_only = {"postgresql_where": sa.text("tenant IS NOT NULL"),
                    "sqlite_where": sa.text("tenant IS NOT NULL")}
    op.create_index("ix_jobs_tenant_state_changed", "jobs", ["tenant", "state", "state_changed_at", "id"],
                    **tenants_only)
    op.create_index("ix_jobs_tenant_changed", "jobs", ["tenant", "state_changed_at", "id"], **tenants_only)
    op.add_column("job_audit", sa.Column("tenant", sa.String(64), nullable=True))
    op.create_index("ix_job_audit_tenant", "job_audit", ["tenant"])


def downgrade():
    op.drop_index("ix_job_audit_tenant", "job_audit")
    op.drop_column("job_audit", "tenant")
    op.drop_index("ix_jobs_tenant_changed", "jobs")
    op.drop_index("ix_jobs_tenant_state_changed", "jobs")
    op.drop_column("jobs", "tenant")
    op.drop_index("uq_roles_tenant_name", "roles")
    op.drop_index("uq_users_tenant_username", "users")
    op.execute("DELETE FROM users WHERE tenant_id IS NOT NULL")
    op.execute("DELETE FROM roles WHERE tenant_id IS NOT NULL")
    for table, column in (("users", "username"), ("roles", "name")):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_tenant_id")
            batch.drop_constraint(f"fk_{table}_tenant", type_="foreignkey")
            batch.drop_column("tenant_id")
            batch.create_unique_constraint(f"{table}_{column}_key", [column])
    op.drop_table("tenants")
