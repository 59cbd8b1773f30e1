"""store/direct.py: a list statement run on the driver's cursor gives exactly the rows
SQLAlchemy's own execution gives, on SQLite and PostgreSQL, for every combination of
the list filters, and a driver error comes out as SQLAlchemy's (then the store's)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import column, select, table
from sqlalchemy.exc import DBAPIError

from bulkstories import NOW, fill
from ingest import errors
from ingest.store import Store, direct, reads


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
