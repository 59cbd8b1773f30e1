"""Search: `Store.latest(search=...)`, `/api/items?q=`, `ingest latest --search`, migrations.

On SQLite (FTS5) and PostgreSQL (tsvector + GIN), through the store's real write path
(`Store.save_poll`): what a search finds (title, summary, content; every word; stemmed;
not the HTML's tags), its order (relevance, then newest first; a block of
matches at a time), its pages (the same keyset cursor rules as the plain list), that
writes keep the index current (a changed story, a pruned one), the API's and the
command's answers and errors, an older database migrated to 0006 (its stories found,
their sources' dates filled in), and 0010's cap on PostgreSQL's GIN pending list.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from cli_helpers import latest_json
from ingest.cli.main import main
from ingest.model import Source
from ingest.store import Store
from ingest.store import search as search_index
from ingest.web.app import create_app
from ingest.web.params import decode_cursor
from store_helpers import T0, count, item, migrate_to, save

A = Source(key="a", name="Source A", url="http://127.0.0.1:1/a.xml", section="latest")
B = Source(key="b", name="Source B", url="http://127.0.0.1:1/b.xml", section="blogs")


@pytest.fixture
def store(db_url: str) -> Any:
    with Store.open(db_url) as s:
        s.sync_sources([A, B], T0)
        save(s, A, [
            item(A, 1, title="Nurses lead the night shift", summary="<p>Rota news.</p>"),
            item(A, 2, title="Board meeting", summary="<p>The <strong>nurse</strong> "
                 "leadership programme &amp; more.</p>"),
            item(A, 3, title="Budget", summary="<p>Numbers.</p>",
                 content="<div><p>Leadership of nurses in the wards.</p></div>"),
            item(A, 4, title="Leadership in surgery", summary="<p>No match here.</p>"),
            item(A, 5, title="Café culture", summary="<p>Éclairs for the nursing team.</p>"),
        ])  # fmt: skip
        save(s, B, [item(B, 6, title="Nurse leadership: a blog", summary="<p>Blog.</p>")])
        yield s


def titles(rows: list[dict[str, Any]]) -> list[str]:
    return [r["title"] for r in rows]


def test_a_search_finds_every_word_in_title_summary_or_content(store: Store) -> None:
    found = titles(store.latest(search="nurse leadership"))
    # both words in the title first, then in summary or content; "Leadership in surgery"
    # lacks "nurse", and "lead" is not "leadership"
    assert found[0] == "Nurse leadership: a blog"
    assert set(found) == {"Nurse leadership: a blog", "Board meeting", "Budget"}
    assert titles(store.latest(search="NURSES")) == titles(store.latest(search="nurse"))
    assert "Nurses lead the night shift" in titles(store.latest(search="nurse"))
    assert titles(store.latest(search="strong")) == []  # a tag, not a word of the text
    assert titles(store.latest(search="amp")) == []  # an entity, decoded before indexing
    assert titles(store.latest(search="leadership", source="b")) == ["Nurse leadership: a blog"]
    assert (
        titles(store.latest(search="leadership", section="latest"))[-1]
        != "Nurse leadership: a blog"
    )


def test_the_title_weighs_more_than_the_text_and_ties_go_newest_first(store: Store) -> None:
    rows = store.latest(search="leadership")
    assert set(titles(rows[:2])) == {"Nurse leadership: a blog", "Leadership in surgery"}
    assert set(titles(rows[2:])) == {"Board meeting", "Budget"}
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores)
    for a, b in itertools.pairwise(rows):
        if a["score"] == b["score"]:
            assert (a["published_at"], a["id"]) > (b["published_at"], b["id"])


def test_query_syntax_is_taken_as_words(store: Store) -> None:
    for query in ('nurse" OR "x', "title:nurse", "nurse*", "NEAR(nurse leadership)", "-nurse"):
        rows = store.latest(search=query)  # no syntax error, whatever the reader typed
        assert all("nurs" in f"{r['title']} {r['summary']} {r['content']}".lower() for r in rows)


def test_writes_keep_the_index_current(store: Store) -> None:
    save(store, A, [item(A, 4, title="Leadership in theatre nursing", content_hash="new4")])
    assert "Leadership in theatre nursing" in titles(store.latest(search="theatre"))
    assert titles(store.latest(search="surgery")) == []
    # a new date moves the story in `source=` lists too (item_sources.published_at)
    later = T0 + timedelta(days=30)
    save(store, A, [item(A, 4, title="Leadership in theatre nursing", content_hash="new5",
                         published_at=later)])  # fmt: skip
    assert store.latest(source="a", limit=1)[0]["published_at"] == later
    assert store.latest(source="a", limit=1)[0]["title"] == "Leadership in theatre nursing"
    # pruning removes stories from the index with them
    assert store.prune_batch(T0 + timedelta(days=3650), retention=0, history=0, batch=100)
    assert store.latest(search="leadership") == []


def test_a_source_listing_a_story_twice_shows_it_once(store: Store) -> None:
    twin = replace(item(A, 7, title="Twice"), entry_key="id:other-guid")
    save(store, A, [item(A, 7, title="Twice"), twin])
    rows = store.latest(source="a")
    assert titles(rows).count("Twice") == 1 and rows[0]["sources"] == ["a"]
    assert count(store, "item_sources WHERE item_id = " + str(rows[0]["id"])) == 2


class Client:
    def __init__(self, store: Store) -> None:
        self.app = create_app(store)

    def get(self, path: str, **params: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get(path, params=params)

        return asyncio.run(go())


def test_the_api_pages_through_a_search_once_each(store: Store) -> None:
    client = Client(store)
    whole = client.get("/api/items", q="nurse leadership").json()
    assert whole["next_cursor"] is None
    seen: list[int] = []
    cursor = None
    while True:
        params = {"q": "nurse leadership", "limit": "1", **({"cursor": cursor} if cursor else {})}
        data = client.get("/api/items", **params).json()
        seen += [i["id"] for i in data["items"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in whole["items"]] and len(seen) == 3
    assert "score" not in whole["items"][0]
    only_b = client.get("/api/items", q="leadership", source="b", section="blogs").json()
    assert [i["source"] for i in only_b["items"]] == ["b"]


def test_the_api_explains_a_bad_search(store: Store) -> None:
    client = Client(store)
    plain_cursor = client.get("/api/items", limit="1").json()["next_cursor"]
    search_cursor = client.get("/api/items", q="nurse", limit="1").json()["next_cursor"]
    for params, parameter in [
        ({"q": "!!! ..."}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "nurse", "cursor": plain_cursor}, "cursor"),
        ({"cursor": search_cursor}, "cursor"),
        ({"kind": "podcast"}, "kind"),
        ({"since": "2026-06-02", "until": "2026-06-01"}, "until"),
    ]:
        r = client.get("/api/items", **params)
        assert r.status_code == 400, params
        assert r.json()["parameter"] == parameter and r.json()["error"]


def test_the_api_filters_by_kind_and_date_range(store: Store) -> None:
    video = Source(key="v", name="Videos", url="http://127.0.0.1:1/v.xml", section="videos")
    store.sync_sources([A, B, video], T0)
    save(store, video, [item(video, 8, kind="video", duration=60)])
    client = Client(store)
    assert [i["kind"] for i in client.get("/api/items", kind="video").json()["items"]] == ["video"]
    since, until = (T0 + timedelta(hours=2)).isoformat(), (T0 + timedelta(hours=4)).isoformat()
    rows = client.get("/api/items", since=since, until=until).json()["items"]
    assert [r["title"] for r in rows] == ["Budget", "Board meeting"]  # until is exclusive


def test_ingest_latest_search(
    db_url: str, capsys: pytest.CaptureFixture[str], store: Store
) -> None:
    rows = latest_json(db_url, capsys, "--search", "nurse leadership")
    assert [r["title"] for r in rows] == titles(store.latest(search="nurse leadership"))
    assert [
        r["title"] for r in latest_json(db_url, capsys, "--search", "lead", "--source", "a")
    ] == ["Nurses lead the night shift"]
    capsys.readouterr()
    assert main(["latest", "--db", db_url, "--search", "  ?! "]) == 2
    assert "--search needs at least one word" in capsys.readouterr().err


def test_migration_0006_indexes_stored_stories_and_downgrades(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    migrate_to(db_url, "0005")
    engine = create_engine(db_url)
    stamp = "2026-03-01 10:00:00"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO sources (key, name, url, created_at, updated_at) "
                "VALUES ('s', 'S', 'https://x.org/feed', :t, :t)"
            ),
            {"t": stamp},
        )
        c.execute(
            text(
                "INSERT INTO items (id, canonical_url, url, title, summary, content, published_at, "
                "date_source, section, source_key, content_hash, first_seen_at, updated_at) VALUES "
                "(1, 'https://x.org/a', 'https://x.org/a', 'Old story', "
                "'<p>About <b>wards</b></p>', '<p>Full text on rotas</p>', :t, 'published', "
                "'latest', 's', 'h', :t, :t)"
            ),
            {"t": stamp},
        )
        c.execute(text(
            "INSERT INTO item_sources (source_key, entry_key, item_id, url, content_hash, "
            "first_seen_at, updated_at) VALUES ('s', 'id:1', 1, 'https://x.org/a', 'h', :t, :t)"),
            {"t": stamp})  # fmt: skip
    engine.dispose()
    with Store.open(db_url) as store:  # migrates to the head
        assert titles(store.latest(search="wards")) == ["Old story"]
        assert titles(store.latest(search="rotas")) == ["Old story"]
        (row,) = store.latest(source="s")
        assert row["published_at"].isoformat() == "2026-03-01T10:00:00+00:00"
    migrate_to(db_url, "0005", down=True)
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            columns = list(c.execute(text("SELECT * FROM item_sources")).keys())
            assert "published_at" not in columns and "item_id" in columns
            assert c.execute(text("SELECT count(*) FROM latest_items")).scalar_one() == 1
    finally:
        engine.dispose()
    with Store.open(db_url) as store:  # and up again
        assert titles(store.latest(search="wards")) == ["Old story"]


def test_json_of_the_api_is_what_ingest_latest_prints(
    store: Store, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api = Client(store).get("/api/items", limit="100").json()["items"]
    assert api == json.loads(json.dumps(latest_json(db_url, capsys)))


@pytest.mark.postgres
def test_a_read_survives_the_server_dropping_its_connection(pg_url: str) -> None:
    """Reads skip the ping before each use (one round trip); a dropped connection is
    retried once on a fresh one instead of failing the request."""
    with Store.open(pg_url) as store:
        store.sync_sources([A], T0)
        save(store, A, [item(A, 1)])
        assert len(store.latest()) == 1  # a pooled read connection now exists
        name = store.engine.url.database
        with store.engine.connect() as c:  # what a server restart does to the pool
            dropped = c.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            ).scalar_one()
            c.commit()
        assert dropped >= 1
        assert len(store.latest()) == 1


def test_equal_scores_page_newest_first_each_once(store: Store) -> None:
    """Stories a search scores the same (here: the same words) go newest first, and a
    page that ends inside such a tie continues inside it."""
    twins = [item(A, n, title="Quarterly staffing report", summary="<p>Same.</p>",
                  published_at=T0 + timedelta(days=n)) for n in range(20, 27)]  # fmt: skip
    save(store, A, twins)
    client = Client(store)
    whole = client.get("/api/items", q="staffing report", limit="100").json()["items"]
    assert [i["published_at"] for i in whole] == sorted(
        (i["published_at"] for i in whole), reverse=True
    )
    assert len(whole) == 7
    for limit in ("1", "2", "3"):
        seen, cursor = [], None
        while True:
            params = {
                "q": "staffing report",
                "limit": limit,
                **({"cursor": cursor} if cursor else {}),
            }
            data = client.get("/api/items", **params).json()
            seen += [i["id"] for i in data["items"]]
            cursor = data["next_cursor"]
            if cursor is None:
                break
        assert seen == [i["id"] for i in whole], limit


def test_the_matches_are_ranked_a_block_at_a_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matches are ranked RANK_BLOCK at a time, the highest ids (the most recently
    stored) first, on both databases. Paging walks the same order, each story once,
    whatever the page size, and across the blocks."""
    words = ["staffing", "staffing rota", "staffing staffing report", "rota"]
    save(store, A, [item(A, 30 + n, title=f"Weekly {words[n % 4]} {n}", summary="<p>Staffing.</p>",
                         published_at=T0 + timedelta(days=n % 3)) for n in range(11)])  # fmt: skip
    everything = store.latest(search="staffing", limit=100)  # fewer than a block: exact
    assert len(everything) == 11 and all(r["block"] is None for r in everything if "block" in r)
    score = {r["id"]: r["score"] for r in everything}
    newest = {r["id"]: r["published_at"] for r in everything}

    def ranked(ids: list[int]) -> list[int]:
        return sorted(ids, key=lambda i: (score[i], -newest[i].timestamp(), -i))

    monkeypatch.setattr(search_index, "RANK_BLOCK", 4)
    ids = sorted(score, reverse=True)
    expected = ranked(ids[:4]) + ranked(ids[4:8]) + ranked(ids[8:])
    assert expected != ranked(ids)  # the blocks do change the order here
    rows = store.latest(search="staffing", limit=100)
    assert [r["id"] for r in rows] == expected
    client = Client(store)
    for limit in ("1", "3", "4", "5"):
        seen, cursor, blocks = [], None, set()
        while True:
            params = {"q": "staffing", "limit": limit, **({"cursor": cursor} if cursor else {})}
            data = client.get("/api/items", **params).json()
            seen += [i["id"] for i in data["items"]]
            cursor = data["next_cursor"]
            if cursor is None:
                break
            blocks.add(decode_cursor(cursor).block)
        assert seen == expected, limit
        # cursors past the first block name theirs
        assert blocks - {None} <= {ids[3] - 1, ids[7] - 1} and len(blocks) > 1, limit


