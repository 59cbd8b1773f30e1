"""Every filter of `/api/items` and `ingest latest` is served by an index, on 50,000 stories.

One job: run `EXPLAIN` on the statement `Store.latest` sends (`reads.latest_statement`)
for each filter and their combinations (section, source, kind, date range, cursor,
search) on a database big enough that a scan or a sort of the whole table would
show, and fail when the plan reads a table whole or sorts it instead of walking an
index newest first and stopping at the page's end. SQLite and PostgreSQL (after
ANALYZE, as autovacuum would). The data comes from tests/bulkstories.py. Timings
are benchmarks/bench_api.py's job; this checks only plans and answers.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection

from bulkstories import NOW, WORDS, fill
from ingest.store import Store, reads, search

pytestmark = pytest.mark.slow

STORIES = 50_000
MONTH = timedelta(days=30)
RARE_WORDS = f"{WORDS[200]} {WORDS[300]}"  # two ordinary words: a few dozen stories have both
COMMON_WORDS = f"{WORDS[4]} {WORDS[8]}"  # two of the commonest: a third of the stories


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def big(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A database of STORIES stories, filled once per backend for the whole module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'big.sqlite3'}"
        with Store.open(url) as store:
            fill(store, STORIES)
            yield store
        return
    import psycopg
    from psycopg import sql

    from conftest import _sqlalchemy_pg_url
    from ingest.service.distributed.queue import libpq_url

    server = request.getfixturevalue("postgres_url")
    name = f"ingest_test_{secrets.token_hex(6)}"
    admin = libpq_url(server)
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with Store.open(_sqlalchemy_pg_url(server, database=name)) as store:
            fill(store, STORIES)
            yield store
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def explain(conn: Connection, filters: dict[str, Any]) -> Any:
    """The plan of `latest_query(**filters)`: SQLite's EXPLAIN QUERY PLAN rows as
    (id, parent, detail), or PostgreSQL's EXPLAIN (FORMAT JSON) plan tree."""
    pg = conn.dialect.name == "postgresql"
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    estimate = None
    if pg and filters.get("search"):  # as `reads.latest` decides
        terms = search.match_terms("postgresql", search.terms(filters["search"]))
        estimate = search.estimate(conn, terms)
        filters = {**filters, "few_matches": estimate.few}
    statement, params = reads.latest_statement(conn.dialect.name, limit=21, **filters)
    if estimate is not None and estimate.few:
        params["slice_low"] = estimate.slice_low(params["block_top"])
    event.listen(conn, "before_cursor_execute", capture)
    try:
        conn.execute(statement, params).all()
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    ((statement, params),) = [s for s in sent if s[0].startswith("SELECT")]  # one per request
    prefix = "EXPLAIN (FORMAT JSON) " if pg else "EXPLAIN QUERY PLAN "
    rows = conn.exec_driver_sql(prefix + statement, params).all()
    if pg:
        plan = rows[0][0]
        return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return [(r[0], r[1], r[3]) for r in rows]


