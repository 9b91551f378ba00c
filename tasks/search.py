"""Text search in the ledger (``JobFilter.text``) with its plan chosen here, not by the planner's estimates.

Which plan is fast depends on how common the term is, and a planner that guesses wrong walks
millions of rows newest-first looking for a rare term (issue 16). So the steps are fixed, and each
one's answer is exact:

1. **newest window**: the list's first ``WINDOW_ROWS`` rows (after the cursor, every other filter
   applied), read through the list's own index, then filtered by the text. A window is a prefix of
   the list, so when it holds the page, that is the page: a common term ends here.
2. **text index**: the ids of every job whose text matches, from the text index alone (PostgreSQL:
   the trigram GIN indexes, with plain and sequential scans switched off for that transaction so a
   bitmap scan of those indexes is the only plan left; SQLite: the FTS5 trigram table
   ``jobs_search``, rows holding every trigram of the term), at most ``CANDIDATE_CAP``. When there
   are no more than that, they are every match: the other filters, the text (again, as the exact
   test) and the order are applied to just those rows. A rare term ends here.
   Step 2 is skipped when the first window already held ``COMMON_HITS`` matches (a term that
   common has more than ``CANDIDATE_CAP`` matches in a large ledger, and a trigram index's bitmap
   of them costs more than reading windows).
   **small list**: then a list of at most ``SMALL_LIST`` rows (one tenant's jobs, one task's
   failures), counted through its own index no further than that, is read whole: on PostgreSQL as
   one window that size (growing windows would read its first rows again and again), on SQLite in
   its order with the text tested on each row as it is read (a window there copies every row's
   text; and FTS5 can't narrow its candidates to the list: checking every other tenant's costs more).
3. **wider windows**: a term too common for the index and too rare for the first window reads
   larger windows, sized by the rate of matches seen so far, up to ``MAX_WINDOW_ROWS``; then the
   plain query.

A term without three letters or digits in a row can't use a trigram index: it skips step 2.
Counting (``count_matches``) on SQLite follows the same order: the text index while its candidates
are few, then a small list whole, then the rest.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import contextmanager

from sqlalchemy import Column, func, literal_column, select
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.visitors import replacement_traverse

from app.extensions import db
from tasks.ledger import jobs_table

#: where a search looks (and what both text indexes cover)
TEXT_COLUMNS = ("args", "kwargs", "exception_message", "exception_type")
WINDOW_ROWS = 500
#: a list of at most this many rows is searched (and counted) by reading it whole
SMALL_LIST = 20_000
CANDIDATE_CAP = 5_000
COUNT_CHUNK = 2_000  # text index candidates checked at a time when counting (SQLite)
#: this many matches in the first window make a term too common to look up in the text index
COMMON_HITS = 2
WINDOW_GROWTH = 8
MAX_WINDOW_ROWS = 1_000_000
#: what a window reads of each row: the key, every list order's columns and the searched text
WINDOW_COLUMNS = ("id", "state_changed_at", "scheduled_for", "priority", "enqueued_at", *TEXT_COLUMNS)
#: what a trigram index can look up: three letters or digits in a row (pg_trgm splits words on the rest)
INDEXABLE = re.compile(r"[^\W_]{3}")
#: PostgreSQL planner switches that leave only bitmap scans (of the text indexes) for step 2
INDEX_ONLY_SETTINGS = ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan")
SEARCH_TABLE = "jobs_search"  # SQLite's FTS5 trigram index (migration 0014)

#: (columns) -> ORDER BY expressions of the list being searched
Ordering = Callable[[object], list]


def text_condition(text: str, c):
    """``text`` (a literal, not a pattern) appears in the arguments or the error of a job (columns ``c``)."""
    from sqlalchemy import or_

    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(*(c[name].like(pattern, escape="\\") for name in TEXT_COLUMNS))


def matching_ids(text: str, clauses: list, ordering: Ordering, want: int) -> list[str]:
    """Ids of the first ``want`` jobs in the list (``clauses``: every condition but the text;
    ``ordering``: its order) whose arguments or error contain ``text``."""
    rows = WINDOW_ROWS
    found = in_window(text, clauses, ordering, rows, want)
    if len(found) >= want:
        return found
    if len(found) < COMMON_HITS:
        indexed = from_text_index(text, clauses, ordering, want)
        if indexed is not None:
            return indexed
    if list_is_small(clauses):
        if db.engine.dialect.name == "sqlite":
            return whole_list(text, clauses, ordering, want)
        return in_window(text, clauses, ordering, SMALL_LIST, want)  # one window holds the whole list
    while True:
        rows = next_window(rows, len(found), want)
        if rows > MAX_WINDOW_ROWS:
            break
        found = in_window(text, clauses, ordering, rows, want)
        if len(found) >= want:
            return found
    return whole_list(text, clauses, ordering, want)


def whole_list(text: str, clauses: list, ordering: Ordering, want: int) -> list[str]:
    """The first ``want`` matches of the list, in its order, the text tested on each row as it is read."""
    c = jobs_table.c
    query = select(c.id).where(*clauses, text_condition(text, c)).order_by(*ordering(c)).limit(want)
    return list(db.session.scalars(query))


def list_is_small(clauses: list) -> bool:
    """True when the list (``clauses``, every condition but the text) holds at most ``SMALL_LIST`` rows,
    counted through its own index no further than that."""
    capped = select(literal_column("1")).select_from(jobs_table).where(*clauses).limit(SMALL_LIST + 1)
    return db.session.scalar(select(func.count()).select_from(capped.subquery())) <= SMALL_LIST


def next_window(rows: int, hits: int, want: int) -> int:
    """How many rows the next window reads, after ``hits`` matches in ``rows``: enough for ``want``
    at the rate seen (with a margin), between twice and ``WINDOW_GROWTH`` squared times as many."""
    if not hits:
        return rows * WINDOW_GROWTH
    return max(rows * 2, min(rows * WINDOW_GROWTH ** 2, math.ceil(rows * want / hits * 1.25)))


def in_window(text: str, clauses: list, ordering: Ordering, rows: int, want: int) -> list[str]:
    """The first ``want`` matches among the list's first ``rows`` rows."""
    c = jobs_table.c
    recent = (select(*(c[name] for name in WINDOW_COLUMNS)).where(*clauses).order_by(*ordering(c))
              .limit(rows).subquery("recent"))
    query = (select(recent.c.id).where(text_condition(text, recent.c))
             .order_by(*ordering(recent.c)).limit(want))
    return list(db.session.scalars(query))


