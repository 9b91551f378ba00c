"""text search index on SQLite: an FTS5 trigram table over the jobs' arguments and errors

``jobs_search`` is an external-content FTS5 table (it stores only the index; the text stays in
``jobs``) keyed by the jobs' rowid and kept in step by triggers on insert, delete and on updates
of the four searched columns. It keeps which rows hold each trigram and nothing more
(``detail='none'``, ``columnsize=0``: about a fifth of the size of a full index, built twice as
fast); a search asks for rows holding every trigram of the term and checks them with LIKE.
PostgreSQL keeps its trigram GIN indexes (0008): nothing to do there.

A full ``VACUUM`` may renumber the rowids of ``jobs`` (its key is text): after one, rebuild the
index with ``INSERT INTO jobs_search(jobs_search) VALUES ('rebuild')``.

Revision ID: 0014_search_text_index
Revises: 0011_declared_queues
Create Date: 2026-12-01

"""
from alembic import op

revision = "0014_search_text_index"
down_revision = "0012_metrics_incidents"
branch_labels = None
depends_on = None

COLUMNS = "args, kwargs, exception_message, exception_type"
NEW = "new.rowid, new.args, new.kwargs, new.exception_message, new.exception_type"
OLD = "'delete', old.rowid, old.args, old.kwargs, old.exception_message, old.exception_type"
UPGRADE = (
    f"CREATE VIRTUAL TABLE jobs_search USING fts5({COLUMNS}, content='jobs', tokenize='trigram', "
    "detail='none', columnsize=0)",
    f"""CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs BEGIN
          INSERT INTO jobs_search (rowid, {COLUMNS}) VALUES ({NEW});
        END""",
    f"""CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs BEGIN
          INSERT INTO jobs_search (jobs_search, rowid, {COLUMNS}) VALUES ({OLD});
        END""",
    f"""CREATE TRIGGER jobs_search_update AFTER UPDATE OF {COLUMNS} ON jobs BEGIN
          INSERT INTO jobs_search (jobs_search, rowid, {COLUMNS}) VALUES ({OLD});
          INSERT INTO jobs_search (rowid, {COLUMNS}) VALUES ({NEW});
        END""",
    "INSERT INTO jobs_search (jobs_search) VALUES ('rebuild')",
)
DOWNGRADE = (
    "DROP TRIGGER IF EXISTS jobs_search_update",
    "DROP TRIGGER IF EXISTS jobs_search_delete",
    "DROP TRIGGER IF EXISTS jobs_search_insert",
    "DROP TABLE IF EXISTS jobs_search",
)


def upgrade():
    if op.get_bind().dialect.name == "sqlite":
        for statement in UPGRADE:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        for statement in DOWNGRADE:
            op.execute(statement)
