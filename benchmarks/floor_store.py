#!/usr/bin/env python3
"""The floor under a cold run's own work: what storing, cleaning and indexing its stories cost.

    python benchmarks/floor_store.py [--corpus ../shared/corpus/realworld] [--repeat 3]
        [--feedlab ../shared/feedlab] [--delay-ms 40]

Serves the corpus over loopback (a feedlab corpus of 200 x 25 without
`--corpus`), fills a fresh SQLite database with one cold `ingest run`, then
times, in this one process, the parts of that run no arrangement of processes
can avoid, each alone and at its cheapest:

- SQLite writing the rows the run stored (stories, their carriers and, in a
  second pass, the search index as well) into a fresh database of the same
  schema, in one transaction, from ready-made tuples (no SQL building, no
  conversions);
- nh3 cleaning the stored HTML again (the sanitizer's cost on that much HTML);
- the search index's text of every story (`ingest.store.search.document`);
- lxml reading every document of the corpus.

It prints each part's CPU seconds (the median of `--repeat`), their sum, and
that sum over the machine's cores: a cold run on this machine cannot take less
wall time than that.  It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nh3
from lab import compile_sources, corpus_arguments, free_port, generate, listed_corpus, serving
from lxml import etree

from ingest.store import search

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STORED = ("sources", "items", "item_sources")


def cpu(fn: Callable[[], object], repeat: int) -> float:
    """The median CPU seconds of `fn()` over `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def replay(filled: Path, into: Path, *, index: bool) -> float:
    """CPU seconds for SQLite to write `filled`'s stories (and with `index` their search
    documents) into a fresh database at `into` with the same tables, in one transaction."""
    src = sqlite3.connect(filled)
    ddl = [
        sql
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND type IN ('table', 'index')"
            f" AND tbl_name IN ({', '.join('?' * len(STORED))}) ORDER BY type = 'index', rowid",
            STORED,
        )
    ]
    rows = {t: src.execute(f"SELECT * FROM {t}").fetchall() for t in STORED}
    documents = src.execute(f"SELECT rowid, title, body FROM {search.FTS_TABLE}").fetchall()
    src.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{into}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(into, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for sql in ddl:
        db.execute(sql)
    if index:  # the search table, not its trigger on deletes (no story is deleted here)
        for sql in search.search_ddl("sqlite"):
            if sql.startswith("CREATE VIRTUAL TABLE"):
                db.execute(sql)
    db.execute("BEGIN")
    db.executemany(f"INSERT INTO sources VALUES ({', '.join('?' * len(rows['sources'][0]))})",
                   rows["sources"])  # fmt: skip
    db.execute("COMMIT")
    start = time.process_time()
    db.execute("BEGIN")
    for table in ("items", "item_sources"):
        marks = ", ".join("?" * len(rows[table][0]))
        db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
    if index:
        db.executemany(
            f"INSERT INTO {search.FTS_TABLE} (rowid, title, body) VALUES (?, ?, ?)", documents
        )
    db.execute("COMMIT")
    spent = time.process_time() - start
    db.close()
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(ap, ROOT)
    ap.add_argument("--corpus", type=Path, help="a directory of feeds (feeds/*) to serve as is")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    compile_sources(ROOT)
    work = Path(tempfile.mkdtemp(prefix="ingest-floor-"))
    port = free_port()
    if a.corpus is None:
        corpus = work / "corpus"
        generate(a.feedlab, corpus, feeds=a.feeds, items=a.items, port=port, hosts=a.hosts)
        sources = corpus / "sources.yaml"
    else:
        corpus = a.corpus
        sources = listed_corpus(a.feedlab, corpus, work / "sources.yaml", port=port,
                                hosts=a.hosts)  # fmt: skip
    filled = work / "filled.sqlite3"
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    with serving(a.feedlab, corpus, port, a.hosts, a.delay_ms):
        subprocess.run(
            [str(VENV_BIN / "ingest"), "run", "--sources", str(sources), "--db",
             f"sqlite:///{filled}"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip

    with sqlite3.connect(filled) as db:
        stored = db.execute("SELECT title, summary, content FROM items").fetchall()
    html = [text for _, summary, content in stored for text in (summary, content) if text]
    documents = [p.read_bytes() for p in sorted((corpus / "feeds").iterdir()) if p.is_file()]
    parser = etree.XMLParser(resolve_entities=False, no_network=True)

    def read_all() -> None:
        for doc in documents:  # a document lxml refuses costs what refusing it cost
            with contextlib.suppress(etree.XMLSyntaxError):
                etree.fromstring(doc, parser)

    parts = {
        "SQLite: stories and carriers": statistics.median(
            replay(filled, work / "replay.sqlite3", index=False) for _ in range(a.repeat)
        ),
        "SQLite: the same and the search index": statistics.median(
            replay(filled, work / "replay.sqlite3", index=True) for _ in range(a.repeat)
        ),
        "nh3: the stored HTML cleaned again": cpu(lambda: [nh3.clean(h) for h in html], a.repeat),
        "the search index's text": cpu(
            lambda: [search.document(t, s, c) for t, s, c in stored], a.repeat
        ),
        "lxml: every document read": cpu(read_all, a.repeat),
    }
    for path in work.glob("*"):
        if path.is_file():
            path.unlink()
    print(f"corpus: {a.corpus or 'feedlab'}; {len(stored)} stories, "
          f"{sum(map(len, html)) / 1e6:.1f} MB of stored HTML, "
          f"{sum(map(len, documents)) / 1e6:.1f} MB of documents")  # fmt: skip
    for label, seconds in parts.items():
        print(f"{label:<42}{seconds:>8.3f} s CPU")
    total = sum(v for k, v in parts.items() if k != "SQLite: stories and carriers")
    cores = os.cpu_count() or 1
    print(f"{'together (the index included)':<42}{total:>8.3f} s CPU; "
          f"over {cores} cores at best {total / cores:.3f} s of wall time")  # fmt: skip


if __name__ == "__main__":
    main()
