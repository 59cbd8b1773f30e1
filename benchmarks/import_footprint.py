#!/usr/bin/env python3
"""What importing a set of libraries costs a fresh process: seconds, RSS and PSS.

    python benchmarks/import_footprint.py [--repeat 3]

Each row runs a new interpreter that imports the named modules (httpx
without its command-line tool, as ingest imports it) and reports the import
time and the process's RSS and PSS (psutil, /proc/self/smaps_rollup), the
median of `--repeat` runs.  It shows the floor under any process built on
those libraries, for comparing with a peer's whole run.  It measures; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SETS = [
    ("nothing (the interpreter)", ""),
    ("sqlalchemy", "sqlalchemy"),
    ("httpx", "httpx"),
    ("aiohttp, httpx, httpx_aiohttp", "aiohttp, httpx, httpx_aiohttp"),
    ("feedparser, nh3", "feedparser, nh3"),
    ("sqlalchemy, httpx, feedparser, nh3, yaml", "sqlalchemy, httpx, feedparser, nh3, yaml"),
    (
        "ingest's whole stack (+ aiohttp, httpx_aiohttp)",
        "sqlalchemy, httpx, httpx_aiohttp, aiohttp, feedparser, nh3, yaml",
    ),
    ("reader (the peer)", "reader"),
]

PROBE = """
import sys, time, json
sys.modules.setdefault("httpx._main", None)
import psutil
t = time.perf_counter()
{imports}
took = time.perf_counter() - t
info = psutil.Process().memory_full_info()
print(json.dumps([took, info.rss / 2**20, info.pss / 2**20]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"{'imported':<50}{'seconds':>9}{'RSS MB':>9}{'PSS MB':>9}  (median of {a.repeat})")
    for label, modules in SETS:
        code = PROBE.format(imports=f"import {modules}" if modules else "pass")
        runs = [
            json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(a.repeat)
        ]  # fmt: skip
        took, rss, pss = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{label:<50}{took:>9.3f}{rss:>9.1f}{pss:>9.1f}")
    print("(psutil itself, imported before the timer, is in every row: about 3 MB)")


if __name__ == "__main__":
    main()