def _pg_nodes(
    node: dict[str, Any], in_subplan: bool = False
) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every node of the tree, and whether it runs per row (inside a SubPlan)."""
    yield node, in_subplan
    for child in node.get("Plans", []):
        yield from _pg_nodes(child, in_subplan or child.get("Parent Relationship") == "SubPlan")


BIG_TABLES = ("items", "item_sources", "item_search")

# filters -> the index that must drive the read; None: two selective filters together, where
# a plan may read both indexes (bitmap AND) and sort the few stories that pass both
CASES: list[tuple[str, dict[str, Any], set[str] | None]] = [
    ("everything", {}, {"ix_items_published"}),
    ("section", {"section": "latest"}, {"ix_items_section_published", "ix_items_published"}),
    ("rare section", {"section": "research"}, {"ix_items_section_published"}),
    ("kind", {"kind": "audio"}, {"ix_items_kind_published"}),
    ("source", {"source": "ted"}, {"ix_item_sources_source_published"}),
    ("rare source", {"source": "rare"}, {"ix_item_sources_source_published"}),
    ("since", {"since": NOW - MONTH}, {"ix_items_published"}),
    ("date range", {"since": NOW - 3 * MONTH, "until": NOW - 2 * MONTH}, {"ix_items_published"}),
    ("cursor", {"before": (NOW - 6 * MONTH, 1000)}, {"ix_items_published"}),
    (
        "section, date range, cursor",
        {
            "section": "research",
            "since": NOW - 9 * MONTH,
            "until": NOW - MONTH,
            "before": (NOW - 2 * MONTH, 1000),
        },
        {"ix_items_section_published"},
    ),
    (
        "kind and cursor",
        {"kind": "audio", "before": (NOW - 2 * MONTH, 1)},
        {"ix_items_kind_published"},
    ),
    (
        "source, date range, cursor",
        {
            "source": "rare",
            "since": NOW - 9 * MONTH,
            "until": NOW - MONTH,
            "before": (NOW - 2 * MONTH, 1000),
        },
        {"ix_item_sources_source_published"},
    ),
    (
        "source and section",
        {"source": "ted", "section": "videos"},
        {"ix_item_sources_source_published"},
    ),
    (
        "section and kind",
        {"section": "videos", "kind": "video"},
        {"ix_items_kind_published", "ix_items_section_published", "ix_items_published"},
    ),
    ("rare section and kind", {"section": "research", "kind": "audio"}, None),
]


@pytest.mark.parametrize(("name", "filters", "indexes"), CASES, ids=[c[0] for c in CASES])
def test_every_filter_walks_an_index_newest_first(
    big: Store, name: str, filters: dict[str, Any], indexes: set[str] | None
) -> None:
    with big.engine.connect() as conn:
        plan = explain(conn, filters)
        if conn.dialect.name == "postgresql":
            nodes = list(_pg_nodes(plan))
            used = {n.get("Index Name") for n, _ in nodes} - {None}
            for node, per_row in nodes:
                kind = node["Node Type"]
                assert not (kind == "Seq Scan" and node.get("Relation Name") in BIG_TABLES), plan
                sorts = kind in ("Sort", "Incremental Sort")
                assert per_row or indexes is None or not sorts, plan  # no sort of a whole list
                bitmap = "Bitmap" in kind and node.get("Relation Name") == "items"
                assert per_row or indexes is None or not bitmap, plan  # read in order
            driving = next(n for n, _ in nodes if "Index" in n["Node Type"])
        else:
            details = [d for _, _, d in plan]
            top = [d for _, parent, d in plan if parent == 0]
            assert "USE TEMP B-TREE FOR ORDER BY" not in top, details
            for detail in details:
                for table in BIG_TABLES:
                    assert not detail.startswith(f"SCAN {table}") or " INDEX " in detail, details
                    assert detail != f"SCAN {table}", details
            used = {w for d in details for w in d.split() if w.startswith("ix_")}
            driving = {"Index Name": next((w for w in top[0].split() if w.startswith("ix_")), None)}
        if indexes is not None:
            assert driving["Index Name"] in indexes, (name, plan)
        assert used, plan
    # and the answer is what the filters ask, newest first
    rows = big.latest(limit=21, **filters)
    assert rows, name
    keys = [(r["published_at"], r["id"]) for r in rows]
    assert keys == sorted(keys, reverse=True)
    for r in rows:
        assert filters.get("section", r["section"]) == r["section"]
        assert filters.get("kind", r["kind"]) == r["kind"]
        assert filters.get("source", r["source"]) in r["sources"]
        assert r["published_at"] >= filters.get("since", r["published_at"])
        assert r["published_at"] < filters.get("until", r["published_at"] + MONTH)
        assert (r["published_at"], r["id"]) < filters.get("before", (NOW + MONTH, 0))


SEARCHES: list[tuple[str, dict[str, Any]]] = [
    ("search", {"search": RARE_WORDS}),
    ("search and source", {"search": RARE_WORDS, "source": "bmj-leader"}),
    (
        "search and section, since",
        {"search": RARE_WORDS, "section": "latest", "since": NOW - 9 * MONTH},
    ),
    ("search, cursor", {"search": RARE_WORDS, "before": (NOW, STORIES), "before_score": -1e3}),
    ("common words", {"search": COMMON_WORDS}),
    # articles: at 50,000 stories (one slice) the walk finds its block in the newest tenth
    # of the slice; with the videos' tenth it would read most of it, and the planner rightly
    # scans the slice then (at a million it walks for videos too: docs/downstream.md)
    ("common words, kind", {"search": COMMON_WORDS, "kind": "article"}),
]


@pytest.mark.parametrize(("name", "filters"), SEARCHES, ids=[c[0] for c in SEARCHES])
def test_a_search_reads_the_full_text_index(big: Store, name: str, filters: dict[str, Any]) -> None:
    with big.engine.connect() as conn:
        plan = explain(conn, filters)
        pg = conn.dialect.name == "postgresql"
        if pg:
            nodes = [n for n, _ in _pg_nodes(plan)]
            for node in nodes:
                relation = str(node.get("Relation Name"))
                if node["Node Type"] == "Seq Scan" and relation.startswith("item_search_"):
                    # a slice of the search table (a partition) that has no stories yet
                    assert not conn.exec_driver_sql(f"SELECT 1 FROM {relation}").all(), plan
                    continue
                assert not (node["Node Type"] == "Seq Scan" and relation in BIG_TABLES), plan
            used = {str(n.get("Index Name")) for n in nodes}
            gin = {u for u in used if u.startswith("item_search_") and u.endswith("_document_idx")}
            walk = [n for n in nodes if str(n.get("Index Name")).endswith("_pkey")
                    and str(n.get("Index Name")).startswith("item_search_")]  # fmt: skip
            backward = any(n.get("Scan Direction") == "Backward" for n in walk)
            if filters["search"] == COMMON_WORDS:
                # a third of the stories match: the block is found walking the primary
                # key down, not by reading every match through the GIN index
                assert not gin, plan
                assert backward, plan
            else:  # a few dozen: the GIN index finds them all
                assert gin, plan
        elif not pg:
            details = [d for _, _, d in plan]
            assert any(d.startswith("SCAN items_fts VIRTUAL TABLE INDEX") for d in details), details
            for detail in details:
                assert detail not in ("SCAN items", "SCAN item_sources"), details
                assert not detail.startswith("SCAN items USING"), details
            # the block is read from the index highest id first, stopping after RANK_BLOCK
            # matches: nothing sorts the matches to find it
            (block,) = [i for i, _, d in plan if d == "MATERIALIZE block"]
            assert not [d for _, parent, d in plan if parent == block and "TEMP B-TREE" in d], plan
    rows = big.latest(limit=21, **filters)
    assert rows, name
    words = filters["search"].split()
    for r in rows:
        text = f"{r['title']} {r['summary']} {r['content'] or ''}".lower()
        assert all(w in text for w in words), (words, r["title"])
    order = [(r["score"], -r["published_at"].timestamp(), -r["id"]) for r in rows]
    assert order == sorted(order)
    if "before" not in filters:
        # the first page is the best of the RANK_BLOCK matches with the highest ids
        everything = big.latest(limit=STORIES, **filters)
        assert len({r["id"] for r in everything}) == len(everything)
        block = sorted(everything, key=lambda r: -r["id"])[: search.RANK_BLOCK]
        block.sort(key=lambda r: (r["score"], -r["published_at"].timestamp(), -r["id"]))
        assert [r["id"] for r in rows] == [r["id"] for r in block[:21]]
