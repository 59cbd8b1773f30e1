"""Read queries: conditional-GET state, the latest stories, the state of each source.

Plain SELECTs over the tables in schema.py, returning model values or plain
dicts ready for printing; nothing here writes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Integer, bindparam, func, literal_column, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from ingest.model import STORY_FIELDS, FetchState, Story
from ingest.store import direct
from ingest.store import search as search_index
from ingest.store.db import chunks
from ingest.store.schema import ID, UTCDateTime, fetches, item_sources, items, sources

__all__ = [
    "carriers",
    "failing_since",
    "fetch_states",
    "last_change",
    "latest",
    "latest_statement",
    "sections",
    "source_status",
    "story_count",
    "story_lags",
]


def fetch_states(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[str | None, FetchState]]:
    """Per source of `keys` (polled or not): the URL the validators belong to, and the state."""
    out: dict[str, tuple[str | None, FetchState]] = {}
    for chunk in chunks(keys):
        rows = conn.execute(_FETCH_STATES, {"keys": list(chunk)})
        out.update((r[0], (r[1], FetchState(r[2], r[3], r[4], r[5] or 0, r[6]))) for r in rows)
    return out


# built once: the scheduler reads the states of the sources it polls every tick
_FETCH_STATES = select(
    sources.c.key,
    sources.c.state_url,
    sources.c.etag,
    sources.c.last_modified,
    sources.c.body_hash,
    sources.c.consecutive_failures,
    sources.c.discovered_url,
).where(sources.c.key.in_(bindparam("keys", expanding=True)))


def latest(conn: Connection, **filters: Any) -> list[Story]:
    """Stories newest first (with `search`, most relevant first), with every source
    that carried each one, in one statement (`latest_statement` says which); a search
    whose page runs past the end of its block of ranked matches goes on into the next
    block with one more (a block is bigger than any page)."""
    dialect = conn.dialect.name
    statement, params = latest_statement(dialect, **filters)
    # on PostgreSQL, when the planner expects few matches, the GIN index's way and the
    # newest slices it should find the block in (None: every slice)
    picked: search_index.Estimate | None = None
    if dialect == "postgresql" and "search_terms" in params:
        guess = search_index.estimate(conn, params["search_terms"])
        if guess.few:
            picked = guess
            filters = {**filters, "few_matches": True}
            statement, params = latest_statement(dialect, **filters)
    if "block_top" not in params:
        # compiled once, run on the driver's cursor: SQLAlchemy's execution cost more
        # than PostgreSQL's answer (store/direct.py)
        return [_with_sources(r) for r in direct.dicts(conn, statement, params)]
    wanted: int = params["page"]
    rows: list[Story] = []
    while True:
        if filters.get("few_matches"):
            params["slice_low"] = 0 if picked is None else picked.slice_low(params["block_top"])
        low, size, page = None, 0, []
        for r in conn.execute(statement, params):
            row = dict(r._mapping)
            low, size = row.pop("block_low"), row.pop("block_rows")
            if row["id"] is not None:  # an empty page is one row naming only the block
                top = params["block_top"]
                row["block"] = None if top == search_index.NO_BLOCK else top
                page.append(_with_sources(row))
        if size < params["block_size"] and params.get("slice_low", 0) > 0:
            picked = None  # those slices held less than a block: the same block from all
            continue
        rows += page
        if len(rows) >= wanted or low is None or size < params["block_size"]:
            return rows  # the page is full, or that was the last block
        filters = {**filters, "limit": wanted - len(rows), "block_top": low - 1}
        filters.update(before=None, before_score=None)  # the next block, from its best
        statement, params = latest_statement(dialect, **filters)


def _with_sources(row: dict[str, Any]) -> Story:
    carriers = row["sources"]
    row["sources"] = carriers.split(",") if carriers else [row["source"]]
    return cast(Story, row)


def latest_statement(
    dialect: str,
    *,
    section: str | None = None,
    source: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    before: tuple[datetime, int] | None = None,
    search: str | None = None,
    before_score: float | None = None,
    block_top: int | None = None,
    few_matches: bool = False,
) -> tuple[Select[Any], dict[str, Any]]:
    """The SELECT behind `latest` and its parameters.

    Every filter reads an index newest first and stops after `limit` rows
    (tests/test_plans.py checks the plans): `section=` reads
    `ix_items_section_published`, `kind=` `ix_items_kind_published`, no filter
    `ix_items_published`, and `source=` reads `ix_item_sources_source_published`
    (the story's date is copied onto each of its sources' rows).  `since` and
    `until` bound the date (`until` exclusive).  `before` is a keyset cursor:
    only stories strictly after that `(published_at, id)` in the newest-first
    order.  With `search` (a reader's words, store/search.py) the order is
    (score, published_at DESC, id DESC) and the cursor also carries the last
    story's score (`before_score`).  Rows carry `score` when searching.  A
    search ranks its matches in blocks of `search.RANK_BLOCK`, the highest ids
    first: a block is the RANK_BLOCK matches with the highest ids up to its
    `block_top` (None: the first block, every id); a cursor names the block it
    is in, and each row carries its own block's (`block`, None in the first).
    On PostgreSQL, `few_matches` (from the planner's estimates, `search.estimate`)
    makes the block be found through the GIN index rather than down the primary
    key (`search.pg_page`).

    The statement depends only on which filters are given, so it is built once
    per combination and reused with new parameters: building it costs five
    times what SQLite takes to answer it.
    """
    params: dict[str, Any] = {"page": limit}
    for name, value in (("section", section), ("source", source), ("kind", kind),
                        ("since", since), ("until", until)):  # fmt: skip
        if value:
            params[name] = value
    if before is not None:
        params["before_date"], params["before_id"] = before
    if search is not None:
        params["search_terms"] = search_index.match_terms(dialect, search_index.terms(search))
        if before is not None:
            if before_score is None:
                raise ValueError("a search cursor carries the last story's score")
            params["before_score"] = before_score
        params["block_top"] = search_index.NO_BLOCK if block_top is None else block_top
        params["block_size"] = search_index.RANK_BLOCK
    shape = frozenset(params) - {"page", "block_size"}
    if few_matches and dialect == "postgresql" and search is not None:
        shape |= {search_index.FEW}  # a name of the statement's shape, not a parameter
    return _statement(dialect, shape), params


@lru_cache(maxsize=512)
def _statement(dialect: str, given: frozenset[str]) -> Select[Any]:
    if "search_terms" in given:
        return _search_statement(dialect, given)
    if "source" in given:
        # one source's links, newest first; a story the source carried twice is one row
        via = item_sources.c
        date, ident = via.published_at, via.item_id
        query = select(*_story_columns(dialect)).select_from(
            item_sources.join(items, items.c.id == via.item_id)
        )
        twin = item_sources.alias("twin")
        query = query.where(
            via.source_key == bindparam("source"),
            ~select(twin.c.item_id)
            .where(
                twin.c.item_id == via.item_id,
                twin.c.source_key == via.source_key,
                twin.c.entry_key < via.entry_key,
            )
            .exists(),
        )
    else:
        date, ident = items.c.published_at, items.c.id
        query = select(*_story_columns(dialect)).select_from(items)
    query = _filtered(query, given, date).where(items.c.hidden_at.is_(None))  # refilter
    if "before_date" in given:
        query = query.where(tuple_(date, ident) < _before())
    return (
        query.join(sources, sources.c.key == items.c.source_key)
        .order_by(date.desc(), ident.desc())
        .limit(bindparam("page", type_=Integer, literal_execute=True))
    )


def _search_statement(dialect: str, given: frozenset[str]) -> Select[Any]:
    """The page of matches first (ids, scores and dates only, ranked within its block,
    filters included: `search.sqlite_page`, `search.pg_page`), then the page's stories
    with their columns and sources."""
    if dialect == "sqlite":
        return _page_stories(dialect, search_index.sqlite_page(given))
    return _page_stories(dialect, search_index.pg_page(given))


def _page_stories(dialect: str, top: Any) -> Select[Any]:
    """The stories of a page of matches `top` (id, score, published_at), in its order,
    with the block's `block_low` and `block_rows`, and one row without a story when the
    page is empty (`search.sqlite_page`, `search.pg_page`)."""
    columns = [*_story_columns(dialect), top.c.score, top.c.block_low, top.c.block_rows]
    joined = top.outerjoin(items, items.c.id == top.c.id).outerjoin(
        sources, sources.c.key == items.c.source_key
    )
    return (
        select(*columns)
        .select_from(joined)
        .order_by(top.c.score, top.c.published_at.desc(), top.c.id.desc())
    )


def _filtered(query: Select[Any], given: frozenset[str], date: Any) -> Select[Any]:
    if "section" in given:
        query = query.where(items.c.section == bindparam("section"))
    if "kind" in given:
        query = query.where(items.c.kind == bindparam("kind"))
    if "since" in given:
        query = query.where(date >= bindparam("since", type_=UTCDateTime()))
    if "until" in given:
        query = query.where(date < bindparam("until", type_=UTCDateTime()))
    return query


def _before() -> Any:
    return tuple_(bindparam("before_date", type_=UTCDateTime()), bindparam("before_id", type_=ID))


def _story_columns(dialect: str) -> list[Any]:
    """A story's fields (`model.STORY_FIELDS`, in order) as `latest` selects them,
    `sources` as a comma-separated list."""
    c = items.c
    columns = {
        "id": c.id, "url": c.url, "title": c.title, "summary": c.summary,
        "published_at": c.published_at, "first_seen_at": c.first_seen_at,
        "updated_at": c.updated_at, "section": c.section, "source": c.source_key,
        "source_name": sources.c.name, "sources": carriers(dialect), "image_url": c.image_url,
        "author": c.author, "date_source": c.date_source, "canonical_url": c.canonical_url,
        "kind": c.kind, "duration": c.duration_seconds, "media_url": c.media_url,
        "is_short": c.is_short, "content": c.content,
    }  # fmt: skip
    return [columns[name].label(name) for name in STORY_FIELDS]


def carriers(dialect: str) -> Any:
    """Every source that carried the story, comma-separated, first to carry it first."""
    x = item_sources.alias("x")
    per_source = (
        select(x.c.source_key.label("k"), func.min(x.c.first_seen_at).label("f"))
        .where(x.c.item_id == items.c.id)
        .group_by(x.c.source_key)
        .correlate(items)
    )
    if dialect == "postgresql":
        # imported here: the PostgreSQL dialect package (every driver's module) costs a
        # SQLite run's database process ~25 ms of start-up
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        keyed = per_source.subquery("c")
        return select(
            func.string_agg(
                keyed.c.k, aggregate_order_by(literal_column("','"), keyed.c.f, keyed.c.k)
            )
        ).scalar_subquery()
    ordered = per_source.order_by("f", "k").subquery("c")
    return select(func.group_concat(ordered.c.k, ",")).scalar_subquery()


def source_status(conn: Connection) -> list[dict[str, Any]]:
    """One dict per source row, with how many stories it has carried, the lags of its
    stories (`story_lags`, see that function) and their median (`median_lag_seconds`;
    None without any), and when a failing one started to fail (`failing_since`; None
    when unknown or not failing)."""
    counts: dict[str, int] = dict(
        conn.execute(
            select(item_sources.c.source_key, func.count()).group_by(item_sources.c.source_key)
        ).all()
    )
    lags = story_lags(conn)
    failing = failing_since(conn)
    rows = conn.execute(select(sources).order_by(sources.c.key))
    out = []
    for r in rows:
        d = dict(r._mapping)
        d["items"] = int(counts.get(d["key"], 0))
        mine = d["story_lags"] = lags.get(d["key"], [])
        d["median_lag_seconds"] = statistics.median(mine) if mine else None
        d["failing_since"] = failing.get(d["key"])
        out.append(d)
    return out


def failing_since(conn: Connection) -> dict[str, datetime]:
    """For each failing source, its first failed poll since its last success (the poll log)."""
    query = (
        select(fetches.c.source_key, func.min(fetches.c.started_at))
        .join(sources, sources.c.key == fetches.c.source_key)
        .where(
            sources.c.consecutive_failures > 0,
            fetches.c.outcome == "error",
            or_(
                sources.c.last_success_at.is_(None),
                fetches.c.started_at > sources.c.last_success_at,
            ),
        )
        .group_by(fetches.c.source_key)
    )
    return {key: when for key, when in conn.execute(query)}


def story_lags(conn: Connection) -> dict[str, list[float]]:
    """Per source (the first to carry it), each stored story's lag in seconds.

    A story's lag is from its publication to when ingest first stored it
    (`first_seen_at - published_at`), counted only where the date is the
    story's own (`date_source = 'published'`) and the story was published
    after the source was added (what it carried then is its back catalogue,
    not lateness).  Never below zero.
    """
    rows = conn.execute(
        select(items.c.source_key, items.c.published_at, items.c.first_seen_at)
        .join(sources, sources.c.key == items.c.source_key)
        .where(items.c.date_source == "published", items.c.published_at >= sources.c.created_at)
    )
    out: dict[str, list[float]] = defaultdict(list)
    for key, published, seen in rows:
        out[key].append(max(0.0, (seen - published).total_seconds()))
    return dict(out)


def sections(conn: Connection) -> list[str]:
    """Every section a configured source feeds, sorted."""
    return sorted(conn.execute(select(sources.c.section).distinct()).scalars())


def last_change(conn: Connection) -> datetime | None:
    """When ingest last wrote anything (every poll touches `sources.updated_at`)."""
    value: datetime | None = conn.execute(select(func.max(sources.c.updated_at))).scalar_one()
    return value


def story_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(items)).scalar_one())
