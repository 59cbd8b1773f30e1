#!/usr/bin/env python3
"""CPU per unchanged poll in the running service, against `reader` polling in one warm process.

    python benchmarks/bench_service.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--seconds 60] [--rounds 3] [--every 10s] [--feedlab ../shared/feedlab]

Generates a feedlab corpus and serves it over loopback, then, on fresh databases:

- ingest: starts `python scheduler.py` with every source polled `--every` (no
  jitter, server max-age ignored) and waits until the cold first poll of every
  source is stored; its CPU is that of its whole process tree (the scheduler
  and anything it starts: start-up excluded), its polls the `fetches` rows it
  recorded (all unchanged: 304s);
- reader: in this process, `make_reader`, `add_feed` for every source and one
  cold `update_feeds`, then `update_feeds(scheduled=False)` in a loop, counting
  this process's CPU and the feeds each pass updated.

The measured time alternates between the two in `--rounds` rounds (a window of
ingest, then one of reader, each `--seconds / --rounds` long), so both are
measured in the same phases of the machine: reader's own CPU per poll was seen
to move by half from one minute to the next.  The service keeps running through
reader's windows, as a service does (about one per cent of a core here), and
is counted only in its own.  Reader does nothing in ingest's windows.

Prints CPU milliseconds per unchanged poll for each, over all rounds and round by
round, and the ratio.  It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


class Window:
    """CPU seconds and polls counted between `start()` and `stop()`."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.polls = 0

    def per_poll_ms(self) -> float:
        return self.cpu / max(self.polls, 1) * 1e3


@contextlib.contextmanager
def ingest_service(
    sources: Path, work: Path, feeds: int
) -> Iterator[Callable[[], tuple[float, int]]]:
    """The scheduler running over `sources` after its cold first poll; yields a reading of
    (CPU seconds of its process tree, polls recorded) so far."""
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
        yield lambda: (tree_cpu(proc), polls(db))
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def warm_reader(sources: Path, work: Path, workers: int) -> Any:
    """reader with every source added and polled once (cold)."""
    import yaml
    from reader import make_reader

    with open(sources) as f:
        urls = [s["url"] for s in yaml.safe_load(f)["sources"]]
    r = make_reader(str(work / "reader.sqlite"))
    for url in urls:
        r.add_feed(url, exist_ok=True)
    r.update_feeds(workers=workers, scheduled=False)  # cold
    return r


def reader_window(r: Any, seconds: float, workers: int) -> tuple[float, int]:
    """reader's warm loop for `seconds`: (CPU seconds of this process, feeds updated)."""
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
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two windows")
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
    ingest, reader = Window(), Window()
    rounds: list[tuple[Window, Window]] = []
    window = a.seconds / a.rounds
    try:
        with (
            serving(a.feedlab, corpus, port, a.hosts, a.delay_ms),
            ingest_service(sources, work, a.feeds) as reading,
        ):
            r = warm_reader(sources, work, a.workers)
            time.sleep(2)  # the service's polls delayed by reader's cold pass settle
            for _ in range(a.rounds):
                mine, theirs = Window(), Window()
                cpu0, polls0 = reading()
                time.sleep(window)
                cpu1, polls1 = reading()
                mine.cpu, mine.polls = cpu1 - cpu0, polls1 - polls0
                theirs.cpu, theirs.polls = reader_window(r, window, a.workers)
                rounds.append((mine, theirs))
                for total, part in ((ingest, mine), (reader, theirs)):
                    total.cpu += part.cpu
                    total.polls += part.polls
            r.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"corpus: {a.feeds} feeds x {a.items} items, --delay-ms {a.delay_ms:g}; "
          f"{a.seconds:g} s measured each after the cold poll, in {a.rounds} rounds of "
          f"{window:g} s")  # fmt: skip
    print(f"ingest service (every {a.every}): {ingest.polls} polls, {ingest.cpu:.2f} CPU s, "
          f"{ingest.per_poll_ms():.2f} ms per unchanged poll")  # fmt: skip
    print(f"reader, warm loop:             {reader.polls} polls, {reader.cpu:.2f} CPU s, "
          f"{reader.per_poll_ms():.2f} ms per unchanged poll")  # fmt: skip
    for i, (mine, theirs) in enumerate(rounds, 1):
        print(f"  round {i}: ingest {mine.per_poll_ms():.2f} ms ({mine.polls} polls), reader "
              f"{theirs.per_poll_ms():.2f} ms ({theirs.polls} polls): "
              f"{theirs.per_poll_ms() / mine.per_poll_ms():.2f}x")  # fmt: skip
    print(
        f"ingest's poll costs {reader.per_poll_ms() / ingest.per_poll_ms():.2f}x less CPU "
        "than reader's"
    )


if __name__ == "__main__":
    main()