def from_text_index(text: str, clauses: list, ordering: Ordering, want: int) -> list[str] | None:
    """Step 2: the first ``want`` matches found through the text index, or None when the term
    can't be looked up there or matches more than ``CANDIDATE_CAP`` jobs."""
    if not INDEXABLE.search(text):
        return None
    dialect = db.engine.dialect.name
    with db.engine.connect() as conn:
        with conn.begin():
            if dialect == "postgresql":
                force_text_index(conn)
                candidates = conn.execute(candidates_query(text, CANDIDATE_CAP + 1)).scalars().all()
                key = jobs_table.c.id
            else:
                candidates = conn.execute(fts_query(), {"terms": fts_terms(text),
                                                        "cap": CANDIDATE_CAP + 1}).scalars().all()
                key = literal_column("jobs.rowid")
            if len(candidates) > CANDIDATE_CAP:
                return None
            if not candidates:
                return []
            return conn.execute(narrowed(text, key, candidates, clauses, ordering, want)).scalars().all()


def force_text_index(conn: Connection) -> None:
    """For the rest of ``conn``'s transaction, leave PostgreSQL only bitmap scans to plan with."""
    for setting in INDEX_ONLY_SETTINGS:
        conn.exec_driver_sql(f"SET LOCAL {setting} = off")


def candidates_query(text: str, limit: int):
    """Ids of jobs whose text matches, on nothing but the text (on PostgreSQL only a trigram index
    serves that)."""
    return select(jobs_table.c.id).where(text_condition(text, jobs_table.c)).limit(limit)


