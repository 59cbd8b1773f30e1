"""Full-text search over stories: the index's tables, keeping them current, the match.

SQLite searches with its FTS5 extension (the `items_fts` table, rowid = the
story's id, Porter stemming); PostgreSQL with its own full-text search (the
`item_search` table: one `tsvector` per story, English stemming, a GIN
index, and the story's `published_at` beside it, so that ranking the matches
reads no `items` rows).  Both index the story's title and the plain text of its summary and
content (tags removed, entities decoded); the store writes a story's
document whenever it writes the story (`write_documents`), and a story's
document goes when the story goes (a trigger on SQLite, ON DELETE CASCADE on
PostgreSQL).

A query is the words in what the reader typed (letters and digits; no
operators): a story matches when it has every word, stemmed ("nurses"
finds "nurse").  `match` gives the matching story ids with a score where
lower is better (FTS5's bm25, the negated `ts_rank` on PostgreSQL), the
title weighing more than the text.  This module builds statements; it does
not page, filter or format (reads.py does).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, bindparam, column, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Subquery

from ingest import errors
from ingest.store.db import chunks
from ingest.store.schema import UTCDateTime

__all__ = [
    "FTS_TABLE",
    "MAX_TERMS",
    "PG_CONFIG",
    "PG_TABLE",
    "SEARCH_TABLES",
    "Indexed",
    "check_sqlite_fts5",
    "document",
    "is_search_table",
    "match",
    "match_terms",
    "search_ddl",
    "sqlite_page",
    "terms",
    "write_documents",
]

FTS_TABLE = "items_fts"  # SQLite
PG_TABLE = "item_search"  # PostgreSQL
SEARCH_TABLES = (FTS_TABLE, PG_TABLE)
PG_CONFIG = "english"
MAX_TERMS = 16
TITLE_WEIGHT = 4.0  # bm25 column weight of the title against the text's 1.0

_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"\w+")


def search_ddl(dialect: str) -> list[str]:
    """The statements that create the search index in an empty database (migration 0006)."""
    if dialect == "postgresql":
        return [
            f"CREATE TABLE {PG_TABLE} (item_id BIGINT NOT NULL PRIMARY KEY "
            "REFERENCES items (id) ON DELETE CASCADE, published_at TIMESTAMP WITH TIME ZONE "
            "NOT NULL, document TSVECTOR NOT NULL)",
            f"CREATE INDEX ix_{PG_TABLE}_document ON {PG_TABLE} USING gin (document)",
        ]
    return [
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, body, "
        "tokenize = 'porter unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {FTS_TABLE}_delete AFTER DELETE ON items "
        f"BEGIN DELETE FROM {FTS_TABLE} WHERE rowid = OLD.id; END",
    ]


def is_search_table(name: str) -> bool:
    """Whether `name` is one of the search index's tables (FTS5 keeps shadow tables too)."""
    return name in (PG_TABLE, FTS_TABLE) or name.startswith(FTS_TABLE + "_")


def check_sqlite_fts5(conn: Connection) -> None:
    """StoreError, saying what to do, when this Python's SQLite lacks FTS5."""
    options = {str(r[0]) for r in conn.exec_driver_sql("PRAGMA compile_options")}
    if "ENABLE_FTS5" not in options:
        version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        raise errors.StoreError(
            f"this Python's SQLite ({version}) was built without FTS5, which ingest's search "
            "needs: use a Python whose sqlite3 module has FTS5 (the python.org, Debian, "
            "Ubuntu and Homebrew builds do), or PostgreSQL"
        )


def plain(fragment: str | None) -> str:
    """The text of sanitized HTML: tags dropped, entities decoded, spaces collapsed."""
    if not fragment:
        return ""
    if "<" in fragment:
        fragment = _TAG.sub(" ", fragment)
    return " ".join(html.unescape(fragment).split())


def document(title: str, summary: str | None, content: str | None) -> tuple[str, str]:
    """What a story is found by: its title, and the text of its summary and content."""
    body = plain(summary)
    more = plain(content)
    if more and more != body:
        body = f"{body} {more}" if body else more
    return title, body


Indexed = tuple[int, str, str | None, str | None, datetime]


