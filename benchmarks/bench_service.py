#!/usr/bin/env python3
"""CPU per unchanged poll in the running service, against `reader` polling in one warm process.

    python benchmarks/bench_service.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--seconds 60] [--every 10s] [--feedlab ../shared/feedlab]

Generates a feedlab corpus and serves it over loopback, then, one after the
other on fresh databases:

- ingest: starts `python scheduler.py` with every source polled `--every` (no
  jitter, server max-age ignored), waits until the cold first poll of every
  source is stored, then for `--seconds` counts the CPU seconds of its whole
  process tree (the scheduler, the database process, the parse workers: start-up
  excluded) and the polls it recorded (`fetches` rows, all unchanged: 304s);
- reader: in one process, `make_reader`, `add_feed` for every source, one cold
  `update_feeds`, then `update_feeds(scheduled=False)` in a loop for `--seconds`,
  counting that process's CPU and the feeds each pass updated.

Prints CPU milliseconds per unchanged poll for each, and the ratio.  It
measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from lab import compile_sources, corpus_arguments, free_port, generate, serving

ROOT = Path(__file__).resolve().parents[1]


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds (user + system) of `proc` and every process below it, now."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def polls(db: Path) -> int:
    """Polls recorded so far; 0 while the scheduler is still creating the new file's schema."""
    try:
        with sqlite3.connect(db) as c:
            return int(c.execute("SELECT count(*) FROM fetches").fetchone()[0])
    except sqlite3.OperationalError:  # no such table yet, or the file is locked being made
        return 0


def ingest_side(sources: Path, work: Path, feeds: int, seconds: float) -> tuple[float, int]:
    db = work / "ingest.sqlite3"
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    proc = psutil.Popen(
        [sys.executable, str(ROOT / "scheduler.py"), "--sources", str(sources),
         "--db", f"sqlite:///{db}"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the cold first poll of every source
            time.sleep(0.5)
            if db.exists() and polls(db) >= feeds:
                break
        time.sleep(2)  # let the first polls' writes settle
        cpu0, polls0 = tree_cpu(proc), polls(db)
        time.sleep(seconds)
        cpu1, polls1 = tree_cpu(proc), polls(db)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return cpu1 - cpu0, polls1 - polls0


def reader_side(sources: Path, work: Path, seconds: float, workers: int) -> tuple[float, int]:
    import yaml
    from reader import make_reader

    with open(sources) as f:
        urls = [s["url"] for s in yaml.safe_load(f)["sources"]]
    r = make_reader(str(work / "reader.sqlite"))
    for url in urls:
        r.add_feed(url, exist_ok=True)
    r.update_feeds(workers=workers, scheduled=False)  # cold
    cpu0, done = time.process_time(), 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        for _ in r.update_feeds_iter(workers=workers, scheduled=False):
            done += 1
    return time.process_time() - cpu0, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(ap, ROOT)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--every", default="10s", help="the sources' interval in the scheduler")
    ap.add_argument("--workers", type=int, default=16, help="reader's worker threads")
    a = ap.parse_args()

    compile_sources(ROOT)
    work = Path(tempfile.mkdtemp(prefix="ingest-service-"))
    port = free_port()
    corpus = work / "corpus"
    generate(a.feedlab, corpus, feeds=a.feeds, items=a.items, port=port, hosts=a.hosts)
    listed = (corpus / "sources.yaml").read_text().split("sources:", 1)[1]
    sources = work / "sources.yaml"
    sources.write_text(
        "settings:\n  jitter: 0\n  respect_max_age: false\n"
        f"defaults:\n  every: {a.every}\n  allow_networks: [127.0.0.0/8]\nsources:" + listed
    )
    try:
        with serving(a.feedlab, corpus, port, a.hosts, a.delay_ms):
            ingest_cpu, ingest_polls = ingest_side(sources, work, a.feeds, a.seconds)
            reader_cpu, reader_polls = reader_side(sources, work, a.seconds, a.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mine = ingest_cpu / max(ingest_polls, 1) * 1e3
    theirs = reader_cpu / max(reader_polls, 1) * 1e3
    print(f"corpus: {a.feeds} feeds x {a.items} items, --delay-ms {a.delay_ms:g}; "
          f"{a.seconds:g} s measured each, after the cold poll")  # fmt: skip
    print(f"ingest service (every {a.every}): {ingest_polls} polls, {ingest_cpu:.2f} CPU s, "
          f"{mine:.2f} ms per unchanged poll")  # fmt: skip
    print(f"reader, warm loop:             {reader_polls} polls, {reader_cpu:.2f} CPU s, "
          f"{theirs:.2f} ms per unchanged poll")  # fmt: skip
    print(f"ingest's poll costs {theirs / mine:.2f}x less CPU than reader's")


if __name__ == "__main__":
    main()
