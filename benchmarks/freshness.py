#!/usr/bin/env python3
"""Freshness: how long after a story is published does the scheduler store it?

    python benchmarks/freshness.py [--sources 1000] [--publish 90] [--scale 60]
        [--rate 1] [--warmup 20] [--every mix|30m|auto] [--max-every 1d]
        [--cadence uniform|mixed] [--push] [--compare]
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
schedule).

`--push` makes every feed advertise a WebSub hub (the benchmark's own, at
/hub on its server: freshness_push.py), sets `websub_callback` to an `ingest
serve` process it starts on another loopback port, and pushes each story to
it, signed, the moment it is published; the scheduler subscribes during the
warm-up (at least 40 s with --push) and then polls only as a safety net
(`push_every`: 6 h, scaled).  `--compare` runs the same sources and stories
three times, with fixed `every: 30m`, with `every: auto` and with `every: 30m`
plus push, each on a fresh database, and prints their lags and requests per
story side by side.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.server
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from freshness_lab import MIN_EVERY, Feed, Lab, make_handler, plan
from freshness_push import PushHub, start_serve
from sqlalchemy import create_engine, text

from ingest.config.values import parse_duration

ROOT = Path(__file__).resolve().parents[1]


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
    ap.add_argument("--push", action="store_true", help="feeds advertise a WebSub hub that pushes")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="run every: 30m, every: auto and every: 30m + push; print side by side",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()
    if args.compare and args.db:
        ap.error("--compare needs a fresh database per run: leave --db out")
    if not args.compare:
        result = run(args, args.every, args.push)
        return 0 if result and result["goal"] else 1
    runs = [("every: 30m (fixed)", "30m", False),
            (f"every: auto (max_every {args.max_every})", "auto", False),
            ("every: 30m + push", "30m", True)]  # fmt: skip
    results = []
    for name, every, push in runs:
        print(f"\n== {name}", flush=True)
        results.append((name, run(args, every, push)))
    print("\n| schedule | lag p50 | p95 | p99 | max | stored | requests per story (window) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results:
        if not r:
            print(f"| {name} | - | - | - | - | none | - |")
            continue
        print(f"| {name} | {r['p50']:.1f} s | {r['p95']:.1f} s | {r['p99']:.1f} s | "
              f"{r['max']:.1f} s | {r['stored']:,} / {r['expected']:,} | "
              f"{r['per_story']:.2f} ({r['window']:,}) |")  # fmt: skip
    return 0 if all(r and r["goal"] for _, r in results) else 1


def run(args: argparse.Namespace, every_arg: str, push: bool) -> dict[str, Any] | None:
    """One simulation; prints its report and returns its numbers (None: nothing stored)."""
    base = args.keep or Path(tempfile.mkdtemp(prefix="ingest-freshness-"))
    work = base / (every_arg + ("-push" if push else "")) if args.compare else base
    work.mkdir(parents=True, exist_ok=True)
    db = args.db or f"sqlite:///{work / 'bench.sqlite3'}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    warmup = max(args.warmup, 40.0) if push else args.warmup
    t0 = time.time()
    start = float(int(t0 + warmup))  # whole seconds, as pubDates: no story straddles it
    feeds = plan(args.sources, start, args.publish, args.scale, args.rate, args.seed,
                 every_arg, args.cadence, parse_duration(args.max_every))  # fmt: skip
    lab = Lab(feeds)
    lab.window = (start, start + args.publish)
    serve_port = _free_port() if push else 0
    if push:
        lab.hub = PushHub(lab, f"http://127.0.0.1:{port}")
    server.RequestHandlerClass = make_handler(lab)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lines = ["settings:", "  per_host: 64  # every feed is on one loopback host here"]
    if push:
        lines += [f"  websub_callback: http://127.0.0.1:{serve_port}",
                  f"  push_every: {6 * 3600 / args.scale:g}s"]  # fmt: skip
    if every_arg == "auto":
        lines += ["defaults:", "  every: auto", f"  min_every: {MIN_EVERY / args.scale:g}s",
                  f"  max_every: {parse_duration(args.max_every) / args.scale:g}s"]  # fmt: skip
    lines.append("sources:")
    for f in feeds:
        url = f"http://127.0.0.1:{port}/{f.key}.xml"
        every = "" if every_arg == "auto" else f", every: {f.every:g}s"
        lines.append(f"  - {{key: {f.key}, name: {f.key}, url: '{url}'{every}}}")
    sources = work / "sources.yaml"
    sources.write_text("\n".join(lines) + "\n")
    expected = sum(1 for f in feeds for t in f.times if t >= start)
    longest = max(f.every for f in feeds)
    shown = "every: auto" if every_arg == "auto" else \
        f"intervals {sorted(Counter(f'{f.every:g}s' for f in feeds).items())}"  # fmt: skip
    print(f"{args.sources} sources on 127.0.0.1:{port}; {shown}; {args.cadence} cadence; "
          f"{'WebSub push; ' if push else ''}{expected} stories "
          f"over {args.publish:g}s after a {warmup:g}s warm-up; database {db}",
          flush=True)  # fmt: skip
    env = {**os.environ, "INGEST_ALLOW_NETWORKS": "127.0.0.0/8"}
    log = (work / "scheduler.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scheduler.py"), "--sources", str(sources), "--db", db],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
    serve = start_serve(db, serve_port, work, env) if push else None
    stop = threading.Event()
    if lab.hub is not None:
        threading.Thread(target=lab.hub.publish_until, daemon=True,
                         args=(start, start + args.publish, stop)).start()  # fmt: skip
    engine = create_engine(db)
    since = datetime.fromtimestamp(start, UTC)
    deadline = start + args.publish + longest * 1.1 + 60
    query = text(
        "SELECT source_key, published_at, first_seen_at FROM items "
        "WHERE date_source = 'published' AND published_at >= :since"
    )
    rows: list[tuple[str, datetime, datetime]] = []
    subscribed = None
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(2)
            if push and subscribed is None and time.time() >= start:
                with engine.connect() as c:
                    subscribed = c.execute(
                        text("SELECT count(*) FROM subscriptions WHERE state = 'active'")
                    ).scalar()
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
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=30)
        if lab.hub is not None:
            lab.hub.close()
        server.shutdown()
        server.server_close()
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(query, {"since": since})]  # type: ignore[misc]
    engine.dispose()
    return report(args, lab, feeds, rows, expected, t0, work, proc.returncode, subscribed)


Row = tuple[str, datetime, datetime]


def report(
    args: argparse.Namespace, lab: Lab, feeds: list[Feed], rows: list[Row], expected: int,
    t0: float, work: Path, rc: int | None, subscribed: int | None,
) -> dict[str, Any] | None:  # fmt: skip
    def aware(d: datetime | str) -> datetime:
        d = datetime.fromisoformat(d) if isinstance(d, str) else d
        return d if d.tzinfo else d.replace(tzinfo=UTC)

    every = {f.key: f.every for f in feeds}
    lags = [(k, (aware(seen) - aware(pub)).total_seconds()) for k, pub, seen in rows]
    values = [lag for _, lag in lags]
    over = [lag - every[k] for k, lag in lags]
    within = sum(1 for k, lag in lags if lag <= every[k] + 60)
    requests = lab.requests["200"] + lab.requests["304"] + lab.requests["hub"]
    elapsed = time.time() - t0
    print(f"ran {elapsed:.0f}s; scheduler exit {rc}; logs in {work}")
    if lab.hub is not None:
        print(f"hub: {subscribed} subscriptions active when publishing began; "
              f"{dict(sorted(lab.hub.counts.items()))}")  # fmt: skip
    if not values:
        print("no story stored: see the log")
        return None
    print(f"stories: {len(values)} stored of {expected} published ({expected - len(values)} "
          "never stored)")  # fmt: skip
    print(f"lag (s): p50 {quantile(values, 0.5):.1f}  p95 {quantile(values, 0.95):.1f}  "
          f"p99 {quantile(values, 0.99):.1f}  max {max(values):.1f}  "
          f"mean {statistics.fmean(values):.1f}")  # fmt: skip
    print(f"lag minus the source's interval (s): p50 {quantile(over, 0.5):.1f}  "
          f"p99 {quantile(over, 0.99):.1f}  max {max(over):.1f}")  # fmt: skip
    share = within / expected
    print(f"within interval + 60s: {within}/{expected} ({100 * share:.1f}%)")
    print(f"requests: {requests} ({lab.requests['200']} x 200, {lab.requests['304']} x 304, "
          f"{lab.requests['hub']} to the hub); "
          f"{requests / len(values):.1f} per new story")  # fmt: skip
    window = lab.requests["window"]
    print(f"requests while stories were published ({args.publish:g}s): "
          f"{window}; {window / max(expected, 1):.2f} per story published then")  # fmt: skip
    goal = quantile(over, 0.99) <= 60 and len(values) == expected
    if lab.hub is not None:
        goal = quantile(values, 0.99) < 10 and len(values) == expected
        print("goal (push: p99 lag < 10s, nothing lost):", "met" if goal else "NOT met")
    else:
        print("goal (p99 lag <= interval + 60s, nothing lost):", "met" if goal else "NOT met")
    return {
        "p50": quantile(values, 0.5), "p95": quantile(values, 0.95),
        "p99": quantile(values, 0.99), "max": max(values), "stored": len(values),
        "expected": expected, "window": window, "per_story": window / max(expected, 1),
        "goal": goal,
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
