#!/usr/bin/env python3
"""Freshness: how long after a story is published does the scheduler store it?

    python benchmarks/freshness.py [--sources 1000] [--publish 90] [--scale 60]
        [--rate 1] [--warmup 20] [--every mix|30m|auto] [--max-every 1d]
        [--cadence uniform|mixed]
        [--db URL] [--keep DIR]

Simulates `--sources` feeds on a loopback server of its own (127.0.0.1, one
port), each publishing new stories at random moments (a Poisson process, on
average `--rate` stories per source per simulated hour... scaled, see below)
during a window of `--publish` seconds, while `python scheduler.py` runs as a
real process against a SQLite file (or `--db`).  The server answers like a
real site: each feed holds its newest 20 entries, each with its real
publication time as pubDate, an ETag that changes only when a story appears,
and 304 to a matching If-None-Match.

Intervals follow the mix of a real sources.yaml (20% every 15m, 40% every
30m, 30% every 1h, 10% every 2h), divided by `--scale` so that a run takes
minutes (with the default 60: 15s, 30s, 60s, 120s), and stories arrive at
`--rate` per source per scaled hour.  `--every 30m` polls every source at one
fixed interval instead, and `--every auto` polls with `every: auto` (its
`min_every`/`max_every` defaults, 10m and 1d, scaled too; `--max-every`
sets another longest wait).  `--cadence
mixed` gives the sources the publishing rates of a real list instead of one
rate (CADENCES: 10% publish 48 stories a day, 20% 12, 30% 3, 20% one, 20%
two a month) and each feed a back catalogue drawn from its own rate (its 20
newest stories within the last 60 scaled days), which is what `every: auto`
reads its first cadence from.  The run ends when every story
published in the window is stored, or one longest interval plus a minute
after the window closed.  It prints p50/p95/p99/max of the lag (stored minus
published, from the database: `first_seen_at - published_at`), the share of
stories within their source's interval + 60 s (the goal), stories never
stored, and requests per new story: every request over the run, and the
requests made while stories were being published (the publish window) per
story published in it, the steady state that the schedule decides (the
first poll of every source, in the warm-up, is the same for every
schedule).  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import http.server
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from ingest.config.values import parse_duration

ROOT = Path(__file__).resolve().parents[1]
MIX = ((900.0, 0.2), (1800.0, 0.4), (3600.0, 0.3), (7200.0, 0.1))  # seconds, share
CADENCES = ((48.0, 0.1), (12.0, 0.2), (3.0, 0.3), (1.0, 0.2), (2 / 30, 0.2))  # a day, share
MIN_EVERY, MAX_EVERY = 600.0, 86400.0  # every: auto's defaults (model.py), before scaling
BACK_CATALOGUE = 5  # old stories each feed holds at the start
KEEP = 20  # entries a feed shows


@dataclass
class Feed:
    key: str
    every: float  # seconds, scaled
    times: list[float] = field(default_factory=list)  # publication (epoch s), sorted


class Lab:
    """The feeds and their publication schedules; counts what clients asked for."""

    def __init__(self, feeds: list[Feed]) -> None:
        self.feeds = {f.key: f for f in feeds}
        self.requests: Counter[str] = Counter()
        self.window = (0.0, 0.0)  # requests within [start, end) are counted apart
        self.lock = threading.Lock()
        self._cache: dict[tuple[str, int], bytes] = {}

    def visible(self, feed: Feed, now: float) -> int:
        return bisect.bisect_right(feed.times, now)

    def body(self, feed: Feed, n: int) -> bytes:
        cached = self._cache.get((feed.key, n))
        if cached is not None:
            return cached
        shown = range(n - 1, max(-1, n - 1 - KEEP), -1)
        entries = "".join(
            f"<item><title>{feed.key} story {i}</title>"
            f"<link>http://news.example/{feed.key}/{i}</link><guid>{feed.key}-{i}</guid>"
            "<pubDate>"
            f"{format_datetime(datetime.fromtimestamp(feed.times[i], UTC), usegmt=True)}"
            f"</pubDate><description>Story {i} of {feed.key}.</description></item>"
            for i in shown
        )
        data = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>{feed.key}</title><link>http://news.example/{feed.key}/</link>"
            f"{entries}</channel></rss>"
        ).encode()
        self._cache[(feed.key, n)] = data
        return data


def make_handler(lab: Lab) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            key = self.path.strip("/").removesuffix(".xml")
            feed = lab.feeds.get(key)
            if feed is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            now = time.time()
            n = lab.visible(feed, now)
            if lab.window[0] <= now < lab.window[1]:
                with lab.lock:
                    lab.requests["window"] += 1
            etag = '"' + hashlib.sha1(f"{key}:{n}".encode()).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                with lab.lock:
                    lab.requests["304"] += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            data = lab.body(feed, n)
            with lab.lock:
                lab.requests["200"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def plan(
    n: int,
    start: float,
    window: float,
    scale: float,
    rate: float,
    seed: int,
    every: str = "mix",
    cadence: str = "uniform",
    max_every: float = MAX_EVERY,
) -> list[Feed]:
    """`n` feeds with their intervals (scaled) and Poisson publication times in the window."""
    rng = random.Random(seed)
    weights = [w for _, w in MIX]
    feeds = []
    for i in range(n):
        interval = rng.choices([s for s, _ in MIX], weights)[0] / scale
        if every == "auto":
            interval = max_every / scale  # the longest it may wait
        elif every != "mix":
            interval = parse_duration(every) / scale
        feed = Feed(f"f{i:04d}", interval)
        if cadence == "mixed":
            per_day = rng.choices([r for r, _ in CADENCES], [w for _, w in CADENCES])[0]
            per_second = per_day / (86400.0 / scale)
            t, back = start, []
            while len(back) < KEEP:  # the back catalogue, newest first, from the same rate
                t -= rng.expovariate(per_second)
                if t < start - 60 * 86400.0 / scale:
                    break
                back.append(float(int(t)))
            feed.times = sorted(back)
        else:
            per_second = rate / (3600.0 / scale)  # stories per source per scaled second
            feed.times = [
                float(int(start - 86400 - 3600 * k)) for k in range(BACK_CATALOGUE, 0, -1)
            ]
        t = start
        while True:
            t += rng.expovariate(per_second)
            if t >= start + window:
                break
            feed.times.append(float(int(t)))  # a pubDate has whole seconds
        feed.times.sort()
        feeds.append(feed)
    return feeds


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--publish", type=float, default=90.0, help="seconds stories appear for")
    ap.add_argument("--scale", type=float, default=60.0, help="real intervals divided by this")
    ap.add_argument("--rate", type=float, default=1.0,
                    help="stories per source per scaled hour (default 1)")  # fmt: skip
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before the first story")
    ap.add_argument(
        "--every",
        default="mix",
        help="mix (the intervals of a real list), one duration for all (30m), or auto",
    )
    ap.add_argument("--max-every", default="1d", help="with --every auto: the longest wait")
    ap.add_argument(
        "--cadence",
        choices=("uniform", "mixed"),
        default="uniform",
        help="one publishing rate for all (--rate), or the rates of a real list",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="ingest-freshness-"))
    work.mkdir(parents=True, exist_ok=True)
    db = args.db or f"sqlite:///{work / 'bench.sqlite3'}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    t0 = time.time()
    start = float(int(t0 + args.warmup))  # whole seconds, as pubDates: no story straddles it
    feeds = plan(args.sources, start, args.publish, args.scale, args.rate, args.seed,
                 args.every, args.cadence, parse_duration(args.max_every))  # fmt: skip
    lab = Lab(feeds)
    lab.window = (start, start + args.publish)
    server.RequestHandlerClass = make_handler(lab)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lines = ["settings:", "  per_host: 64  # every feed is on one loopback host here"]
    if args.every == "auto":
        lines += ["defaults:", "  every: auto", f"  min_every: {MIN_EVERY / args.scale:g}s",
                  f"  max_every: {parse_duration(args.max_every) / args.scale:g}s"]  # fmt: skip
    lines.append("sources:")
    for f in feeds:
        url = f"http://127.0.0.1:{port}/{f.key}.xml"
        every = "" if args.every == "auto" else f", every: {f.every:g}s"
        lines.append(f"  - {{key: {f.key}, name: {f.key}, url: '{url}'{every}}}")
    sources = work / "sources.yaml"
    sources.write_text("\n".join(lines) + "\n")
    expected = sum(1 for f in feeds for t in f.times if t >= start)
    longest = max(f.every for f in feeds)
    shown = "every: auto" if args.every == "auto" else \
        f"intervals {sorted(Counter(f'{f.every:g}s' for f in feeds).items())}"  # fmt: skip
    print(f"{args.sources} sources on 127.0.0.1:{port}; {shown}; {args.cadence} cadence; "
          f"{expected} stories "
          f"over {args.publish:g}s after a {args.warmup:g}s warm-up; database {db}",
          flush=True)  # fmt: skip
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    log = (work / "scheduler.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scheduler.py"), "--sources", str(sources), "--db", db],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    engine = create_engine(db)
    since = datetime.fromtimestamp(start, UTC)
    deadline = start + args.publish + longest * 1.1 + 60
    query = text(
        "SELECT source_key, published_at, first_seen_at FROM items "
        "WHERE date_source = 'published' AND published_at >= :since"
    )
    rows: list[tuple[str, datetime, datetime]] = []
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(2)
            if time.time() < start + args.publish:
                continue
            try:
                with engine.connect() as c:
                    rows = [tuple(r) for r in c.execute(query, {"since": since})]  # type: ignore[misc]
            except Exception:
                continue
            if len(rows) >= expected:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        server.shutdown()
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(query, {"since": since})]  # type: ignore[misc]
    engine.dispose()

    def aware(d: datetime | str) -> datetime:
        d = datetime.fromisoformat(d) if isinstance(d, str) else d
        return d if d.tzinfo else d.replace(tzinfo=UTC)

    every = {f.key: f.every for f in feeds}
    lags = [(k, (aware(seen) - aware(pub)).total_seconds()) for k, pub, seen in rows]
    values = [lag for _, lag in lags]
    over = [lag - every[k] for k, lag in lags]
    within = sum(1 for k, lag in lags if lag <= every[k] + 60)
    requests = lab.requests["200"] + lab.requests["304"]
    elapsed = time.time() - t0
    print(f"ran {elapsed:.0f}s; scheduler exit {proc.returncode}; log {work / 'scheduler.log'}")
    if not values:
        print("no story stored: see the log")
        return 1
    print(f"stories: {len(values)} stored of {expected} published ({expected - len(values)} "
          "never stored)")  # fmt: skip
    print(f"lag (s): p50 {quantile(values, 0.5):.1f}  p95 {quantile(values, 0.95):.1f}  "
          f"p99 {quantile(values, 0.99):.1f}  max {max(values):.1f}  "
          f"mean {statistics.fmean(values):.1f}")  # fmt: skip
    print(f"lag minus the source's interval (s): p50 {quantile(over, 0.5):.1f}  "
          f"p99 {quantile(over, 0.99):.1f}  max {max(over):.1f}")  # fmt: skip
    share = within / expected
    print(f"within interval + 60s: {within}/{expected} ({100 * share:.1f}%)")
    print(f"requests: {requests} ({lab.requests['200']} x 200, {lab.requests['304']} x 304); "
          f"{requests / len(values):.1f} per new story")  # fmt: skip
    print(f"requests while stories were published ({args.publish:g}s): "
          f"{lab.requests['window']}; {lab.requests['window'] / max(expected, 1):.2f} per "
          "story published then")  # fmt: skip
    goal = quantile(over, 0.99) <= 60 and len(values) == expected
    print("goal (p99 lag <= interval + 60s, nothing lost):", "met" if goal else "NOT met")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
