"""Full-text search over stories: the index's tables, keeping them current, the match.

SQLite searches with its FTS5 extension (the `items_fts` table, rowid = the
story's id, Porter stemming); PostgreSQL with its own full-text search (the
`item_search` table: one `tsvector` per story, English stemming, a GIN
index, and the story's `published_at` beside it, so that ranking the matches
reads no `items` rows).  On PostgreSQL the table is partitioned into slices of
PG_SLICE ids (`slice` = id // PG_SLICE, one partition and one GIN index each),
so that a search reads only the newest slices' matches (`pg_page`); the
store makes room for new ids before it writes (`make_room`).  Both index the
story's title and the plain text of its summary and content (tags removed,
entities decoded); the store writes a story's document whenever it writes
the story (`write_documents`), and a story's document goes when the story
goes (a trigger on SQLite, ON DELETE CASCADE on PostgreSQL).

A query is the words in what the reader typed (letters and digits; no
operators): a story matches when it has every word, stemmed ("nurses"
finds "nurse").  The score is lower for more relevant stories (FTS5's bm25,
the negated `ts_rank` on PostgreSQL), the title weighing more than the text.
Both rank the matches RANK_BLOCK at a time, the most recently stored
(highest ids) first (`sqlite_page`, `pg_page`), since bm25 or `ts_rank`
over every match of a common word costs more than the rest of a search.
This module builds the statements; reads.py pages through them and formats.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, bindparam, column, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Subquery, TextClause

from ingest import errors
from ingest.store import direct
from ingest.store.db import chunks
from ingest.store.schema import UTCDateTime

__all__ = [
    "FEW",
    "FTS_TABLE",
    "MAX_TERMS",
    "NO_BLOCK",
    "PG_CONFIG",
    "PG_PENDING_LIST_KB",
    "PG_SLICE",
    "PG_TABLE",
    "RANK_BLOCK",
    "SEARCH_TABLES",
    "WALK_COST",
    "Estimate",
    "Indexed",
    "add_slices",
    "check_sqlite_fts5",
    "document",
    "estimate",
    "is_search_table",
    "make_room",
    "match_terms",
    "pg_page",
    "search_ddl",
    "slice_ddl",
    "slice_name",
    "slices_for",
    "sqlite_page",
    "terms",
    "write_documents",
]

FTS_TABLE = "items_fts"  # SQLite
PG_TABLE = "item_search"  # PostgreSQL
SEARCH_TABLES = (FTS_TABLE, PG_TABLE)
PG_CONFIG = "english"
PG_PENDING_LIST_KB = 256  # the GIN index's pending list, read whole by every search (0010)
# PostgreSQL's search table is partitioned by `slice` = id // PG_SLICE (0011): a search whose
# block lies in the newest slices reads only their GIN indexes and their matches' rows
PG_SLICE = 100_000
SLICE_MARGIN = 1.2  # a block's slices are picked to hold this many times RANK_BLOCK matches
MAX_TERMS = 16
RANK_BLOCK = 1000  # a search's matches are ranked this many at a time (`sqlite_page`, `pg_page`)
NO_BLOCK = 2**63 - 1  # `block_top` of the first block: every id
# PostgreSQL finds a block in one of two ways (`pg_page`): through the GIN index (every
# match read, about 2.6 microseconds each at a million stories), or down the primary key
# until RANK_BLOCK matches are found (about RANK_BLOCK * stories / matches rows checked,
# 0.25 microseconds each).  The index's way is cheaper when matches squared is at most
# RANK_BLOCK * stories * WALK_COST (about 10,000 matches at a million stories).
WALK_COST = 0.1
FEW = "few_matches"  # in `pg_page`'s `given`: the GIN index's way
TITLE_WEIGHT = 4.0  # bm25 column weight of the title against the text's 1.0

_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"\w+")


def search_ddl(dialect: str) -> list[str]:
    """The statements that create the search index in an empty database (migrations 0006,
    0010 and 0011: on PostgreSQL, partitioned by slice, with 0010's cap on the GIN pending
    list, which every search reads, and the first two slices)."""
    if dialect == "postgresql":
        return [
            f"CREATE TABLE {PG_TABLE} (item_id BIGINT NOT NULL REFERENCES items (id) "
            "ON DELETE CASCADE, slice BIGINT NOT NULL, published_at TIMESTAMP WITH TIME ZONE "
            "NOT NULL, document TSVECTOR NOT NULL, PRIMARY KEY (item_id, slice)) "
            "PARTITION BY RANGE (slice)",
            f"CREATE INDEX ix_{PG_TABLE}_document ON {PG_TABLE} USING gin (document) "
            f"WITH (gin_pending_list_limit = {PG_PENDING_LIST_KB})",
            slice_ddl(0),
            slice_ddl(1),
        ]
    return [
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, body, "
        "tokenize = 'porter unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER {FTS_TABLE}_delete AFTER DELETE ON items "
        f"BEGIN DELETE FROM {FTS_TABLE} WHERE rowid = OLD.id; END",
    ]


def slice_ddl(number: int) -> str:
    """The statement that creates PostgreSQL's search partition `number` (ids from
    number * PG_SLICE up to the next slice's); it gets the GIN index by itself."""
    return (
        f"CREATE TABLE IF NOT EXISTS {slice_name(number)} PARTITION OF {PG_TABLE} "
        f"FOR VALUES FROM ({number}) TO ({number + 1})"
    )


