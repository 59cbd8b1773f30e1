"""The WebSub side of benchmarks/freshness.py: a hub for the simulated feeds, and `ingest serve`.

One job: for `freshness.py --push`, be the hub every simulated feed advertises
(at /hub on the benchmark's own loopback server): take subscription requests
(202), verify each intent at the subscriber's callback (the challenge echoed,
retried for a few seconds while `ingest serve` starts), and, while stories are
being published, push each feed's new document to its subscriber the moment
a story appears, signed with `X-Hub-Signature: sha256=...` as the
Recommendation says.  It also starts `ingest serve` (the callback) as a real
process on another loopback port.  Not part of the test suite; nothing here
leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

import httpx

__all__ = ["PushHub", "start_serve"]


class _Feed(Protocol):
    key: str
    times: list[float]


class _Lab(Protocol):
    feeds: Any

    def visible(self, feed: Any, now: float) -> int: ...
    def body(self, feed: Any, n: int) -> bytes: ...


class PushHub:
    """The hub of the simulated feeds (see the module docstring)."""

    def __init__(self, lab: _Lab, base: str) -> None:
        self.lab = lab
        self.base = base  # http://127.0.0.1:PORT of the benchmark's server
        self.subscribers: dict[str, tuple[str, str]] = {}  # topic -> (callback, secret)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="push")

    def topic(self, key: str) -> str:
        return f"{self.base}/{key}.xml"

    def accept(self, body: bytes) -> int:
        """One subscription request (a form-encoded POST): 202, verified afterwards."""
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        with self.lock:
            self.counts[form.get("hub.mode", "?")] += 1
        if form.get("hub.mode") not in ("subscribe", "unsubscribe"):
            return 400
        self.pool.submit(self._verify, form)
        return 202

    def _verify(self, form: dict[str, str]) -> None:
        challenge = secrets.token_urlsafe(12)
        params = {"hub.mode": form["hub.mode"], "hub.topic": form.get("hub.topic", ""),
                  "hub.challenge": challenge, "hub.lease_seconds": "864000"}  # fmt: skip
        for _ in range(20):  # `ingest serve` may still be starting
            try:
                resp = httpx.get(form["hub.callback"], params=params, timeout=10)
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if resp.status_code == 200 and resp.text == challenge:
                with self.lock:
                    self.counts["verified"] += 1
                    if form["hub.mode"] == "subscribe":
                        self.subscribers[params["hub.topic"]] = (
                            form["hub.callback"], form.get("hub.secret", ""),
                        )  # fmt: skip
            return

    def publish_until(self, start: float, end: float, stop: threading.Event) -> None:
        """Push each story published in [start, end) at its moment (run in a thread)."""
        events = sorted(
            (t, key) for key, feed in self.lab.feeds.items() for t in feed.times if start <= t < end
        )
        for t, key in events:
            wait = t - time.time()
            if wait > 0 and stop.wait(wait):
                return
            self.pool.submit(self._push, key, t)

    def _push(self, key: str, t: float) -> None:
        with self.lock:
            target = self.subscribers.get(self.topic(key))
        if target is None:
            with self.lock:
                self.counts["not subscribed"] += 1
            return
        callback, secret = target
        feed = self.lab.feeds[key]
        body = self.lab.body(feed, self.lab.visible(feed, t))
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/rss+xml", "X-Hub-Signature": f"sha256={digest}"}
        try:
            status = httpx.post(callback, content=body, headers=headers, timeout=30).status_code
        except httpx.HTTPError:
            status = 0
        with self.lock:
            self.counts[f"push {status}"] += 1

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def start_serve(db: str, port: int, work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`ingest serve` on 127.0.0.1:`port` once the scheduler has created the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with engine.connect() as c:
                c.execute(text("SELECT version_num FROM alembic_version")).scalar()
            break
        except Exception:
            time.sleep(0.2)
    engine.dispose()
    log = (work / "serve.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from ingest.cli.main import main; sys.exit(main())",
         "serve", "--db", db, "--port", str(port), "--no-status"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
    )  # fmt: skip