def test_migration_0010_caps_the_search_index_pending_list(db_url: str) -> None:
    """PostgreSQL's GIN index keeps a pending list of at most 256 kB, which every search
    reads; nothing changes on SQLite. Down and up again."""
    if db_url.startswith("sqlite"):
        Path(db_url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    pg = db_url.startswith("postgresql")

    def options() -> list[str]:
        engine = create_engine(db_url)
        try:
            with engine.connect() as c:
                rows = c.execute(
                    text("SELECT reloptions FROM pg_class WHERE relname = :name"),
                    {"name": "ix_item_search_document"},
                ).scalar_one()
                return list(rows or [])
        finally:
            engine.dispose()

    migrate_to(db_url, "0007")
    if pg:
        assert options() == []
    with Store.open(db_url) as store:  # migrates to the head
        store.sync_sources([A], T0)
        save(store, A, [item(A, 1, title="Ward rounds")])
        assert titles(store.latest(search="ward")) == ["Ward rounds"]
    if pg:
        assert options() == ["gin_pending_list_limit=256"]
    migrate_to(db_url, "0007", down=True)
    if pg:
        assert options() == []
    with Store.open(db_url) as store:
        assert titles(store.latest(search="rounds")) == ["Ward rounds"]
    if pg:
        assert options() == ["gin_pending_list_limit=256"]


def _walk(store: Store, words: str, limit: int) -> list[int]:
    """Every page of a search through the store, the cursor as the API makes it."""
    seen: list[int] = []
    before, score, block = None, None, None
    while True:
        rows = store.latest(search=words, limit=limit, before=before, before_score=score,
                            block_top=block)  # fmt: skip
        seen += [r["id"] for r in rows]
        if len(rows) < limit:
            return seen
        last = rows[-1]
        before, score, block = (last["published_at"], last["id"]), last["score"], last["block"]


def test_postgresql_reads_the_newest_slices_and_pages_as_from_every_slice(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's search table is in slices of PG_SLICE ids (0011), and a search looks
    for its block in the newest slices that should hold it.  Over stories in four
    slices (one batch spanning two), every page of a search is what reading every slice
    gives: when the slices picked hold the block, and when they hold too few (the same
    block is then read again from every slice).  Writes make the slices they need."""
    from bulkstories import WORDS, fill

    slice_ = search_index.PG_SLICE
    with Store.open(pg_url) as store:
        for first in (1, 2 * slice_ + 1, 4 * slice_ - 700):
            fill(store, 1_400, first_id=first, seed=first)

        def slices() -> list[str]:
            with store.engine.connect() as conn:
                return [r[0] for r in conn.exec_driver_sql(
                    "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c "
                    "ON c.oid = i.inhrelid WHERE i.inhparent = 'item_search'::regclass ORDER BY 1"
                )]  # fmt: skip

        assert slices() == [f"item_search_{n:05d}" for n in range(5)]
        words = f"{WORDS[0]} {WORDS[1]}"  # the two commonest: about 1,900 stories have both
        reads: list[int] = []
        real = search_index.Estimate.slice_low

        def spy(self: search_index.Estimate, block_top: int) -> int:
            reads.append(real(self, block_top))
            return reads[-1]

        monkeypatch.setattr(search_index, "WALK_COST", 100.0)  # the GIN index's way here
        monkeypatch.setattr(search_index.Estimate, "slice_low", spy)
        picked = _walk(store, words, 100)
        assert reads and max(reads) > 0  # slices were skipped
        monkeypatch.setattr(search_index.Estimate, "slice_low", lambda self, top: 0)
        everything = _walk(store, words, 100)
        assert picked == everything
        assert len(everything) == len(set(everything)) > search_index.RANK_BLOCK
        top = 4 * slice_ + 699  # the slices picked hold too few: the top one alone
        monkeypatch.setattr(search_index.Estimate, "slice_low", lambda self, t: top // slice_)
        assert _walk(store, words, 100) == everything
        assert _walk(store, words, 7)[:300] == everything[:300]

        # a poll's new stories get a slice of their own when the ids reach one
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('items', 'id'), {7 * slice_ - 2})"
            )
        store.sync_sources([A], T0)
        save(store, A, [item(A, 900 + n, title=f"Slice news {n}") for n in range(5)])
        found = store.latest(search="slice news", limit=10)
        assert sorted(r["id"] for r in found) == list(range(7 * slice_ - 1, 7 * slice_ + 4))
        assert slices()[-2:] == ["item_search_00007", "item_search_00008"]  # and the next
        # past five digits of slices (ten billion ids) the names grow a digit
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('items', 'id'), {100_000 * slice_ - 2})"
            )
        save(store, A, [item(A, 950 + n, title=f"Far news {n}") for n in range(3)])
        assert len(store.latest(search="far news", limit=10)) == 3
        assert set(slices()) >= {"item_search_99999", "item_search_100000", "item_search_100001"}


def test_migration_0011_puts_postgresql_search_in_slices_and_back(pg_url: str) -> None:
    """0011 moves PostgreSQL's search documents into a table partitioned by slice (every
    slice its stored ids need, and the next one); its downgrade moves them back into one
    table.  Stories found the same before, between and after."""
    slice_ = search_index.PG_SLICE

    def jump(store: Store, to: int) -> None:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('items', 'id'), {to})")

    with Store.open(pg_url) as store:
        store.sync_sources([A], T0)
        save(store, A, [item(A, 1, title="Ward rounds at dawn")])
        jump(store, 3 * slice_ + 5)
        save(store, A, [item(A, 2, title="Ward rounds at dusk")])
        before = store.latest(search="ward rounds")
    assert sorted(r["id"] for r in before) == [1, 3 * slice_ + 6]

    def tables() -> list[str]:
        engine = create_engine(pg_url)
        try:
            with engine.connect() as c:
                return [r[0] for r in c.exec_driver_sql(
                    "SELECT tablename FROM pg_tables "
                    "WHERE tablename LIKE 'item_search%%' ORDER BY 1"
                )]  # fmt: skip
        finally:
            engine.dispose()

    migrate_to(pg_url, "0010", down=True)
    assert tables() == ["item_search"]
    migrate_to(pg_url, "head")
    # the partitioned table, and its slices up to id 300,006's and one more
    assert tables() == ["item_search"] + [f"item_search_{n:05d}" for n in range(5)]
    with Store.open(pg_url) as store:
        assert store.latest(search="ward rounds") == before


def test_a_document_is_the_text_of_its_summary_then_of_a_different_content() -> None:
    html = "<p>Tea &amp; <b>biscuits</b>\n  for&nbsp;all</p>"
    assert search_index.document("T", html, None) == ("T", "Tea & biscuits for all")
    assert search_index.document("T", html, html) == ("T", "Tea & biscuits for all")
    same_text = "<div>Tea &amp; biscuits for all</div>"  # other markup, the same words
    assert search_index.document("T", html, same_text) == ("T", "Tea & biscuits for all")
    assert search_index.document("T", "<p>Tea</p>", "<p>Tea for all</p>") == (
        "T", "Tea Tea for all",
    )  # fmt: skip
    assert search_index.document("T", None, "<p>Only &lt;this&gt;</p>") == ("T", "Only <this>")
