#!/usr/bin/env python3
"""CPU per unchanged poll in the fetcher: the direct lane, httpx's layers, and aiohttp alone.

    python benchmarks/bench_fetch.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--polls 4000] [--in-flight 50] [--feedlab ../shared/feedlab]

Serves a feedlab corpus over loopback, then, in this one process on uvloop,
primes every source's ETag with a first poll and times `--polls` conditional
polls (all 304s, `--in-flight` at a time) three ways, each on a fresh client:

- `lane`: `Fetcher.fetch` on the production client (`make_client`), whose
  plain GETs take the direct lane (stages/lane.py);
- `httpx`: the same with `make_client(..., lane=False)`: every request
  through httpx's client and the httpx-aiohttp transport, as before the lane;
- `aiohttp`: a bare `session.get` with the same headers and nothing else
  (no guard, no deadline, no limits, no `Fetched`): the floor.

Prints the process CPU (user + system) per poll of each.  It measures; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lab import corpus_arguments, free_port, generate, serving

if TYPE_CHECKING:
    from ingest.model import Settings, Source

ROOT = Path(__file__).resolve().parents[1]


async def _timed(
    polls: int, in_flight: int, one: Callable[[Source], Awaitable[None]], sources: list[Source]
) -> float:
    """CPU seconds per poll of `polls` calls of `one(source)`, `in_flight` at a time."""
    sem = asyncio.Semaphore(in_flight)

    async def bounded(source: Source) -> None:
        async with sem:
            await one(source)

    await asyncio.gather(*(bounded(s) for s in sources))  # warm: connections open
    rounds = max(1, polls // len(sources))
    started = time.process_time()
    for _ in range(rounds):
        await asyncio.gather(*(bounded(s) for s in sources))
    return (time.process_time() - started) / (rounds * len(sources))


async def _one_way(
    way: str, settings: Settings, sources: list[Source], polls: int, in_flight: int
) -> float:
    from ingest.stages.fetch import Fetcher
    from ingest.stages.transport import ACCEPT, make_client

    async with make_client(settings, lane=way != "httpx") as client:
        fetcher = Fetcher(client, settings)
        states = {s.key: (await fetcher.fetch(s)).state for s in sources}

        async def poll(source: Source) -> None:
            fetched = await fetcher.fetch(source, states[source.key])
            assert fetched.not_modified

        async def bare(source: Source) -> None:
            assert client.lane is not None
            headers = {
                "User-Agent": settings.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
                "If-None-Match": states[source.key].etag or "",
            }
            async with client.lane.session.get().get(
                source.url, headers=headers, allow_redirects=False, auto_decompress=False
            ) as resp:
                assert resp.status == 304

        return await _timed(polls, in_flight, bare if way == "aiohttp" else poll, sources)


async def _measure(sources_file: Path, polls: int, in_flight: int) -> dict[str, float]:
    from ingest.config import load_config

    config = load_config(str(sources_file))
    sources = list(config.enabled())
    return {
        way: await _one_way(way, config.settings, sources, polls, in_flight)
        for way in ("lane", "httpx", "aiohttp")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(ap, ROOT)
    ap.add_argument("--polls", type=int, default=4000)
    ap.add_argument("--in-flight", type=int, default=50)
    a = ap.parse_args()

    import uvloop

    os.environ["INGEST_ALLOW_NETWORKS"] = "127.0.0.0/8"
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-fetch-"))
    port = free_port()
    try:
        corpus = work / "corpus"
        generate(a.feedlab, corpus, feeds=a.feeds, items=a.items, port=port, hosts=a.hosts)
        with serving(a.feedlab, corpus, port, a.hosts, a.delay_ms):
            results = uvloop.run(_measure(corpus / "sources.yaml", a.polls, a.in_flight))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"corpus: {a.feeds} feeds, --delay-ms {a.delay_ms:g}; {a.polls} unchanged polls each")
    for name, seconds in results.items():
        print(f"{name:8} {seconds * 1e6:6.0f} us CPU per unchanged poll")
    print(f"the lane costs {results['lane'] / results['httpx']:.2f}x httpx's layers' CPU")


if __name__ == "__main__":
    main()
