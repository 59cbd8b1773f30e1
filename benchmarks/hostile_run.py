#!/usr/bin/env python3
"""Issue 6's "done when" check: good feeds and every feedlab fault in one `ingest run`.

    python benchmarks/hostile_run.py [--good 40] [--huge-mib 200] [--timeout 10]
        [--feedlab ../shared/feedlab] [--db URL]

Generates `--good` feeds with feedlab/gen.py, serves them with feedlab/serve.py
(127.0.0.1-4), and adds one source per fault path: 429, 500, 503 (Retry-After),
hang, slow trickle, a `--huge-mib` body, garbage, reset mid-headers, a short
and a long redirect chain, a loop and a 301 move.  Then runs `ingest run` as
a separate process and checks, printing the numbers:

- it finishes in under 60 s;
- every good story is stored (items == expected unique_articles);
- every faulty source is reported with its reason (`ingest status --format
  json`), and the short chain and the move succeed (with moved_to);
- the whole process tree (ingest and its parse workers) stays under 250 MB
  peak RSS, sampled every 20 ms with psutil.

Exit 0 when all hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lab import free_port, generate, measure, serving

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
LIMIT_SECONDS = 60.0
LIMIT_MB = 250.0


def faults(huge_mib: int) -> dict[str, tuple[str, str]]:
    """key -> (path, what the status must say: an error kind, or "ok"/"moved")."""
    return {
        "fault-429": ("/fault/status/429/feed.xml", "http"),
        "fault-500": ("/fault/status/500/feed.xml", "http"),
        "fault-503": ("/fault/status/503/feed.xml", "http"),
        "fault-hang": ("/fault/hang/feed.xml", "timeout"),
        "fault-slow": ("/fault/slow/120/feeds/f00000.xml", "timeout"),
        "fault-huge": (f"/fault/huge/{huge_mib}/feed.xml", "too_large"),
        "fault-garbage": ("/fault/garbage/feed.xml", "parse"),
        "fault-reset": ("/fault/reset/feed.xml", "network"),
        "fault-chain": ("/fault/redirect/3/feeds/f00001.xml", "ok"),
        "fault-long-chain": ("/fault/redirect/12/feeds/f00001.xml", "http"),
        "fault-loop": ("/fault/loop/feed.xml", "http"),
        "fault-moved": ("/fault/moved/feeds/f00002.xml", "moved"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--good", type=int, default=40)
    ap.add_argument("--items", type=int, default=25)
    ap.add_argument("--huge-mib", type=int, default=200)
    ap.add_argument("--timeout", default="10s", help="timeout of the faulty sources")
    ap.add_argument("--feedlab", type=Path, default=ROOT.parent / "shared" / "feedlab")
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    a = ap.parse_args()

    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}  # feedlab is on loopback
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ingest-hostile-") as tmp:
        corpus = Path(tmp) / "corpus"
        expected = generate(a.feedlab, corpus, feeds=a.good, items=a.items, port=port, hosts=4)
        table = faults(a.huge_mib)
        extra = "".join(
            f"  - key: {key}\n    name: {key}\n    url: http://127.0.0.1:{port}{path}\n"
            f"    timeout: {a.timeout}\n"
            for key, (path, _) in table.items()
        )
        sources = corpus / "hostile.yaml"
        sources.write_text((corpus / "sources.yaml").read_text() + extra)
        db = a.db or f"sqlite:///{Path(tmp) / 'hostile.sqlite3'}"
        with serving(a.feedlab, corpus, port, hosts=4):
            run = measure(
                [str(VENV_BIN / "ingest"), "run", "--sources", str(sources), "--db", db],
                env, ROOT, every=0.02,
            )  # fmt: skip
            code, err, seconds = run["rc"], run["stderr"], run["seconds"]
            peak_mb = run["tree_bytes"] / 1e6
            status = subprocess.run(
                [str(VENV_BIN / "ingest"), "status", "--sources", str(sources), "--db", db,
                 "--format", "json"],
                check=True, capture_output=True, text=True, env=env, cwd=str(ROOT),
            )  # fmt: skip
        rows = {r["key"]: r for r in json.loads(status.stdout)}
        from sqlalchemy import create_engine, text

        engine = create_engine(db)
        with engine.connect() as c:
            stored = int(c.execute(text("SELECT count(*) FROM items")).scalar_one())
        engine.dispose()

    problems: list[str] = []
    print(f"ingest run: exit {code}, {seconds:.1f} s, peak process-tree RSS {peak_mb:.0f} MB")
    print(f"stories stored: {stored} (expected {expected['unique_articles']})")
    print(f"{'source':<18} {'outcome':<10} reason")
    for key, (_path, want) in table.items():
        row = rows[key]
        got = row["last_error_kind"] or ("moved" if row["moved_to"] else "ok")
        reason = row["last_error"] or (
            f"HTTP {row['last_status']}, moved to {row['moved_to']}"
            if row["moved_to"]
            else f"HTTP {row['last_status']}"
        )
        print(f"{key:<18} {got:<10} {reason}")
        if got != want:
            problems.append(f"{key}: expected {want}, got {got}")
    good_failed = [k for k, r in rows.items() if k.startswith("f0") and r["last_error"]]
    if good_failed:
        problems.append(f"good sources failed: {good_failed}")
    if "Traceback" in err:
        problems.append("a traceback on stderr:\n" + err)
    if seconds >= LIMIT_SECONDS:
        problems.append(f"took {seconds:.1f} s (limit {LIMIT_SECONDS:.0f} s)")
    if peak_mb >= LIMIT_MB:
        problems.append(f"peak RSS {peak_mb:.0f} MB (limit {LIMIT_MB:.0f} MB)")
    if stored != expected["unique_articles"]:
        problems.append(f"stored {stored} stories, expected {expected['unique_articles']}")
    for p in problems:
        print("PROBLEM:", p)
    print("PASS" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