def slices_for(low_id: int, high_id: int) -> range:
    """The slice numbers of the ids from `low_id` to `high_id`."""
    return range(max(low_id, 0) // PG_SLICE, max(high_id, 0) // PG_SLICE + 1)


def make_room(conn: Connection, more: int) -> None:
    """On PostgreSQL, make sure the search table has partitions for the next `more` story
    ids and a whole slice beyond (so that ids other writers take meanwhile fit too).

    Called first in a transaction that may store new stories, before it writes to the
    table: creating a partition locks the whole table until the transaction ends (once in
    PG_SLICE stories), and a transaction that had written to the table already could
    deadlock with another writer doing the same.  Writers take turns by an advisory lock.
    A no-op on SQLite (FTS5 is one table)."""
    if conn.dialect.name != "postgresql":
        return  # (before the sequence is asked for)
    last = int(
        conn.execute(  # the highest id the items' sequence gave (NULL before the first)
            text(
                "SELECT coalesce(pg_sequence_last_value("
                "CAST(pg_get_serial_sequence('items', 'id') AS regclass)), 0)"
            )
        ).scalar_one()
    )
    add_slices(conn, last, last + more + PG_SLICE)


def add_slices(conn: Connection, low_id: int, high_id: int) -> None:
    """On PostgreSQL, the search table's partitions for the ids from `low_id` to
    `high_id` (those missing, under an advisory lock; see `make_room` for when).
    A no-op on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    wanted = list(slices_for(low_id, high_id))
    if not _missing_slices(conn, wanted):
        return
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROOM_LOCK})
    for number in _missing_slices(conn, wanted):  # again: another writer may have made them
        conn.exec_driver_sql(slice_ddl(number))


_ROOM_LOCK = 0x696E67657374  # "ingest": the advisory lock of `make_room`


def _missing_slices(conn: Connection, numbers: Sequence[int]) -> list[int]:
    names = {slice_name(n): n for n in numbers}
    rows = conn.execute(
        text(
            "SELECT name FROM unnest(CAST(:names AS text[])) AS name "
            "WHERE to_regclass(name) IS NULL"
        ),
        {"names": list(names)},
    )
    return sorted(names[r[0]] for r in rows)


def slice_name(number: int) -> str:
    """The name of PostgreSQL's search partition `number`: item_search_00000 and on."""
    return f"{PG_TABLE}_{number:05d}"


def is_search_table(name: str) -> bool:
    """Whether `name` is one of the search index's tables (FTS5 keeps shadow tables too;
    PostgreSQL's slices are partitions named `item_search_00000` and on)."""
    return name in (PG_TABLE, FTS_TABLE) or name.startswith((FTS_TABLE + "_", PG_TABLE + "_"))


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
    more = "" if content == summary else plain(content)  # the same text: read once
    if more and more != body:
        body = f"{body} {more}" if body else more
    return title, body


Indexed = tuple[int, str, str | None, str | None, datetime]


_FTS_INSERT = text(f"INSERT INTO {FTS_TABLE} (rowid, title, body) VALUES (:id, :title, :body)")


def write_documents(conn: Connection, rows: Iterable[Indexed], *, new: bool = False) -> None:
    """Index (or re-index) stories given as (id, title, summary, content, published_at);
    `new` when they were inserted in this transaction (nothing of theirs to replace)."""
    params: list[dict[str, Any]] = []
    for item_id, title, summary, content, published_at in rows:
        t, b = document(title, summary, content)
        params.append({"id": item_id, "title": t, "body": b, "published_at": published_at})
    if not params:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"INSERT INTO {PG_TABLE} (item_id, slice, published_at, document) VALUES (:id, "
                f"CAST(:id AS bigint) / {PG_SLICE}, :published_at, "
                f"setweight(to_tsvector('{PG_CONFIG}', :title), 'A') || "
                f"setweight(to_tsvector('{PG_CONFIG}', :body), 'D')) ON CONFLICT (item_id, slice) "
                "DO UPDATE SET published_at = EXCLUDED.published_at, document = EXCLUDED.document"
            ).bindparams(bindparam("published_at", type_=UTCDateTime())),
            params,
        )
        return
    if not new:
        remove_documents(conn, [p["id"] for p in params])  # FTS5 has no upsert
    direct.executemany(conn, _FTS_INSERT, params)  # the driver's: no per-row handling


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


