#!/usr/bin/env python3
"""Latency of what downstream sites ask for, on a database of 100,000 stories.

    python benchmarks/bench_api.py [--stories 100000] [--requests 1000] [--db URL]

Fills a fresh database (default: a temporary SQLite file) through
`Store.save_poll`, the pipeline's own write path, 2,000 stories per poll,
spread over four sources and sections (60 % `latest`) and a year of dates
rounded to the minute (so some share a `published_at`); on PostgreSQL it
then runs ANALYZE, as autovacuum soon would.  Then measures, each
after 50 warm-up calls, the p50 / p95 / max latency of:

- `GET /api/items?section=latest&limit=20` (and a few neighbours: a page deep
  in the list via its cursor, a `source=` filter, `/`, the Atom feed)
  - in-process: httpx.AsyncClient over httpx.ASGITransport, no sockets, the
    same Starlette app and thread-pool hop as under uvicorn;
  - over loopback: `ingest serve` as a subprocess (uvicorn, one worker) and
    one keep-alive httpx.Client, requests one after another;
- the view query `SELECT ... FROM latest_items WHERE section = 'latest' LIMIT 20`
  through one open SQLAlchemy connection (and, on SQLite, the sqlite3 module).

It measures; it asserts nothing.  docs/downstream.md has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from ingest.model import Item, NextPoll, PollRecord, Source, SourceReport
from ingest.store import Store
from ingest.web.app import create_app
from ingest.web.params import encode_cursor

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    Source(key="bmj-leader", name="BMJ Leader", url="https://a.example/rss", section="latest"),
    Source(key="nhs-blog", name="NHS England", url="https://b.example/rss", section="blogs"),
    Source(key="ted", name="TED", url="https://c.example/rss", section="videos"),
    Source(key="academy", name="Leadership Academy", url="https://d.example/rss",
           section="highlighted"),
]  # fmt: skip
SHARE = [0.6, 0.2, 0.1, 0.1]
VIEW_QUERY = (
    "SELECT id, url, title, summary, published_at, source_name, image_url, sources "
    "FROM latest_items WHERE section = 'latest' LIMIT 20"
)
WORDS = [
    "leadership", "care", "quality", "team", "nurse", "board", "culture", "safety", "patient",
    "health", "system", "clinical", "workforce", "inclusion", "learning", "trust", "evidence",
]  # fmt: skip


def fill(store: Store, total: int, batch: int = 2000) -> float:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store.sync_sources(SOURCES, now)
    started = time.perf_counter()
    n = 0
    for source, share in zip(SOURCES, SHARE, strict=True):
        count = round(total * share)
        done = 0
        while done < count:
            items = []
            for _ in range(min(batch, count - done)):
                n += 1
                done += 1
                title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize()
                url = f"https://{source.key}.example.org/content/{n}"
                items.append(
                    Item(
                        source_key=source.key, entry_key=f"id:{n}", canonical_url=url, url=url,
                        title=title, summary=f"<p>{title}. " + "Lorem ipsum dolor sit amet. " * 8
                        + "</p>", published_at=now - timedelta(minutes=rng.randint(0, 525_600)),
                        date_source="published", section=source.section,
                        image_url=f"https://img.example.org/{n}.jpg" if n % 3 else None,
                        content_hash=f"h{n}",
                    )
                )  # fmt: skip
            report = SourceReport(source_key=source.key, ok=True, status=200)
            record = PollRecord(source, report, None, now, NextPoll(now + timedelta(hours=1)))
            store.save_poll(record, items)
    return time.perf_counter() - started


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p50 = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{name:<58} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {ms[-1]:7.2f} ms"


async def time_async(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(50):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


def time_sync(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(50):
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
    return {
        "/api/items?section=latest&limit=20": "/api/items?section=latest&limit=20",
        "/api/items?section=latest&limit=20&cursor=<page 1,000>": (
            f"/api/items?section=latest&limit=20&cursor={deep}"
        ),
        "/api/items?limit=20 (every section)": "/api/items?limit=20",
        "/api/items?source=ted&limit=20": "/api/items?source=ted&limit=20",
        "/ (the collection page, 4 sections)": "/",
        "/feeds/latest.atom (50 entries)": "/feeds/latest.atom",
    }


def bench_in_process(store: Store, targets: dict[str, str], n: int) -> None:
    app = create_app(store)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path in targets.items():

                async def call(path: str = path) -> None:
                    r = await client.get(path)
                    assert r.status_code == 200, r.text

                print(summary(name, await time_async(call, n)))

    asyncio.run(run())


def bench_loopback(db_url: str, targets: dict[str, str], n: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from websample import serving

    with (
        tempfile.TemporaryDirectory() as tmp,
        serving(db_url, Path(tmp) / "serve.log") as url,
        httpx.Client(base_url=url.rstrip("/"), timeout=10) as client,
    ):
        for name, path in targets.items():

            def call(path: str = path) -> None:
                r = client.get(path)
                assert r.status_code == 200, r.text

            print(summary(name, time_sync(call, n)))
        first = client.get("/api/items?section=latest&limit=20")
        etag = {"If-None-Match": first.headers["etag"]}

        def conditional() -> None:
            r = client.get("/api/items?section=latest&limit=20", headers=etag)
            assert r.status_code == 304

        print(summary("same, conditional (If-None-Match -> 304)", time_sync(conditional, n)))


def bench_view(store: Store, db_url: str, n: int) -> None:
    with store.engine.connect() as conn:
        print(summary("latest_items view, SQLAlchemy connection", time_sync(
            lambda: conn.execute(text(VIEW_QUERY)).all(), n)))  # fmt: skip
        if store.engine.dialect.name == "sqlite":
            print("    EXPLAIN QUERY PLAN:")
            for row in conn.execute(text("EXPLAIN QUERY PLAN " + VIEW_QUERY)):
                print(f"    {row[-1]}")
    if db_url.startswith("sqlite:///"):
        raw = sqlite3.connect(f"file:{db_url.removeprefix('sqlite:///')}?mode=ro", uri=True)
        print(summary("latest_items view, sqlite3 module (read-only)", time_sync(
            lambda: raw.execute(VIEW_QUERY).fetchall(), n)))  # fmt: skip
        raw.close()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000, help="timed calls per measurement")
    ap.add_argument("--db", help="an EMPTY database URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        with Store.open(db_url) as store:
            if store.story_count():
                print(f"{db_url} is not empty", file=sys.stderr)
                return 2
            seconds = fill(store, args.stories)
            if store.engine.dialect.name == "postgresql":
                # what autovacuum does soon after a bulk load; measured before it, the
                # planner still believes the tables empty (`source=` took 28 ms, not 1)
                with store.engine.connect() as conn:
                    conn.execute(text("ANALYZE"))
                    conn.commit()
            print(f"{store.story_count():,} stories stored in {seconds:.1f} s "
                  f"({store.engine.dialect.name}, {args.requests} timed calls each)\n")  # fmt: skip
            targets = paths(store)
            print("in-process ASGI (httpx.ASGITransport -> Starlette -> thread pool -> Store):")
            bench_in_process(store, targets, args.requests)
            print("\nover loopback (`ingest serve`, uvicorn, one keep-alive connection):")
            bench_loopback(db_url, targets, args.requests)
            print("\nthe view, as a downstream site reads it:")
            bench_view(store, db_url, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
