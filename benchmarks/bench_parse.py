#!/usr/bin/env python3
"""Parse cost per feed, fast reader against feedparser, over the real-world corpus.

    python benchmarks/bench_parse.py [--corpus ../shared/corpus/realworld] [--repeat 3]

Reads every feed of the corpus in this one process, three ways: the fast reader
alone (`ingest.stages.parse.fast.read_fast`, routed documents excluded), `parse_feed` as a
run does it (fast reader, feedparser for what it routes), and `parse_feed(fast=False)`
(feedparser only); then `normalize` over the result.  Prints the best of `--repeat`
passes: total seconds, per-feed median and mean, how many documents the fast reader
took, and the ratios.  It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from ingest.model import Source
from ingest.stages.normalize import normalize
from ingest.stages.parse.doctype import strip_internal_subset
from ingest.stages.parse.fast import read_fast
from ingest.stages.parse.feed import parse_feed

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "realworld")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    manifest = json.loads((a.corpus / "manifest.json").read_text())
    docs = [((a.corpus / m["file"]).read_bytes(), m["original_url"]) for m in manifest]

    def timed(step: object, feeds: list[tuple[bytes, str]] = docs) -> list[float]:
        best: list[float] | None = None
        for _ in range(a.repeat):
            times = []
            for content, url in feeds:
                t = time.perf_counter()
                step(content, url)  # type: ignore[operator]
                times.append(time.perf_counter() - t)
            if best is None or sum(times) < sum(best):
                best = times
        assert best is not None
        return best

    taken = [read_fast(strip_internal_subset(c), u, "application/xml") is not None for c, u in docs]
    fast_only = [d for d, ok in zip(docs, taken, strict=True) if ok]
    rows = {
        "fast reader (taken only)": timed(
            lambda c, u: read_fast(strip_internal_subset(c), u, "application/xml"), fast_only
        ),
        "parse_feed (fast + routed)": timed(lambda c, u: parse_feed(c, u, "application/xml")),
        "parse_feed, feedparser only": timed(
            lambda c, u: parse_feed(c, u, "application/xml", fast=False)
        ),
        "normalize": timed(
            lambda c, u: normalize(Source(key="k", name="k", url=u), u,
                                   parse_feed(c, u, "application/xml"), NOW)
        ),
    }  # fmt: skip
    rows["normalize"] = [
        n - p for n, p in zip(rows["normalize"], rows["parse_feed (fast + routed)"], strict=True)
    ]
    print(f"{len(docs)} feeds, {sum(taken)} taken by the fast reader, best of {a.repeat}")
    print(f"{'':<30}{'total s':>9}{'median ms':>11}{'mean ms':>9}")
    for label, times in rows.items():
        print(
            f"{label:<30}{sum(times):>9.3f}{statistics.median(times) * 1e3:>11.2f}"
            f"{statistics.mean(times) * 1e3:>9.2f}"
        )
    slow, mixed = rows["parse_feed, feedparser only"], rows["parse_feed (fast + routed)"]
    per_feed = statistics.median(slow) / statistics.median(mixed)
    print(
        f"parse: {sum(slow) / sum(mixed):.1f}x faster than feedparser alone "
        f"(median per feed {per_feed:.1f}x)"
    )


if __name__ == "__main__":
    main()