@dataclass(frozen=True)
class Estimate:
    """The planner's estimate of a search's matches on PostgreSQL (`estimate`), the
    stories indexed, and the highest id indexed (0 when none)."""

    matches: float
    stories: float
    top_id: int

    @property
    def few(self) -> bool:
        """Whether the block is better found through the GIN index (`pg_page`)."""
        return self.matches**2 <= RANK_BLOCK * max(self.stories, self.matches) * WALK_COST

    def slice_low(self, block_top: int) -> int:
        """The lowest slice a block up to `block_top` is looked for in first: enough
        slices for SLICE_MARGIN times RANK_BLOCK matches, at the estimated rate."""
        share = min(1.0, self.matches / self.stories) if self.stories > 0 else 1.0
        if share <= 0:
            return 0  # no matches expected: every slice
        top = min(block_top, self.top_id)
        return max(0, int(top - SLICE_MARGIN * RANK_BLOCK / share) // PG_SLICE)


def estimate(conn: Connection, search_terms: str) -> Estimate:
    """How many stories PostgreSQL expects to match, of how many (`Estimate`): from the
    planner's own estimate of the matches (`EXPLAIN`, a plan and no run: a fraction of a
    millisecond) and of the stories in each slice (`pg_class.reltuples`; autovacuum
    analyzes the slices, not the partitioned table), and the highest id indexed."""
    plan = conn.execute(
        text(
            f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {PG_TABLE} "
            f"WHERE document @@ plainto_tsquery('{PG_CONFIG}', :search_terms)"
        ),
        {"search_terms": search_terms},
    ).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    matches = float(plan[0]["Plan"]["Plan Rows"])
    stories, top = conn.execute(
        text(
            "SELECT (SELECT coalesce(sum(greatest(c.reltuples, 0)), 0) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)), "
            f"(SELECT coalesce(max(item_id), 0) FROM {PG_TABLE})"
        ),
        {"table": PG_TABLE},
    ).one()
    return Estimate(matches, float(stories), int(top))


def pg_page(given: frozenset[str]) -> Subquery:
    """`(id, score, published_at, block_low, block_rows)`: one page of a search on
    PostgreSQL, ranked within its block, from the parameters named in `given` (as
    `sqlite_page`'s); lower score = more relevant (the negated `ts_rank`).

    The block is the `block_size` matches with the highest ids up to `block_top` that
    pass the filters, as on SQLite: `ts_rank` costs about 1.5 microseconds a match
    (half of a two-word search at a million stories when every match was ranked),
    and a word in one story in three had 330,000 matches to rank.  PostgreSQL finds
    the block by the GIN index when the words are rare and by walking the primary key
    down when they are common, and ranks only the block.  `published_at` is kept
    beside the document, so `items` is read only for `section`, `kind` or `source`.
    The planner's own choice between the two ways was wrong for rare words (it walked
    134,000 rows down the primary key, 34 ms, for a block the GIN index finds in 18),
    so `FEW` in `given` names the index's way (`estimate` decides).  That way reads
    only the slices from `slice_low` up (the table's partitions, `PG_SLICE` ids each):
    the caller picks them to hold the block (`Estimate.slice_low`) and asks again from
    slice 0 when they held fewer than `block_size` matches (`reads.latest`).
    """
    # an InitPlan: worked out once (a prepared statement's generic plan called
    # plainto_tsquery again for every row it checked or ranked)
    query = f"(SELECT plainto_tsquery('{PG_CONFIG}', :search_terms))"
    few = FEW in given
    if few:
        # `+ 0` hides the primary key from the planner, so that it reads the GIN index
        # alone (a prepared statement's generic plan otherwise ANDs in a scan of the whole
        # key); the slices are named by `slice`, which no index has: only partitions go
        key, match = "s.item_id + 0", f"s.document @@ {query}"
    else:
        # the operator's function hides the GIN index: a generic plan, which cannot know
        # that the words are common, read every match through it (half a second)
        key, match = "s.item_id", f"ts_match_vq(s.document, {query})"
    where, params, after = _block_filters(given, "s.item_id", "s.published_at", BigInteger)
    where.append(f"s.slice <= CAST(:block_top AS bigint) / {PG_SLICE}")
    if few:
        where.append("s.slice >= :slice_low")
        params.append(bindparam("slice_low", type_=BigInteger))
    join = "JOIN items AS i ON i.id = s.item_id " if given & {"section", "kind"} else ""
    stmt = text(
        # the block's documents are carried along to be ranked once the block is cut (the
        # slices' matches are few enough; reading them again by key cost twice as much)
        "WITH block AS MATERIALIZED ("
        "SELECT s.item_id AS id, s.published_at AS published_at, s.document AS document "
        f"FROM {PG_TABLE} AS s {join}"
        f"WHERE {' AND '.join([match, f'{key} <= :block_top', *where])} "
        f"ORDER BY {key} DESC LIMIT :block_size), "
        f"ranked AS (SELECT id, -ts_rank(document, {query})::float8 AS score, "
        "published_at FROM block), " + _page_of_block("ranked", after)
    )
    return _as_page(stmt, params, BigInteger)


def sqlite_page(given: frozenset[str]) -> Subquery:
    """`(id, score, published_at, block_low, block_rows)`: one page of a search on SQLite,
    ranked within its block, from the parameters named in `given` (`search_terms`,
    `block_top`, `block_size`, `page`; `section`, `kind`, `since`, `until`, `source`
    when filtering; `before_score`, `before_date`, `before_id` after a cursor).

    The block is the `block_size` matches with the highest ids up to `block_top` that
    pass the filters: FTS5 reads its index from the highest id down and stops there, so
    only the block is ranked (`bm25` costs about 1.7 microseconds a story; ranking every
    match of a word in one story in a hundred took most of a search's time at a million
    stories).  The page is the block's matches best first (score, then newest), after
    the cursor when given.  Every row carries the block's lowest id and size, and an
    empty page is still one row (id NULL), so that the caller can go on to the next
    block (`reads.latest`).
    """
    where, params, after = _block_filters(given, "i.id", "i.published_at", Integer)
    where = [f"{FTS_TABLE} MATCH :search_terms", f"{FTS_TABLE}.rowid <= :block_top", *where]
    stmt = text(
        "WITH block AS MATERIALIZED ("
        f"SELECT {FTS_TABLE}.rowid AS id, bm25({FTS_TABLE}, {TITLE_WEIGHT}, 1.0) AS score, "
        f"i.published_at AS published_at FROM {FTS_TABLE} JOIN items AS i "
        f"ON i.id = {FTS_TABLE}.rowid WHERE {' AND '.join(where)} "
        f"ORDER BY {FTS_TABLE}.rowid DESC LIMIT :block_size), " + _page_of_block("block", after)
    )
    return _as_page(stmt, params, Integer)


def _block_filters(
    given: frozenset[str], story_id: str, date: str, id_type: Any
) -> tuple[list[str], list[Any], str]:
    """What `sqlite_page` and `pg_page` share: the filters' conditions on a block's
    stories (`i` is `items`, `story_id` and `date` name the story's id and date), the
    bound parameters' types, and the cursor's condition on the ranked block."""
    where: list[str] = []
    params: list[Any] = [
        bindparam("block_top", type_=id_type),
        bindparam("block_size", type_=Integer),
        bindparam("page", type_=Integer),
    ]
    for name, condition in (
        ("section", "i.section = :section"),
        ("kind", "i.kind = :kind"),
        ("since", f"{date} >= :since"),
        ("until", f"{date} < :until"),
        ("source", "EXISTS (SELECT 1 FROM item_sources AS link "
                   f"WHERE link.item_id = {story_id} AND link.source_key = :source)"),
    ):  # fmt: skip
        if name in given:
            where.append(condition)
    for name in ("since", "until", "before_date"):
        if name in given:
            params.append(bindparam(name, type_=UTCDateTime()))
    after = ""
    if "before_date" in given:
        after = (
            "WHERE score > :before_score OR (score = :before_score "
            "AND (published_at, id) < (:before_date, :before_id))"
        )
        params += [bindparam("before_score", type_=Float), bindparam("before_id", type_=id_type)]
    return where, params, after


def _page_of_block(ranked: str, after: str) -> str:
    """The end of both pages' statement: the page of the `ranked` block (after the
    cursor), and the block's lowest id and size, in one row even when the page is empty."""
    return (
        f"page AS (SELECT id, score, published_at FROM {ranked} {after} "
        "ORDER BY score, published_at DESC, id DESC LIMIT :page) "
        "SELECT page.id AS id, page.score AS score, page.published_at AS published_at, "
        "info.block_low AS block_low, info.block_rows AS block_rows "
        "FROM (SELECT min(id) AS block_low, count(*) AS block_rows FROM block) AS info "
        "LEFT JOIN page ON 1 = 1"
    )


def _as_page(stmt: TextClause, params: list[Any], id_type: Any) -> Subquery:
    columns: list[Any] = [
        column("id", id_type),
        column("score", Float),
        column("published_at", UTCDateTime()),
        column("block_low", id_type),
        column("block_rows", Integer),
    ]
    return stmt.bindparams(*params).columns(*columns).subquery("top")
