#!/usr/bin/env python3
"""Latency of what downstream sites ask for, on SQLite and PostgreSQL, at 100,000+ stories.

    python benchmarks/bench_api.py [--stories 100000] [--requests 1000]
                                   [--postgres URL | --sqlite-only] [--db URL ... [--reuse]]
                                   [--only TEXT ...]

For each database (a temporary SQLite file, and a fresh database created on the
PostgreSQL server at --postgres, default $INGEST_TEST_POSTGRES_URL, dropped
afterwards; or the EMPTY databases given with --db, which are kept: run again
with --reuse to measure them as they are), fills it with
tests/bulkstories.py (straight into the tables, one transaction, as the store's
writes would leave them: five sources, 60 % of the stories in `latest`, one in
ten a video, a year of dates, words with natural frequencies; then ANALYZE),
and measures, each after 50 warm-up calls, the p50 / p95 / max latency of:

- `/api/items` with each filter: section, a page 1,000 deep (cursor), none,
  `source=` (a big and a small source), `kind=`, a date range, a two-word
  search `q=` (first page and the next one), and `/` and the Atom feed:
  - in-process: each request handed straight to the ASGI app (a scope, an empty
    body, the response's messages collected: what uvicorn hands it, on uvicorn's event
    loop: uvloop), no sockets,
    the same Starlette app and thread-pool hop as under uvicorn (plus one row
    through httpx.AsyncClient over httpx.ASGITransport, whose own cost is about
    0.6 ms a request; earlier runs measured every row through it);
  - over loopback: `ingest serve` as a subprocess (uvicorn, one worker) and
    one keep-alive `http.client` connection, requests one after another
    (plus one row through httpx.Client, whose own cost is most of a request);
- the view query `SELECT ... FROM latest_items WHERE section = 'latest' LIMIT 20`
  and the documented search queries through one open SQLAlchemy connection.

It ends with one table of every row for every database (docs/downstream.md
has the numbers); `--only q= --only search` times just the search rows, to
repeat them on a noisy machine.  It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bulkstories import NOW, WORDS, fill  # noqa: E402
from ingest.runtime import eventloop  # noqa: E402
from ingest.store import Store  # noqa: E402
from ingest.web.app import create_app  # noqa: E402
from ingest.web.params import encode_cursor  # noqa: E402

SEARCH = f"{WORDS[50]} {WORDS[100]}"  # two ordinary words: about 0.7 % of the stories
COMMON = f"{WORDS[4]} {WORDS[8]}"  # two of the most common words: about a third
VIEW_QUERY = (
    "SELECT id, url, title, summary, published_at, source_name, image_url, sources "
    "FROM latest_items WHERE section = 'latest' LIMIT 20"
)
SEARCH_SQL = {  # what docs/database.md tells a site to send
    "sqlite": (
        "WITH block AS MATERIALIZED (SELECT rowid AS id, bm25(items_fts, 4.0, 1.0) AS score "
        "FROM items_fts WHERE items_fts MATCH :q ORDER BY rowid DESC LIMIT 1000) "
        "SELECT i.id, i.title, i.url, i.published_at FROM block b JOIN items i ON i.id = b.id "
        "ORDER BY b.score, i.published_at DESC, i.id DESC LIMIT 20"
    ),
    "postgresql": (
        "SELECT i.id, i.title, i.url, i.published_at FROM (SELECT s.item_id, s.published_at, "
        "ts_rank(s.document, q) AS rank FROM item_search s, plainto_tsquery('english', :q) q "
        "WHERE s.document @@ q ORDER BY rank DESC, s.published_at DESC, s.item_id DESC "
        "LIMIT 20) top JOIN items i ON i.id = top.item_id "
        "ORDER BY top.rank DESC, top.published_at DESC, top.item_id DESC"
    ),
}
Results = dict[str, dict[str, tuple[float, float]]]  # row -> column -> (p50, p95)
FEWER = "(a third match)"  # rows timed with a twentieth of the calls: each ranks 300,000+


def calls(name: str, n: int) -> int:
    return max(20, n // 20) if FEWER in name else n


def stats(samples: list[float]) -> tuple[float, float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], ms[-1]


def line(name: str, samples: list[float]) -> tuple[float, float]:
    p50, p95, top = stats(samples)
    print(f"  {name:<62} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {top:7.2f} ms")
    return p50, p95


async def time_async(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(50, n)):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


def time_sync(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):
        call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def paths(store: Store) -> dict[str, str]:
    last = store.latest(section="latest", limit=20 * 1000)[-1]  # the end of page 1,000
    deep = encode_cursor(last["published_at"], last["id"])
    hit = store.latest(search=SEARCH, limit=20)[-1]
    after = encode_cursor(hit["published_at"], hit["id"], hit["score"], hit.get("block"))
    since, until = (NOW - timedelta(days=60)).date(), (NOW - timedelta(days=30)).date()

    def api(**params: object) -> str:
        return "/api/items?" + urlencode(params)

    return {
        "/api/items?section=latest&limit=20": api(section="latest", limit=20),
        "  same, page 1,000 (cursor)": api(section="latest", limit=20, cursor=deep),
        "/api/items?limit=20 (every section)": api(limit=20),
        "/api/items?source=ted&limit=20 (10 % of stories)": api(source="ted", limit=20),
        "/api/items?source=rare&limit=20 (0.1 %)": api(source="rare", limit=20),
        "/api/items?kind=video&limit=20": api(kind="video", limit=20),
        "/api/items?since=..&until=..&section=blogs (a month)": api(
            section="blogs", since=since, until=until, limit=20
        ),
        f"/api/items?q={SEARCH.replace(' ', '+')} (two words)": api(q=SEARCH, limit=20),
        "  same, next page (cursor)": api(q=SEARCH, limit=20, cursor=after),
        f"/api/items?q={COMMON.replace(' ', '+')} {FEWER}": api(q=COMMON, limit=20),
        "/ (the collection page, 4 sections)": "/",
        "/feeds/latest.atom (50 entries)": "/feeds/latest.atom",
    }


def asgi_get(app: Any) -> Callable[[str], Awaitable[int]]:
    """A GET straight into the ASGI app: the request's scope, one empty body, the
    response's messages collected; returns the status.  No client library around it
    (httpx's AsyncClient costs about 0.6 ms a request: its own row)."""

    async def get(path: str) -> int:
        route, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": route, "raw_path": route.encode(), "root_path": "",
            "query_string": query.encode(), "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 40000), "server": ("bench", 80),
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return int(sent[0]["status"])

    return get


def bench_in_process(
    store: Store, targets: dict[str, str], n: int, out: Results, only: list[str] | None
) -> None:
    app = create_app(store)
    get = asgi_get(app)

    async def run() -> None:
        for name, path in targets.items():

            async def call(path: str = path) -> None:
                status = await get(path)
                assert status == 200, (path, status)

            samples = await time_async(call, calls(name, n))
            out.setdefault(name, {})["in-process"] = line(name, samples)
        name = "/api/items?section=latest&limit=20 through httpx.AsyncClient"
        if not chosen(name, only):
            return
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def through_httpx() -> None:
                r = await client.get("/api/items?section=latest&limit=20")
                assert r.status_code == 200, r.text

            out.setdefault(name, {})["in-process"] = line(name, await time_async(through_httpx, n))

    eventloop.run(run())  # the loop `ingest serve` runs on: uvicorn takes uvloop too


def chosen(name: str, only: list[str] | None) -> bool:
    """Whether row `name` is timed: every row, or those naming one of `only` (--only)."""
    return not only or any(part in name for part in only)


def bench_loopback(
    db_url: str, targets: dict[str, str], n: int, out: Results, only: list[str] | None
) -> None:
    from websample import serving

    with tempfile.TemporaryDirectory() as tmp, serving(db_url, Path(tmp) / "serve.log") as url:
        where = urlsplit(url)
        conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=10)

        def get(path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            r.read()
            return r

        for name, path in targets.items():

            def call(path: str = path) -> None:
                assert get(path).status == 200

            out.setdefault(name, {})["loopback"] = line(name, time_sync(call, calls(name, n)))
        etag = get("/api/items?section=latest&limit=20").getheader("etag") or ""

        def conditional() -> None:
            assert get("/api/items?section=latest&limit=20", {"If-None-Match": etag}).status == 304

        name = "conditional GET answered 304"
        if chosen(name, only):
            out.setdefault(name, {})["loopback"] = line(name, time_sync(conditional, n))
        conn.close()
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            name = "/api/items?section=latest&limit=20 through httpx.Client"
            if chosen(name, only):
                samples = time_sync(lambda: client.get("/api/items?section=latest&limit=20"), n)
                out.setdefault(name, {})["loopback"] = line(name, samples)


def bench_sql(store: Store, n: int, out: Results, only: list[str] | None) -> None:
    dialect = store.engine.dialect.name
    with store.engine.connect() as conn:
        for name, sql, params in [
            ("latest_items view, SQLAlchemy connection", VIEW_QUERY, {}),
            (f"documented search SQL, '{SEARCH}'", SEARCH_SQL[dialect], {"q": SEARCH}),
        ]:
            if not chosen(name, only):
                continue
            if dialect == "sqlite" and "MATCH" in sql:
                params = {"q": " ".join(f'"{w}"' for w in SEARCH.split())}
            samples = time_sync(
                lambda sql=sql, params=params: conn.execute(text(sql), params).all(), n
            )
            out.setdefault(name, {})["SQL"] = line(name, samples)


@contextmanager
def databases(args: argparse.Namespace) -> Iterator[list[str]]:
    """The database URLs to measure: --db as given, else temporary ones."""
    if args.db:
        yield args.db
        return
    with tempfile.TemporaryDirectory() as tmp:
        urls = [f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"]
        server = None if args.sqlite_only else (args.postgres or None)
        if server is None:
            yield urls
            return
        import psycopg
        from sqlalchemy.engine import make_url

        from ingest.service.distributed.queue import libpq_url

        name = f"ingest_bench_{secrets.token_hex(4)}"
        admin = libpq_url(server)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        try:
            parsed = make_url(server).set(drivername="postgresql+psycopg", database=name)
            yield [*urls, parsed.render_as_string(hide_password=False)]
        finally:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(db_url: str, args: argparse.Namespace) -> tuple[str, Results]:
    out: Results = {}
    with Store.open(db_url) as store:
        dialect = store.engine.dialect.name
        held = store.story_count()
        if held and not (args.reuse and held == args.stories):
            why = f"holds {held:,} stories, not --stories {args.stories:,}"
            raise SystemExit(f"{store.url} {why if args.reuse else 'is not empty'}")
        if held:
            print(f"\n== {dialect}: the {held:,} stories an earlier run wrote (--reuse); "
                  f"{args.requests} timed calls each")  # fmt: skip
        else:
            started = time.perf_counter()
            fill(store, args.stories)
            seconds = time.perf_counter() - started
            print(f"\n== {dialect}: {store.story_count():,} stories written in {seconds:.0f} s "
                  f"(then ANALYZE); {args.requests} timed calls each")  # fmt: skip
        targets = {k: v for k, v in paths(store).items() if chosen(k, args.only)}
        print("in-process ASGI (the app called directly -> Starlette -> thread pool -> Store):")
        bench_in_process(store, targets, args.requests, out, args.only)
        print("over loopback (`ingest serve`, uvicorn, one keep-alive http.client connection):")
        bench_loopback(db_url, targets, args.requests, out, args.only)
        print("SQL, as a downstream site sends it:")
        bench_sql(store, args.requests, out, args.only)
    return dialect, out


def table(results: dict[str, Results]) -> None:
    """Every row for every database: p50 / p95 in ms."""
    columns = [(db, mode) for db in results for mode in ("in-process", "loopback", "SQL")
               if any(mode in cells for cells in results[db].values())]  # fmt: skip
    rows: list[str] = []
    for res in results.values():
        rows += [r for r in res if r not in rows]
    print("\n| request | " + " | ".join(f"{db} {mode}" for db, mode in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for row in rows:
        cells = []
        for db, mode in columns:
            got = results[db].get(row, {}).get(mode)
            cells.append(f"{got[0]:.2f} / {got[1]:.2f}" if got else "")
        print(f"| {row.strip()} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000, help="timed calls per measurement")
    ap.add_argument("--postgres", default=os.environ.get("INGEST_TEST_POSTGRES_URL"),
                    help="PostgreSQL server to create a fresh database on "
                    "(default: $INGEST_TEST_POSTGRES_URL)")  # fmt: skip
    ap.add_argument("--sqlite-only", action="store_true")
    ap.add_argument("--db", action="append", help="an EMPTY database URL instead (repeatable)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --db: measure a database an earlier run filled with the "
                    "same --stories as it is (filling a million takes minutes)")  # fmt: skip
    ap.add_argument("--only", action="append", metavar="TEXT",
                    help="time only the rows whose name contains TEXT (repeatable; "
                    "'q=' and 'search' for the search rows)")  # fmt: skip
    args = ap.parse_args()
    results: dict[str, Results] = {}
    with databases(args) as urls:
        for url in urls:
            dialect, out = measure(url, args)
            results[dialect] = out
    table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
