#!/usr/bin/env python3
"""Soak: one long-lived pipeline polls 2,000 feeds, 5% of them faulty, round after round.

    python benchmarks/soak.py [--feeds 2000] [--faulty 0.05] [--rounds 30] [--items 10]
        [--feedlab ../shared/feedlab] [--db URL] [--max-growth-mb 25]

Generates a feedlab corpus (the good feeds) plus faulty sources spread over
every feedlab fault path (429, 500, 503, hang, trickle, huge, garbage, reset,
redirect chains, a loop, a 301 move), serves it on 127.0.0.1-16, and runs the
rounds in this one process through the Pipeline API, as the scheduler does: one
HTTP client, one parse pool, one database thread for the whole soak.  Before
each round the corpus moves on one round (feedlab's `--round`: one feed in ten
gets three new stories), so every round parses and stores something.

Prints, per round: seconds, sources ok/failed, new stories, and the resident
memory of this process and of its parse workers (psutil).  Memory must not grow
past the first rounds: the check compares the last rounds with the settled
rounds after the first few, and the exit code is 1 when the whole tree grew by
more than --max-growth-mb.  Not part of the test suite (it runs for minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from lab import free_port, generate, serving

ROOT = Path(__file__).resolve().parents[1]
FAULTS = (
    "/fault/status/429/x.xml",
    "/fault/status/500/x.xml",
    "/fault/status/503/x.xml",
    "/fault/hang/x.xml",
    "/fault/slow/30/feeds/f00000.xml",
    "/fault/huge/20/x.xml",
    "/fault/garbage/x.xml",
    "/fault/reset/x.xml",
    "/fault/redirect/3/feeds/f00001.xml",
    "/fault/redirect/9/feeds/f00001.xml",
    "/fault/loop/x.xml",
    "/fault/moved/feeds/f00002.xml",
)


def rss_mb() -> tuple[float, float]:
    me = psutil.Process()
    kids = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            kids += child.memory_info().rss
    return me.memory_info().rss / 1e6, kids / 1e6


async def soak(a: argparse.Namespace, sources_file: Path, corpus: Path, port: int) -> int:
    from ingest.config import load_config
    from ingest.runtime.parsing import jobs as workers
    from ingest.runtime.pipeline import Pipeline
    from ingest.stages.transport import make_client
    from ingest.store import Store

    config = load_config(sources_file)
    sources = config.enabled()
    settings = config.settings
    good = a.feeds - round(a.feeds * a.faulty)
    rows: list[tuple[float, float]] = []
    with Store.open(a.db) as store:
        pool = workers.start_forkserver_pool()
        try:
            async with (
                make_client(settings) as client,
                Pipeline(store, client, settings, parse_pool=pool) as pipeline,
            ):
                print("round  seconds   ok  failed    new  rss_main_mb  rss_workers_mb  total_mb")
                for rnd in range(a.rounds):
                    if rnd:
                        await asyncio.sleep(1.1)  # feedlab's Last-Modified: 1 s resolution
                        generate(
                            a.feedlab,
                            corpus,
                            feeds=good,
                            items=a.items,
                            port=port,
                            hosts=16,
                            rnd=rnd,
                        )
                    started = time.perf_counter()
                    reports = await pipeline.run(sources)
                    seconds = time.perf_counter() - started
                    failed = sum(1 for r in reports if not r.ok)
                    new = sum(r.new for r in reports)
                    del reports
                    gc.collect()
                    main_mb, kids_mb = rss_mb()
                    rows.append((main_mb, kids_mb))
                    print(
                        f"{rnd:>5} {seconds:>8.1f} {len(sources) - failed:>5} {failed:>6} "
                        f"{new:>6} {main_mb:>12.0f} {kids_mb:>15.0f} {main_mb + kids_mb:>9.0f}",
                        flush=True,
                    )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    settle = min(5, max(1, len(rows) // 3))
    settled = [m + k for m, k in rows[settle : settle + 3]] or [sum(rows[-1])]
    last = [m + k for m, k in rows[-3:]]
    growth = statistics.median(last) - statistics.median(settled)
    main_growth = statistics.median(m for m, _ in rows[-3:]) - statistics.median(
        m for m, _ in rows[settle : settle + 3] or rows[-1:]
    )
    print(
        f"memory: settled (rounds {settle}-{settle + 2}) {statistics.median(settled):.0f} MB, "
        f"last rounds {statistics.median(last):.0f} MB, growth {growth:+.1f} MB "
        f"(main process {main_growth:+.1f} MB)"
    )
    return 0 if growth <= a.max_growth_mb else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=2000, help="sources in all, faulty included")
    ap.add_argument("--faulty", type=float, default=0.05, help="fraction of faulty sources")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--items", type=int, default=10)
    ap.add_argument("--feedlab", type=Path, default=ROOT.parent / "shared" / "feedlab")
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--max-growth-mb", type=float, default=25.0)
    a = ap.parse_args()
    os.environ.setdefault("INGEST_ALLOW_NETWORKS", "127.0.0.0/8")  # feedlab is on loopback
    logging.basicConfig(level=logging.ERROR)  # the faulty sources' warnings, every round

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ingest-soak-") as tmp:
        corpus = Path(tmp) / "corpus"
        faulty = round(a.feeds * a.faulty)
        generate(a.feedlab, corpus, feeds=a.feeds - faulty, items=a.items, port=port, hosts=16)
        extra = "".join(
            f"  - key: fault-{i:04d}\n    name: fault {i}\n"
            f"    url: http://127.0.0.{1 + i % 16}:{port}{FAULTS[i % len(FAULTS)]}\n"
            f"    timeout: 3s\n"
            for i in range(faulty)
        )
        sources_file = corpus / "soak.yaml"
        sources_file.write_text((corpus / "sources.yaml").read_text() + extra)
        a.db = a.db or f"sqlite:///{Path(tmp) / 'soak.sqlite3'}"
        with serving(a.feedlab, corpus, port, hosts=16):
            print(
                f"soak: {a.feeds} sources ({faulty} faulty), {a.rounds} rounds, db {a.db}",
                flush=True,
            )
            return asyncio.run(soak(a, sources_file, corpus, port))


if __name__ == "__main__":
    sys.exit(main())
