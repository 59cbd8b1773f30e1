#!/usr/bin/env python3
"""Whole-process timings of `ingest run` against `reader` on the same feedlab corpus.

    python benchmarks/bench_vs_reader.py [--feeds 200] [--items 25] [--delay-ms 40]
        [--workers 16] [--repeat 3] [--feedlab ../shared/feedlab] [--postgres URL]
    python benchmarks/bench_vs_reader.py --corpus ../shared/corpus/realworld [--repeat 3]

Generates a corpus with feedlab/gen.py (or, with --corpus, takes a directory of
real feeds as it is, listed by feedlab/sources_for.py, with `retention: 36500d`
so that ingest keeps their old stories as reader keeps its entries), serves it
over loopback with feedlab/serve.py, then times, as separate processes on fresh databases:
a cold `ingest run` and an unchanged re-poll, and the same two passes of
feedlab/peer_reader.py (the `reader` library, --workers threads).  Prints the
median seconds, peak memory (largest single process RSS, the whole process
tree's summed RSS, and its summed PSS), the story counts against expected.json, and the
ratios.  It measures; it asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from lab import (
    compile_sources,
    corpus_arguments,
    free_port,
    generate,
    listed_corpus,
    measure,
    serving,
)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def sqlite_count(path: Path, sql: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as c:
        return int(c.execute(sql).fetchone()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    corpus_arguments(ap, ROOT)
    ap.add_argument("--workers", type=int, default=16, help="reader's worker threads")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-reader", action="store_true")
    ap.add_argument("--corpus", type=Path, help="a directory of feeds (feeds/*) to serve as is")
    a = ap.parse_args()

    compile_sources(ROOT)  # as pip did reader's
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    port = free_port()
    if a.corpus is None:
        corpus = work / "corpus"
        expected = generate(
            a.feedlab, corpus, feeds=a.feeds, items=a.items, port=port, hosts=a.hosts
        )
        sources = corpus / "sources.yaml"
    else:
        corpus, expected = a.corpus, {}
        sources = listed_corpus(a.feedlab, corpus, work / "sources.yaml", port=port,
                                hosts=a.hosts)  # fmt: skip
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    results: dict[str, list[dict[str, float | str]]] = {
        k: [] for k in ("ingest cold", "ingest warm", "reader cold", "reader warm")
    }
    counts: dict[str, int] = {}
    try:
        with serving(a.feedlab, corpus, port, a.hosts, a.delay_ms):
            for i in range(a.repeat):
                db = work / f"ingest-{i}.sqlite3"
                cmd = [str(VENV_BIN / "ingest"), "run", "--sources", str(sources),
                       "--db", f"sqlite:///{db}"]  # fmt: skip
                for label in ("ingest cold", "ingest warm"):
                    r = measure(cmd, env, ROOT)
                    if r["rc"] != 0:
                        print(f"{label} exited {r['rc']}:\n{r['stderr']}", file=sys.stderr)
                    results[label].append(r)
                counts["ingest stories"] = sqlite_count(db, "SELECT count(*) FROM items")
                counts["ingest feed entries"] = sqlite_count(
                    db, "SELECT count(*) FROM item_sources"
                )
                counts["ingest utm links"] = sqlite_count(
                    db, "SELECT count(*) FROM items WHERE url LIKE '%utm_%'"
                )
                if a.skip_reader:
                    continue
                rdb = work / f"reader-{i}.sqlite"
                rcmd = [sys.executable, str(a.feedlab / "peer_reader.py"), str(sources), str(rdb),
                        "--workers", str(a.workers)]  # fmt: skip
                for label in ("reader cold", "reader warm"):
                    r = measure(rcmd, cwd=ROOT)
                    if r["rc"] != 0:
                        print(f"{label} exited {r['rc']}:\n{r['stderr']}", file=sys.stderr)
                    results[label].append(r)
                    counts["reader entries"] = json.loads(str(r["stdout"]).strip())["entries"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(label: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[label])

    if a.corpus is None:
        print(f"corpus: {a.feeds} feeds x {a.items} items, --delay-ms {a.delay_ms:g}, "
              f"{a.hosts} hosts; expected {json.dumps(expected)}")  # fmt: skip
    else:
        print(f"corpus: {a.corpus} as it is, --delay-ms {a.delay_ms:g}, {a.hosts} hosts")
    print(f"counts: {json.dumps(counts)}")
    print(f"{'run':<14}{'median s':>10}{'min s':>8}{'peak MB':>9}{'tree MB':>9}{'PSS MB':>9}"
          f"  (n={a.repeat})")  # fmt: skip
    for label, rs in results.items():
        if not rs:
            continue
        print(
            f"{label:<14}{med(label, 'seconds'):>10.3f}"
            f"{min(float(r['seconds']) for r in rs):>8.3f}"
            f"{med(label, 'peak_mb'):>9.1f}{med(label, 'tree_mb'):>9.1f}"
            f"{med(label, 'pss_mb'):>9.1f}"
        )
    if not a.skip_reader:
        for kind in ("cold", "warm"):
            ratio = med(f"reader {kind}", "seconds") / med(f"ingest {kind}", "seconds")
            print(f"{kind}: ingest is {ratio:.2f}x reader's speed (reader s / ingest s)")
        for key in ("peak_mb", "tree_mb", "pss_mb"):
            ratio = med("ingest cold", key) / med("reader cold", key)
            print(f"memory ({key}), cold: ingest/reader = {ratio:.2f}")


if __name__ == "__main__":
    main()