def write_documents(conn: Connection, rows: Iterable[Indexed]) -> None:
    """Index (or re-index) stories given as (id, title, summary, content, published_at)."""
    params: list[dict[str, Any]] = []
    for item_id, title, summary, content, published_at in rows:
        t, b = document(title, summary, content)
        params.append({"id": item_id, "title": t, "body": b, "published_at": published_at})
    if not params:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"INSERT INTO {PG_TABLE} (item_id, published_at, document) VALUES (:id, "
                f":published_at, setweight(to_tsvector('{PG_CONFIG}', :title), 'A') || "
                f"setweight(to_tsvector('{PG_CONFIG}', :body), 'D')) ON CONFLICT (item_id) "
                "DO UPDATE SET published_at = EXCLUDED.published_at, document = EXCLUDED.document"
            ).bindparams(bindparam("published_at", type_=UTCDateTime())),
            params,
        )
        return
    remove_documents(conn, [p["id"] for p in params])  # FTS5 has no upsert
    conn.execute(
        text(f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (:id, :title, :body)"), params
    )


def remove_documents(conn: Connection, ids: Sequence[int]) -> None:
    """Take stories out of the index (hidden by `ingest refilter`); `write_documents`
    puts them back."""
    table, column = (
        (PG_TABLE, "item_id") if conn.dialect.name == "postgresql" else (FTS_TABLE, "rowid")
    )
    for chunk in chunks(list(ids)):
        conn.execute(
            text(f"DELETE FROM {table} WHERE {column} IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": list(chunk)},
        )


def terms(query: str) -> list[str]:
    """The words of a reader's query, lower-cased, first occurrence kept, at most MAX_TERMS."""
    out: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word not in out:
            out.append(word)
    return out[:MAX_TERMS]


def match_terms(dialect: str, words: Sequence[str]) -> str:
    """The `search_terms` parameter of `match` for the reader's `words`."""
    if not words:
        raise ValueError("a search needs at least one word")
    if dialect == "postgresql":
        return " ".join(words)  # plainto_tsquery: every word, stemmed, ANDed
    # every word as a quoted FTS5 string: no operator or column filter can sneak in
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def match(dialect: str) -> Subquery:
    """`(id, score)` of the stories with every word of the `search_terms` parameter
    (`match_terms`), lower score = more relevant; on PostgreSQL also `published_at`
    (kept beside the document, so that ranking reads no `items` rows)."""
    columns: list[Any] = [column("id", Integer), column("score", Float)]
    if dialect == "postgresql":
        columns.append(column("published_at", UTCDateTime()))
        stmt = text(
            f"SELECT s.item_id AS id, -ts_rank(s.document, q.query)::float8 AS score, "
            "s.published_at "
            f"FROM {PG_TABLE} s, plainto_tsquery('{PG_CONFIG}', :search_terms) AS q(query) "
            "WHERE s.document @@ q.query"
        )
    else:
        stmt = text(
            f"SELECT rowid AS id, bm25({FTS_TABLE}, {TITLE_WEIGHT}, 1.0) AS score "
            f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :search_terms"
        )
    return stmt.columns(*columns).subquery("found")


def sqlite_page(*, after: bool) -> Subquery:
    """`(id, score, published_at)` of one page of an unfiltered search on SQLite, best
    first, from the `search_terms`, `page` and (with `after`) `before_*` parameters.

    The matches are ranked on the index alone; only those scoring at least as well as
    the page's last (the page and its ties) read their date from `items` for the
    tie-break, instead of every match: half the time of a two-word search on a big
    database.  With `after`, the ones after the cursor: a better score, or the same
    score and older.
    """
    found = (
        f"SELECT rowid AS id, bm25({FTS_TABLE}, {TITLE_WEIGHT}, 1.0) AS score "
        f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :search_terms"
    )
    if after:
        ranked = (
            f"m AS MATERIALIZED ({found}), r AS MATERIALIZED ("
            "SELECT id, score FROM m WHERE score > :before_score UNION ALL "
            "SELECT m.id, m.score FROM m JOIN items i ON i.id = m.id "
            "WHERE m.score = :before_score AND (i.published_at, i.id) < (:before_date, :before_id))"
        )
    else:
        ranked = f"r AS MATERIALIZED ({found})"
    stmt = text(
        f"WITH {ranked}, worst AS (SELECT score FROM r ORDER BY score LIMIT 1 OFFSET :page - 1) "
        "SELECT r.id AS id, r.score AS score, i.published_at AS published_at "
        "FROM r JOIN items i ON i.id = r.id "
        "WHERE r.score <= coalesce((SELECT score FROM worst), 1e308) "
        "ORDER BY r.score, i.published_at DESC, i.id DESC LIMIT :page"
    )
    params: list[Any] = [bindparam("page", type_=Integer)]
    if after:
        params += [
            bindparam("before_score", type_=Float),
            bindparam("before_date", type_=UTCDateTime()),
            bindparam("before_id", type_=Integer),
        ]
    columns: list[Any] = [
        column("id", Integer),
        column("score", Float),
        column("published_at", UTCDateTime()),
    ]
    return stmt.bindparams(*params).columns(*columns).subquery("top")
