#!/usr/bin/env python3
"""CPU per unchanged poll in the fetcher: the direct lane, httpx's layers, and aiohttp alone.

    python benchmarks/bench_fetch.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--polls 4000] [--in-flight 50] [--feedlab ../shared/feedlab]

Serves a feedlab corpus over loopback, then, in this one process on uvloop,
primes every source's ETag with a first poll and times about `--polls`
conditional polls (all 304s, `--in-flight` at a time) each of three ways, in
rounds of every source taken in turn (the median round of each way is
printed, so that a drift of the machine's speed touches the three alike):

- `lane`: `Fetcher.fetch` on the production client (`make_client`), whose
  plain GETs take the direct lane (stages/lane.py);
- `httpx`: the same with `make_client(..., lane=False)`: every request
  through httpx's client and the httpx-aiohttp transport, as before the lane;
- `aiohttp`: a bare `session.get` with the same headers and nothing else
  (no guard, no deadline, no limits, no `Fetched`): the floor.

Prints the process CPU (user + system) per poll of each, the median round.  It measures; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lab import corpus_arguments, free_port, generate, serving

if TYPE_CHECKING:
    from ingest.model import Source

ROOT = Path(__file__).resolve().parents[1]


async def _measure(sources_file: Path, polls: int, in_flight: int) -> dict[str, float]:
    """CPU seconds per poll of each way: their rounds interleaved (a round of every source
    each, in turn), so that a drift of the machine's speed touches all three alike; the
    median round of each."""
    from ingest.config import load_config
    from ingest.stages.fetch import Fetcher
    from ingest.stages.transport import ACCEPT, make_client

    config = load_config(str(sources_file))
    settings = config.settings
    sources = list(config.enabled())
    sem = asyncio.Semaphore(in_flight)
    async with (
        make_client(settings) as with_lane,
        make_client(settings, lane=False) as without,
    ):
        lane_fetcher, httpx_fetcher = Fetcher(with_lane, settings), Fetcher(without, settings)
        states = {s.key: (await lane_fetcher.fetch(s)).state for s in sources}
        assert with_lane.lane is not None
        session = with_lane.lane.session.get()

        async def lane(source: Source) -> None:
            assert (await lane_fetcher.fetch(source, states[source.key])).not_modified

        async def through_httpx(source: Source) -> None:
            assert (await httpx_fetcher.fetch(source, states[source.key])).not_modified

        async def bare(source: Source) -> None:
            headers = {
                "User-Agent": settings.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
                "If-None-Match": states[source.key].etag or "",
            }
            async with session.get(
                source.url, headers=headers, allow_redirects=False, auto_decompress=False
            ) as resp:
                assert resp.status == 304

        ways: dict[str, Callable[[Source], Awaitable[None]]] = {
            "lane": lane, "httpx": through_httpx, "aiohttp": bare,
        }  # fmt: skip

        async def bounded(one: Callable[[Source], Awaitable[None]], source: Source) -> None:
            async with sem:
                await one(source)

        rounds: dict[str, list[float]] = {name: [] for name in ways}
        for n in range(1 + max(1, polls // len(sources))):
            for name, one in ways.items():
                started = time.process_time()
                await asyncio.gather(*(bounded(one, s) for s in sources))
                if n:  # the first round of each only opens connections
                    rounds[name].append((time.process_time() - started) / len(sources))
    return {name: statistics.median(times) for name, times in rounds.items()}


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
