"""store/: migrations, upserts, identity across sources, state, reads — on SQLite and PostgreSQL.

Every test takes `db_url`, so it runs once on a fresh SQLite file and once on a
fresh PostgreSQL database (skipped, with the reason, when none is reachable).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ingest.model import Fetched, FetchState, Item, NextPoll, PollRecord, Source, SourceReport
from ingest.stages import dedupe
from ingest.store import Store, search
from ingest.store.schema import SCHEMA_REVISION, metadata
from store_helpers import T0, count, item, ok, save

A = Source(key="a", name="Source A", url="http://127.0.0.1:1/a.xml", section="latest")
B = Source(key="b", name="Source B", url="http://127.0.0.1:1/b.xml", section="blogs")


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store.open(db_url)
    s.sync_sources([A, B], T0)
    yield s  # type: ignore[misc]
    s.close()


def test_migrations_reach_the_revision_the_code_expects(db_url: str) -> None:
    import ingest_migrations
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(ingest_migrations.__path__[0])
    assert scripts.get_current_head() == SCHEMA_REVISION
    with Store.open(db_url) as s, s.engine.connect() as c:
        rev = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert rev == SCHEMA_REVISION
        c.execute(text("SELECT * FROM latest_items LIMIT 1")).all()  # the view exists


def test_migrated_database_matches_schema_py(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def ours(name: str | None, kind: str, _parents: Any) -> bool:
        # the search index's tables are made by DDL of their own (store/search.py)
        return not (kind == "table" and name is not None and search.is_search_table(name))

    with Store.open(db_url) as s, s.engine.connect() as c:
        context = MigrationContext.configure(c, opts={"include_name": ours})
        diffs = compare_metadata(context, metadata)
    assert diffs == []


def _describe(conn: Connection) -> dict[str, object]:
    """Everything about a database's shape that the code or a downstream reader can see."""
    insp = inspect(conn)
    shape: dict[str, object] = {}
    for table in insp.get_table_names():
        shape[table] = {
            "columns": {
                c["name"]: (str(c["type"]), c["nullable"], str(c.get("default")))
                for c in insp.get_columns(table)
            },
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    str(f.get("options", {}).get("ondelete")),
                )
                for f in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    for view in insp.get_view_names():
        shape[f"view {view}"] = " ".join(str(insp.get_view_definition(view)).split())
    shape["revision"] = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    if conn.dialect.name == "postgresql":  # storage parameters (the search index's, 0010)
        shape["reloptions"] = conn.execute(
            text(
                "SELECT relname, reloptions FROM pg_class WHERE reloptions IS NOT NULL "
                "AND relnamespace = 'public'::regnamespace ORDER BY relname"
            )
        ).all()
    return shape


def test_a_new_database_is_created_as_the_migrations_would_create_it(db_url: str) -> None:
    """A new database skips Alembic (create_all + view + stamp): same shape as migrating."""
    from ingest.store import db, migrations

    engine = db.make_engine(db_url)
    try:
        with engine.begin() as c:
            migrations._run_alembic(c)
        with engine.connect() as c:
            migrated = _describe(c)
        with engine.begin() as c:
            c.exec_driver_sql("DROP VIEW latest_items")
            c.exec_driver_sql("DROP TABLE alembic_version")
            c.exec_driver_sql(
                f"DROP TABLE {search.PG_TABLE if 'postgresql' in db_url else search.FTS_TABLE}"
            )
            metadata.drop_all(c)
            assert inspect(c).get_table_names() == []
        migrations.migrate(engine)  # an empty database again: the direct way
        with engine.connect() as c:
            created = _describe(c)
    finally:
        engine.dispose()
    assert created == migrated
    assert "view latest_items" in created
    searching = [t for t in created if search.is_search_table(t)]
    assert len(created) == len(metadata.tables) + 3 + len(searching) + ("reloptions" in created)
    if "postgresql" in db_url:
        capped = [f"gin_pending_list_limit={search.PG_PENDING_LIST_KB}"]
        assert created["reloptions"] == [  # the partitioned index, and each slice's (0011)
            ("item_search_00000_document_idx", capped),
            ("item_search_00001_document_idx", capped),
            ("ix_item_search_document", capped),
        ]
    assert searching == (["item_search", "item_search_00000", "item_search_00001"]
                         if "postgresql" in db_url else
                         ["items_fts", "items_fts_config", "items_fts_content", "items_fts_data",
                          "items_fts_docsize", "items_fts_idx"])  # fmt: skip


