"""Extension singletons, bound to an application in ``create_app`` via ``init_app``."""
from contextlib import contextmanager

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base shared by every model (accounts and the job ledger)."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def configure_sqlite(dbapi_connection, connection_record) -> None:
    """WAL and a generous busy timeout so web, workers and tests share one SQLite file.

    ``auto_vacuum=INCREMENTAL`` only takes on a database without tables yet (a new one): there it
    lets retention hand freed pages back (``tasks.retention``); elsewhere it changes nothing.
    """
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def begin_sqlite(conn) -> None:
    """Start a ``write_transaction`` on SQLite with the write lock held (BEGIN IMMEDIATE).

    pysqlite only BEGINs before a write, so without this a read-check-write (the
    ledger checking a job's state, then changing it) would not be atomic.
    """
    if conn.dialect.name == "sqlite" and conn.info.get("immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(engine=None):
    """A connection in a transaction that reads and then writes atomically.

    On SQLite it holds the write lock from the start (BEGIN IMMEDIATE); on PostgreSQL
    callers lock the rows they read (SELECT ... FOR UPDATE).
    """
    with (engine or db.engine).connect() as conn:
        conn.info["immediate"] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop("immediate", None)


event.listen(Engine, "connect", configure_sqlite)
event.listen(Engine, "begin", begin_sqlite)
