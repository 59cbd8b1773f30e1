#!/usr/bin/env python3
"""Distributed-mode throughput: 1, 2 and 4 `ingest worker` processes over a feedlab corpus.

    python benchmarks/bench_workers.py [--feeds 300] [--delay-ms 40] [--workers 1,2,4]
        [--concurrency 16] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each worker count: a fresh PostgreSQL database, the workers started and
ready, then one `ingest dispatch --once` queues a poll of every feed; the
clock runs from there until every feed's poll is recorded (cold: every feed
fetched, parsed and stored).  Then every feed is made due again and queued
once more (warm: every answer a 304).  Prints one line per worker count and
a JSON summary.  The corpus is served by feedlab's serve.py with
`--delay-ms` of latency on 127.0.0.1-4.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from lab import free_port, generate, serving
from sqlalchemy.engine import make_url

from ingest.service.distributed.queue import libpq_url

ROOT = Path(__file__).resolve().parents[1]
INGEST = Path(sys.executable).parent / "ingest"
FEEDLAB = Path(os.environ.get("INGEST_FEEDLAB", ROOT.parent / "shared" / "feedlab"))


def _count(conn: psycopg.Connection[tuple[int]], sql: str) -> int:
    row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def _wait_polls(conninfo: str, target: int, limit: float = 600) -> float:
    t0 = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while _count(conn, "SELECT count(*) FROM fetches") < target:
            if time.monotonic() - t0 > limit:
                raise SystemExit(f"timed out waiting for {target} polls")
            time.sleep(0.05)
    return time.monotonic() - t0


def _ready(log: Path, limit: float = 60) -> None:
    end = time.monotonic() + limit
    while "worker started" not in log.read_text():
        if time.monotonic() > end:
            raise SystemExit(f"worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)  # listening for jobs


def one(args: argparse.Namespace, workers: int, sources: str, tmp: Path) -> dict[str, float]:
    name = f"bench_workers_{secrets.token_hex(4)}"
    admin = libpq_url(args.postgres)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    db = ["--db", url]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        logs = []
        for i in range(workers):
            log = tmp / f"w{workers}-{i}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(subprocess.Popen(
                    [str(INGEST), "worker", *db, "--concurrency", str(args.concurrency)],
                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                ))  # fmt: skip
        for log in logs:
            _ready(log)
        conninfo = libpq_url(url)
        t0 = time.monotonic()
        subprocess.run([str(INGEST), "dispatch", "--once", "--sources", sources, *db],
                       check=True, capture_output=True)  # fmt: skip
        _wait_polls(conninfo, args.feeds)
        cold = time.monotonic() - t0
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("UPDATE sources SET next_due_at = now() - interval '1 second'")
            items = _count(conn, "SELECT count(*) FROM items")
        t0 = time.monotonic()
        subprocess.run([str(INGEST), "dispatch", "--once", "--sources", sources, *db],
                       check=True, capture_output=True)  # fmt: skip
        _wait_polls(conninfo, 2 * args.feeds)
        warm = time.monotonic() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
    return {"workers": workers, "cold_s": round(cold, 2), "cold_feeds_per_s":
            round(args.feeds / cold, 1), "warm_s": round(warm, 2), "items": items}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feeds", type=int, default=300)
    p.add_argument("--items", type=int, default=25)
    p.add_argument("--delay-ms", type=float, default=40)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    os.environ.setdefault("INGEST_ALLOW_NETWORKS", "127.0.0.0/8")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus"
        expected = generate(FEEDLAB, corpus, feeds=args.feeds, items=args.items, port=port, hosts=4)
        results = []
        with serving(FEEDLAB, corpus, port, hosts=4, delay_ms=args.delay_ms):
            for n in (int(x) for x in args.workers.split(",")):
                r = one(args, n, str(corpus / "sources.yaml"), tmp)
                ok = "ok" if r["items"] == expected["unique_articles"] else "WRONG COUNT"
                print(f"{n} worker(s) x {args.concurrency}: cold {r['cold_s']:.2f} s "
                      f"({r['cold_feeds_per_s']} feeds/s), warm (all 304) {r['warm_s']:.2f} s, "
                      f"{r['items']} stories ({ok})", flush=True)  # fmt: skip
                results.append(r)
    print(json.dumps({"feeds": args.feeds, "delay_ms": args.delay_ms, "cpus": os.cpu_count(),
                      "results": results}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