def test_a_database_with_our_tables_but_no_revision_is_left_to_alembic(db_url: str) -> None:
    """Not empty and not stamped (a half-made database): Alembic decides, nothing is dropped."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from ingest.errors import StoreError
    from ingest.store import db, migrations

    engine = db.make_engine(db_url)
    try:
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE sources (key TEXT PRIMARY KEY, kept TEXT)")
            c.exec_driver_sql("INSERT INTO sources VALUES ('x', 'still here')")
        with pytest.raises(StoreError, match="migrate"):
            migrations.migrate(engine)  # 0001 cannot create `sources`: it exists
        with engine.connect() as c:
            assert c.execute(text("SELECT kept FROM sources")).scalar_one() == "still here"
    except (OperationalError, ProgrammingError) as e:  # pragma: no cover - a real failure
        raise AssertionError(e) from e
    finally:
        engine.dispose()


def test_opening_twice_does_not_migrate_again(db_url: str) -> None:
    Store.open(db_url).close()
    with Store.open(db_url) as s:
        assert count(s, "alembic_version") == 1


def test_new_then_same_then_changed(store: Store) -> None:
    batch = [item(A, 1), item(A, 2)]
    plan = save(store, A, batch)
    assert [i.entry_key for i in plan.new] == ["id:a-1", "id:a-2"]
    assert count(store, "items") == 2

    before = store.latest(limit=10)
    again = save(store, A, batch, T0 + timedelta(hours=1))
    assert again.new == () and again.changed == () and again.same == 2
    assert store.latest(limit=10) == before  # nothing rewritten, updated_at unmoved

    later = T0 + timedelta(hours=2)
    edited = save(store, A, [replace(batch[0], title="Story 1, corrected", content_hash="h1b")],
                  later)  # fmt: skip
    assert len(edited.changed) == 1
    rows = {r["title"]: r for r in store.latest(limit=10)}
    assert "Story 1, corrected" in rows and "Story 1" not in rows
    assert rows["Story 1, corrected"]["updated_at"] == later
    assert rows["Story 1, corrected"]["first_seen_at"] == T0
    assert count(store, "items") == 2 and count(store, "item_sources") == 2


def test_one_story_from_two_sources_is_one_row_with_both(store: Store) -> None:
    save(store, A, [item(A, 7)])
    save(store, B, [item(B, 7, url="https://news.example.org/7?ref=b")], T0 + timedelta(1))
    assert count(store, "items") == 1
    assert count(store, "item_sources") == 2
    (row,) = store.latest(limit=5)
    assert row["source"] == "a" and row["sources"] == ["a", "b"]
    assert row["url"] == "https://news.example.org/7"  # the first source's link is kept
    with store.engine.connect() as c:
        view = c.execute(text("SELECT source, sources FROM latest_items")).one()
    assert tuple(view) == ("a", "a,b")


def test_a_changed_copy_from_another_source_does_not_overwrite_the_story(store: Store) -> None:
    save(store, A, [item(A, 3)])
    save(store, B, [item(B, 3)])
    save(store, B, [item(B, 3, title="B's retitled copy", content_hash="hb")])
    (row,) = store.latest(limit=5)
    assert row["title"] == "Story 3"


def test_an_undated_story_keeps_the_time_it_was_first_seen(store: Store) -> None:
    first = item(A, 4, date_source="first_seen", published_at=T0)
    save(store, A, [first])
    seen_later = replace(first, published_at=T0 + timedelta(days=1), title="New title",
                         content_hash="h4b")  # fmt: skip
    save(store, A, [seen_later], T0 + timedelta(days=1))
    (row,) = store.latest(limit=5)
    assert row["published_at"] == T0 and row["title"] == "New title"


def test_latest_is_newest_first_and_filters_by_section_and_source(store: Store) -> None:
    save(store, A, [item(A, n) for n in range(5)])
    save(store, B, [item(B, n + 100) for n in range(3)])
    everything = store.latest(limit=100)
    dates = [r["published_at"] for r in everything]
    assert dates == sorted(dates, reverse=True) and len(everything) == 8
    assert {r["section"] for r in store.latest(section="blogs", limit=100)} == {"blogs"}
    assert len(store.latest(source="b", limit=100)) == 3
    assert len(store.latest(limit=2)) == 2
    since = store.latest(since=T0 + timedelta(hours=3), limit=100)
    assert all(r["published_at"] >= T0 + timedelta(hours=3) for r in since)
    with store.engine.connect() as c:
        view = [r[0] for r in c.execute(text("SELECT title FROM latest_items LIMIT 3"))]
    assert view == [r["title"] for r in everything[:3]]


def test_poll_state_failures_and_recovery(store: Store) -> None:
    fail = SourceReport(source_key="a", ok=False, status=500, error="HTTP 500", error_kind="http")
    due = T0 + timedelta(minutes=30)
    failed = PollRecord(A, fail, None, T0, NextPoll(due))
    store.record_polls([failed, failed])
    row = next(r for r in store.status() if r["key"] == "a")
    assert row["consecutive_failures"] == 2 and row["last_error"] == "HTTP 500"
    assert row["last_success_at"] is None and row["last_status"] == 500

    fetched = Fetched(source_key="a", url=A.url, final_url=A.url, status=200, etag='"v1"',
                      last_modified="Mon, 01 Jun 2026 08:00:00 GMT", body_hash="abc")  # fmt: skip
    store.save_poll(PollRecord(A, ok(A), fetched, T0, NextPoll(due)), [item(A, 1)])
    row = next(r for r in store.status() if r["key"] == "a")
    assert row["consecutive_failures"] == 0 and row["last_error"] is None
    assert row["last_success_at"] == T0 and row["items"] == 1 and row["next_due_at"] == due
    assert count(store, "fetches") == 3

    states = store.fetch_states([A])
    assert states["a"].etag == '"v1"' and states["a"].body_hash == "abc"
    # validators belong to a URL: an edited URL starts afresh
    moved = store.fetch_states([replace(A, url="http://127.0.0.1:1/new.xml")])
    assert moved == {"a": FetchState()}
    # and the failure count is what backoff starts from
    store.record_polls([failed])
    assert store.fetch_states([A])["a"].failures == 1


def test_sources_removed_from_the_file_keep_their_stories(store: Store) -> None:
    save(store, B, [item(B, 1)])
    store.sync_sources([A], T0 + timedelta(1))
    rows = {r["key"]: r for r in store.status()}
    assert rows["b"]["in_config"] is False and rows["a"]["in_config"] is True
    assert count(store, "items") == 1
    store.sync_sources([A, replace(B, name="Renamed")], T0 + timedelta(2))
    rows = {r["key"]: r for r in store.status()}
    assert rows["b"]["in_config"] is True and rows["b"]["name"] == "Renamed"


def test_concurrent_writers_never_duplicate_a_story(db_url: str) -> None:
    stores = [Store.open(db_url) for _ in range(4)]
    stores[0].sync_sources([A, B], T0)
    batch_a = [item(A, n) for n in range(60)]
    batch_b = [item(B, n) for n in range(60)]
    errors: list[BaseException] = []

    def work(s: Store, source: Source, batch: list[Item]) -> None:
        try:
            save(s, source, batch)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(s, src, b))
        for s, (src, b) in zip(stores, [(A, batch_a), (B, batch_b), (A, batch_a), (B, batch_b)],
                               strict=True)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(stores[0], "items") == 60
    assert count(stores[0], "item_sources") == 120
    for s in stores:
        s.close()


def test_dedupe_plan_is_pure_and_first_wins() -> None:
    batch = [item(A, 1), item(A, 1, title="dup"), item(A, 2)]
    plan = dedupe.plan(batch, {"id:a-2": "h2"})
    assert [i.title for i in plan.new] == ["Story 1"]
    assert plan.same == 1 and plan.duplicates_in_batch == 1 and plan.changed == ()
    changed = dedupe.plan([item(A, 2, content_hash="other")], {"id:a-2": "h2"})
    assert len(changed.changed) == 1
    one = dedupe.first_by_canonical_url([item(A, 1), item(B, 1)])
    assert next(iter(one.values())).source_key == "a" and len(one) == 1


def _documented_columns() -> dict[str, set[str]]:
    """Table -> columns, read from docs/database.md (the downstream contract)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "database.md").read_text()
    out: dict[str, set[str]] = {}
    for section in re.split(r"^## ", doc, flags=re.M)[1:]:
        name = re.match(r"`(\w+)`", section)
        if not name:
            continue
        cols: set[str] = set()
        for row in re.findall(r"^\| (`[^|]+`) \|", section, flags=re.M):
            cols.update(re.findall(r"`(\w+)`", row))
        for listed in re.findall(r"^Columns: (.*?)\.\n", section, flags=re.M | re.S):
            cols.update(re.findall(r"`(\w+)`", listed))
        if cols:
            out[name.group(1)] = cols
    return out


def test_every_documented_column_exists(db_url: str) -> None:
    documented = _documented_columns()
    assert set(documented) == {
        "latest_items",
        "items",
        "item_sources",
        "sources",
        "fetches",
        "host_cooldowns",
        "subscriptions",
    }
    with Store.open(db_url) as s, s.engine.connect() as c:
        for table, cols in documented.items():
            result = c.execute(text(f"SELECT * FROM {table} LIMIT 0"))
            assert cols <= set(result.keys()), (table, cols - set(result.keys()))


def _open_at_once(url: str, barrier: Any) -> None:
    import os as _os

    barrier.wait()
    try:
        Store.open(url).close()
    except Exception:  # the exit code carries it; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        _os._exit(1)
    _os._exit(0)


def test_processes_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL answers "locked" without waiting; opening must wait."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_ in range(8):
        url = f"sqlite:///{tmp_path / f'new-{round_}.sqlite3'}"
        barrier = ctx.Barrier(3)
        procs = [ctx.Process(target=_open_at_once, args=(url, barrier)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0], f"round {round_}"
        with Store.open(url) as s, s.engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (SCHEMA_REVISION,)
            ]
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
