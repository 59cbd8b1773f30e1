"""The simulated feeds of benchmarks/freshness.py: their schedules, bodies and server.

One job: `plan` draws each feed's interval and its stories' publication times
(a Poisson process, one rate for all or the rates of a real list), `Lab` holds
them and makes each feed's RSS body as of a moment (its newest 20 entries,
with the WebSub hub and self links when a `PushHub` is set), and
`make_handler` serves them like a real site (ETag, 304) and counts every
request.  It runs nothing by itself; freshness.py does.
"""

from __future__ import annotations

import bisect
import hashlib
import http.server
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from ingest.config.values import parse_duration

if TYPE_CHECKING:
    from freshness_push import PushHub

__all__ = [
    "CADENCES",
    "KEEP",
    "MAX_EVERY",
    "MIN_EVERY",
    "MIX",
    "Feed",
    "Lab",
    "make_handler",
    "plan",
]

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
        self.hub: PushHub | None = None  # --push: every feed advertises it

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
        links = ""
        if self.hub is not None:
            links = (
                f'<atom:link rel="hub" href="{self.hub.base}/hub"/>'
                f'<atom:link rel="self" href="{self.hub.topic(feed.key)}"/>'
            )
        data = (
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>{feed.key}</title><link>http://news.example/{feed.key}/</link>"
            f"{links}{entries}</channel></rss>"
        ).encode()
        self._cache[(feed.key, n)] = data
        return data


def make_handler(lab: Lab) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # the hub (--push): subscription requests
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.time()
            if lab.window[0] <= now < lab.window[1]:
                with lab.lock:
                    lab.requests["window"] += 1
            with lab.lock:
                lab.requests["hub"] += 1
            status = lab.hub.accept(body) if lab.hub is not None and self.path == "/hub" else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

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
