#!/usr/bin/env python3
"""How long validating a big sources.yaml takes (the scheduler reloads it on every change).

    python benchmarks/bench_config.py [--sources 2000] [--repeat 5]

Builds a file of N sources (the repository's sources.yaml, its sources
repeated under new keys: feeds, pages with selectors, curated items, filters),
parses and validates it `--repeat` times with
`ingest.config.parse_config`, and prints the best and median milliseconds.
It measures; it asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import yaml

from ingest.config import parse_config

ROOT = Path(__file__).resolve().parents[1]


def many_sources(n: int) -> str:
    """The repository's sources.yaml with its sources repeated to `n` (keys made unique)."""
    data = yaml.safe_load((ROOT / "sources.yaml").read_text())
    real = data["sources"]
    copies = []
    for i in range(n):
        source = dict(real[i % len(real)])
        source["key"] = f"{source['key']}-{i}"
        source["name"] = f"{source['name']} ({i})"
        copies.append(source)
    data["sources"] = copies
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    text = many_sources(a.sources)
    times = []
    for _ in range(a.repeat):
        start = time.perf_counter()
        config = parse_config(text)
        times.append(time.perf_counter() - start)
    print(
        f"{len(config.sources)} sources ({len(text) / 1024:.0f} KiB): "
        f"best {min(times) * 1000:.1f} ms, median {statistics.median(times) * 1000:.1f} ms "
        f"(n={a.repeat})"
    )


if __name__ == "__main__":
    main()
