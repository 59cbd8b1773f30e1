"""store/direct.py: a list statement run on the driver's cursor gives exactly the rows
SQLAlchemy's own execution gives, on SQLite and PostgreSQL, for every combination of
the list filters, and a driver error comes out as SQLAlchemy's (then the store's)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, column, insert, select, table, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from bulkstories import NOW, fill
from ingest import errors
from ingest.store import Store, direct, reads
from ingest.store.schema import fetches, items, sources


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        fill(s, 600)
        yield s


def by_sqlalchemy(store: Store, **filters: Any) -> list[dict[str, Any]]:
    statement, params = reads.latest_statement(store.engine.dialect.name, **filters)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement, params).mappings()]


def by_driver(store: Store, **filters: Any) -> list[dict[str, Any]]:
    statement, params = reads.latest_statement(store.engine.dialect.name, **filters)
    with store.engine.connect() as conn:
        return direct.dicts(conn, statement, params)


def test_every_list_filter_gives_sqlalchemys_rows(store: Store) -> None:
    newest = by_sqlalchemy(store, limit=300)
    cursor = (newest[250]["published_at"], newest[250]["id"])
    choices: dict[str, list[Any]] = {
        "section": [None, "latest", "blogs"],
        "source": [None, "ted", "rare"],
        "kind": [None, "video"],
        "since": [None, NOW - timedelta(days=200)],
        "until": [None, NOW - timedelta(days=20)],
        "before": [None, cursor],
        "limit": [1, 21],
    }
    compared = 0
    for values in itertools.product(*choices.values()):
        filters = dict(zip(choices, values, strict=True))
        expected = by_sqlalchemy(store, **filters)
        assert by_driver(store, **filters) == expected, filters
        compared += len(expected)
    assert compared > 500  # the filters found stories, not only empty pages
    row = by_driver(store, limit=1)[0]
    assert row["published_at"].utcoffset() == timedelta(0)  # converted as SQLAlchemy does
    assert isinstance(row["is_short"], bool)


def test_one_compiled_form_per_limit_the_same_rows_again(store: Store) -> None:
    """The LIMIT is written into the SQL: each limit gets its own form, and a form
    used again gives the same rows."""
    for limit in (3, 5, 3, 20, 5):
        rows = by_driver(store, section="latest", limit=limit)
        assert rows == by_sqlalchemy(store, section="latest", limit=limit)
        assert len(rows) == limit


def test_a_driver_error_is_sqlalchemys_then_the_stores(store: Store) -> None:
    missing = select(column("x")).select_from(table("no_such_table"))
    with store.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        direct.dicts(conn, missing, {})
    assert "no_such_table" in str(caught.value)
    assert not caught.value.connection_invalidated
    with pytest.raises(errors.StoreError, match="no_such_table"):
        store._read(lambda c: direct.dicts(c, missing, {}))
    assert len(store.latest(limit=5)) == 5  # the store reads on afterwards


def _fetch_rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(fetches).order_by(fetches.c.id)).mappings()]


def test_executemany_writes_what_sqlalchemy_writes(store: Store) -> None:
    """The poll log's INSERT and a state UPDATE with a value of its own (`+ 1`), written
    by the driver, read back exactly as the same rows written by SQLAlchemy."""
    later = NOW + timedelta(minutes=5)
    log = [
        {"source_key": "ted", "started_at": NOW, "duration_ms": 12, "url": "http://a/x",
         "status": 304, "outcome": "not_modified", "entries": 0, "new": 0, "updated": 0,
         "error": None},
        {"source_key": "rare", "started_at": later, "duration_ms": 7, "url": "http://b/ü",
         "status": None, "outcome": "error", "entries": 0, "new": 0, "updated": 0,
         "error": "boom\nline two"},
    ]  # fmt: skip
    update_stmt = (
        update(sources)
        .where(sources.c.key == bindparam("b_key"))
        .values(last_attempt_at=bindparam("v_at"), last_error=bindparam("v_error"))
        .values(consecutive_failures=sources.c.consecutive_failures + 1)
    )
    states = [
        {"b_key": "ted", "v_at": NOW, "v_error": None},
        {"b_key": "rare", "v_at": later, "v_error": "x"},
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(fetches), log)
        conn.execute(update_stmt, states)
    by_sqla = _fetch_rows(store)
    raw_sql = "SELECT key, last_attempt_at, last_error FROM sources ORDER BY key"
    with store.engine.connect() as conn:
        before = {r.key: r for r in conn.execute(select(sources))}
        raw_before = list(conn.exec_driver_sql(raw_sql))  # as stored, not converted
    with store.engine.begin() as conn:
        direct.executemany(conn, insert(fetches), log)
        direct.executemany(conn, update_stmt, states)
        direct.executemany(conn, update_stmt, [])  # nothing to do: no statement
    written = _fetch_rows(store)[len(by_sqla) :]
    assert [{**r, "id": None} for r in written] == [{**r, "id": None} for r in by_sqla]
    assert written[0]["started_at"] == NOW and written[0]["started_at"].utcoffset() is not None
    with store.engine.connect() as conn:
        after = {r.key: r for r in conn.execute(select(sources))}
        raw_after = list(conn.exec_driver_sql(raw_sql))
    assert raw_after == raw_before  # the same values, stored in the same form
    for key in ("ted", "rare"):
        assert after[key].consecutive_failures == before[key].consecutive_failures + 1
    assert after["rare"].last_error == "x" and after["ted"].last_attempt_at == NOW


def test_a_write_error_is_sqlalchemys_then_the_stores(store: Store) -> None:
    bad = [{"source_key": None, "started_at": NOW, "duration_ms": 1, "url": "u",
            "status": 200, "outcome": "ok", "entries": 0, "new": 0, "updated": 0,
            "error": None}]  # fmt: skip
    with store.engine.begin() as conn, pytest.raises(DBAPIError) as caught:
        direct.executemany(conn, insert(fetches), bad)  # source_key is NOT NULL
    assert not caught.value.connection_invalidated
    with pytest.raises(errors.StoreError), store._write() as c:
        direct.executemany(c, insert(fetches), bad)
    assert len(store.latest(limit=5)) == 5  # the store goes on afterwards


def test_insert_returning_gives_what_sqlalchemy_returns(store: Store) -> None:
    """New stories (one URL already stored among them): the rows inserted, as SQLAlchemy
    returns them (the date converted back to an aware datetime), and no row for the
    URL that was skipped."""
    with store.engine.connect() as conn:
        taken = conn.execute(select(items.c.canonical_url).limit(1)).scalar_one()
    later = NOW + timedelta(minutes=1)

    def story(url: str, when: Any) -> dict[str, Any]:
        return {"canonical_url": url, "url": url, "title": "T", "summary": "",
                "author": None, "image_url": None, "published_at": when,
                "date_source": "feed", "section": "latest", "source_key": "ted",
                "content_hash": "h", "first_seen_at": NOW, "updated_at": NOW,
                "kind": "article", "duration_seconds": None, "media_url": None,
                "is_short": False, "content": "<p>x</p>"}  # fmt: skip

    rows = [
        story("https://n.example/1", NOW),
        story(taken, NOW),
        story("https://n.example/2", later),
    ]
    stmt = (
        (sqlite_insert(items) if store.engine.dialect.name == "sqlite" else pg_insert(items))
        .on_conflict_do_nothing(index_elements=["canonical_url"])
        .returning(items.c.canonical_url, items.c.id, items.c.published_at)
    )
    with store.engine.connect() as conn:
        with conn.begin() as tx:
            by_sqla = [tuple(r) for r in conn.execute(stmt, rows)]
            tx.rollback()
        with conn.begin() as tx:
            by_driver = direct.insert_returning(conn, stmt, rows)
            assert direct.insert_returning(conn, stmt, []) == []
            tx.rollback()
    assert sorted((u, w) for u, _, w in by_driver) == sorted((u, w) for u, _, w in by_sqla)
    assert sorted((u, w) for u, _, w in by_driver) == [
        ("https://n.example/1", NOW), ("https://n.example/2", later)
    ]  # fmt: skip
    assert all(isinstance(i, int) and w.utcoffset() is not None for _, i, w in by_driver)