def fts_query():
    """The rowids of jobs whose text holds every trigram of the term (SQLite's FTS5 trigram index)."""
    return sql_text(f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :terms LIMIT :cap")


def fts_terms(text: str) -> str:
    """An FTS5 query for rows holding every trigram of ``text`` (the index keeps no positions, so
    this is a superset of the rows holding ``text``: the LIKE in ``narrowed`` tells them apart)."""
    trigrams = sorted({text[i:i + 3] for i in range(len(text) - 2)})
    return " AND ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)


def narrowed(text: str, key, candidates: list, clauses: list, ordering: Ordering, want: int):
    """The first ``want`` ids among ``candidates`` (values of ``key``) meeting the list's conditions and
    the exact text test, in the list's order."""
    c, where = narrowed_where(text, key, candidates, clauses)
    return select(jobs_table.c.id).where(*where).order_by(*ordering(c)).limit(want)


def narrowed_where(text: str, key, candidates: list, clauses: list) -> tuple:
    """(columns, conditions) picking the ``candidates`` that meet ``clauses`` and hold ``text``. On
    SQLite every other column is wrapped in ``+`` so that no index but the rowid can serve them
    (without statistics SQLite would rather walk an index on the state)."""
    c = jobs_table.c
    if db.engine.dialect.name == "sqlite":
        c = Unindexed()
        clauses = [replacement_traverse(clause, {}, c.replace) for clause in clauses]
    return c, [key.in_(candidates), *clauses, text_condition(text, c)]


def count_matches(text: str, clauses: list, ordering: Ordering, cap: int) -> int:
    """How many jobs meeting ``clauses`` hold ``text``, counting no further than ``cap + 1``.

    Order doesn't matter to a count. On PostgreSQL (or without a trigram in the term) the count is the
    list's own search for ``cap + 1``. On SQLite, when the text index has fewer than ``COUNT_CHUNK``
    candidates (a rare term), those are checked; else a small list (``list_is_small``) is counted
    whole, and a large one by checking the candidates ``COUNT_CHUNK`` at a time in rowid order
    (stopping past ``cap``, so a common term costs about as many rows as the count needs)."""
    if db.engine.dialect.name != "sqlite" or not INDEXABLE.search(text):
        return len(matching_ids(text, clauses, ordering, cap + 1))
    rowids = text_index_rowids(text)
    if len(rowids) < COUNT_CHUNK:
        return count_among(text, clauses, rowids)
    if list_is_small(clauses):
        c = jobs_table.c
        capped = select(c.id).where(*clauses, text_condition(text, c)).limit(cap + 1).subquery()
        return db.session.scalar(select(func.count()).select_from(capped)) or 0
    found = count_among(text, clauses, rowids)
    while found <= cap and len(rowids) == COUNT_CHUNK:
        rowids = text_index_rowids(text, after=rowids[-1])
        found += count_among(text, clauses, rowids)
    return found


def text_index_rowids(text: str, after: int = 0) -> list[int]:
    """The next ``COUNT_CHUNK`` rowids (after ``after``, in order) of SQLite's text index candidates."""
    chunk = sql_text(f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :terms AND rowid > :after "
                     "ORDER BY rowid LIMIT :chunk")
    return db.session.execute(chunk, {"terms": fts_terms(text), "after": after,
                                      "chunk": COUNT_CHUNK}).scalars().all()


def count_among(text: str, clauses: list, rowids: list[int]) -> int:
    """How many of the jobs ``rowids`` meet ``clauses`` and hold ``text``."""
    if not rowids:
        return 0
    _, where = narrowed_where(text, literal_column("jobs.rowid"), rowids, clauses)
    return db.session.scalar(select(func.count()).select_from(jobs_table).where(*where)) or 0


class Unindexed:
    """``jobs`` columns as ``+jobs.<name>`` (the same value, but SQLite won't use an index for it)."""

    def __getitem__(self, name: str):
        column = jobs_table.c[name]
        return literal_column(f"+jobs.{name}", type_=column.type)

    def __getattr__(self, name: str):
        if name not in jobs_table.c:
            raise AttributeError(name)
        return self[name]

    def replace(self, element):
        """For ``replacement_traverse``: a ``jobs`` column as its unindexed form, else None (keep)."""
        if isinstance(element, Column) and element.table is jobs_table:
            return self[element.name]
        return None


@contextmanager
def forced_plan(conn: Connection):
    """``conn`` in a transaction planned as step 2 is (for ``EXPLAIN`` in tests and the bench)."""
    with conn.begin():
        if conn.dialect.name == "postgresql":
            force_text_index(conn)
        yield conn
