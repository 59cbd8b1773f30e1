#!/usr/bin/env python3
"""How long validating a big sources.yaml takes (the scheduler reloads it on every change).

    python benchmarks/bench_config.py [--sources 2000] [--repeat 5]

Builds a file of N sources (defaults, per-source intervals, filters, some
disabled), parses and validates it `--repeat` times with
`ingest.config.parse_config`, and prints the best and median milliseconds.
It measures; it asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ingest.config import parse_config


def many_sources(n: int) -> str:
    out = ["defaults:\n  every: 30m\n  timeout: 20s\n  strip_params: [rss]\nsources:\n"]
    for i in range(n):
        out.append(
            f"  - key: source-{i}\n"
            f"    name: Source number {i}\n"
            f"    url: https://host{i % 50}.example.org/feeds/{i}.xml\n"
            f"    section: {('latest', 'blogs', 'videos')[i % 3]}\n"
            f"    every: {i % 5 + 1}h\n"
            f"    enabled: {'false' if i % 7 == 0 else 'true'}\n"
            f"    include: [leadership, nhs]\n"
        )
    return "".join(out)


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
