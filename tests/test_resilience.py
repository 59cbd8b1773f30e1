"""Crashes, concurrency and faulty servers, end to end: the real `ingest` process against feedlab.

- Crash safety: `ingest run` killed with SIGKILL while it is writing leaves a consistent
  SQLite database (every source's stories all there or not at all, integrity check ok),
  and the next run completes with exactly the stories of an uninterrupted run (the dead
  run's leases are taken over at once, its parse workers do not outlive it).
- Concurrency: two `ingest run` processes at once over the same 160 feeds and database
  (SQLite and PostgreSQL) both exit 0, store each story once, never say "database is
  locked".
- Fault matrix: feedlab's /fault/ paths (429, 500, 503 with Retry-After, hang, trickle, a
  body past the cap, garbage, reset mid-headers, redirect chains and loops, a 301 move)
  beside good feeds: every faulty source ends as a clear per-source error in `ingest
  status --format json` (or a success, for a short chain and a move), and the run finishes
  within its timeouts.

Skipped where ../shared/feedlab is missing.  The feedlab server listens on 127.0.0.1-4 only.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from feedlab_helpers import HOSTS, Lab, ingest, scalar, start


def stories(url: str) -> set[tuple[str, str]]:
    """(canonical URL, source key) of every story carried: what a run stored."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT i.canonical_url, x.source_key FROM item_sources x "
                    "JOIN items i ON i.id = x.item_id"
                )
            )
            return {(r[0], r[1]) for r in rows}
    finally:
        engine.dispose()


def sqlite_items(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.Error:  # not created or migrated yet
        return 0


def children_of(pid: int) -> list[int]:
    """Every descendant pid of `pid` (from /proc), so a test can check none is left."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- crash safety -------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_exactly_the_uninterrupted_stories(
    lab: Lab, tmp_path: Path
) -> None:
    feeds, items = 160, 10
    expected = lab.gen(feeds=feeds, items=items)
    lab.serve(delay_ms=200)  # 160 feeds at 8-way, 0.2 s each: a run of about 4 s
    sources = lab.sources("  concurrency: 8\n  per_host: 2\n")
    reference_db, crashed_db = tmp_path / "reference.sqlite3", tmp_path / "crashed.sqlite3"
    reference_url, crashed_url = f"sqlite:///{reference_db}", f"sqlite:///{crashed_db}"

    reference = start("run", "--sources", sources, "--db", reference_url)
    victim = start("run", "--sources", sources, "--db", crashed_url)
    deadline = time.monotonic() + 60
    while sqlite_items(crashed_db) == 0:  # wait until it is storing stories
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(random.uniform(0.2, 1.5))
    descendants = children_of(victim.pid)
    assert descendants, "the run has parse workers"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    out, err = reference.communicate(timeout=120)
    assert reference.returncode == 0, out + err

    # the killed run's parse workers die with it
    deadline = time.monotonic() + 10
    while any(alive(p) for p in descendants) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in descendants if alive(p)], "parse workers outlived a killed run"

    # what the killed run left: consistent, every source all-or-nothing
    with sqlite3.connect(crashed_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_source = conn.execute(
            "SELECT s.key, s.last_success_at IS NOT NULL, count(x.item_id) FROM sources s "
            "LEFT JOIN item_sources x ON x.source_key = s.key GROUP BY s.key"
        ).fetchall()
    stored = {key: n for key, ok, n in per_source if ok}
    assert 0 < len(stored) < feeds, "killed mid-way: some sources done, some not"
    assert set(stored.values()) == {items}
    assert all(n == 0 for _, ok, n in per_source if not ok)

    rerun = ingest("run", "--sources", sources, "--db", crashed_url)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "skip" not in rerun.stdout  # the dead run's leases were taken over
    with sqlite3.connect(crashed_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert stories(crashed_url) == stories(reference_url)
    assert scalar(crashed_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert scalar(crashed_url, "SELECT count(*) FROM item_sources") == expected["feed_entries"]


# -- two runs at once -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_runs_store_each_story_once(lab: Lab, db_url: str) -> None:
    expected = lab.gen(feeds=160, items=10)
    lab.serve(delay_ms=20)
    sources = lab.sources("  concurrency: 16\n  per_host: 4\n")
    runs = [start("run", "--sources", sources, "--db", db_url) for _ in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out + err
        assert "locked" not in out + err and "Traceback" not in err
    polled = sum(o.count("\nok ") + o.startswith("ok ") for o, _ in outputs)
    skipped = sum(o.count("skip ") for o, _ in outputs)
    assert polled + skipped == 2 * 160 and polled >= 160
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert scalar(db_url, "SELECT count(*) FROM item_sources") == expected["feed_entries"]
    assert scalar(db_url, "SELECT count(*) FROM fetches") == polled
    # and once more, all conditional: nothing new, nothing twice
    again = ingest("run", "--sources", sources, "--db", db_url)
    assert again.returncode == 0 and "0 new stories, 0 updated" in again.stdout
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]


# -- the fault matrix ---------------------------------------------------------------------

FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    # key: (path, what `ingest status --format json` must show)
    "f-429": ("/fault/status/429/x.xml", {"kind": "http", "status": 429, "error": "HTTP 429"}),
    "f-500": ("/fault/status/500/x.xml", {"kind": "http", "status": 500, "error": "HTTP 500"}),
    "f-503": ("/fault/status/503/x.xml", {"kind": "http", "status": 503, "error": "HTTP 503"}),
    "f-hang": ("/fault/hang/x.xml", {"kind": "timeout", "error": "no complete answer within"}),
    "f-slow": (
        "/fault/slow/30/feeds/f00000.xml",
        {"kind": "timeout", "error": "no complete answer within"},
    ),
    "f-huge": ("/fault/huge/200/x.xml", {"kind": "too_large", "error": "byte cap"}),
    "f-garbage": ("/fault/garbage/x.xml", {"kind": "parse", "error": "not a feed"}),
    "f-reset": ("/fault/reset/x.xml", {"kind": "network", "error": "127.0.0.1"}),
    "f-chain": ("/fault/redirect/3/feeds/f00001.xml", {"ok": True, "status": 200}),
    "f-long-chain": (
        "/fault/redirect/9/feeds/f00001.xml",
        {"kind": "http", "error": "more than 5 redirects"},
    ),
    "f-loop": ("/fault/loop/x.xml", {"kind": "http", "error": "redirect loop"}),
    "f-moved": ("/fault/moved/feeds/f00002.xml", {"ok": True, "status": 200, "moved": True}),
}


@pytest.mark.slow
def test_fault_matrix_every_fault_is_a_clear_per_source_outcome(lab: Lab, sqlite_url: str) -> None:
    expected = lab.gen(feeds=12, items=10)
    # A 429 (and a 503 with Retry-After) cools its whole host down: a poll of that host
    # that starts after the answer came is not sent.  Each of those two faults has a host
    # of its own, so that no other source's outcome depends on when its poll started.
    lab.serve(hosts=HOSTS + 2)
    own = {"f-429": HOSTS + 1, "f-503": HOSTS + 2}
    extra = "".join(
        f"  - key: {key}\n    name: {key}\n    url: {lab.url(path, own.get(key, 1))}\n"
        f"    timeout: 2s\n    max_body: 2MiB\n"
        for key, (path, _) in FAULTS.items()
    )
    # per_host: every poll goes at once; none waits behind another on its host
    sources = lab.sources("  max_redirects: 5\n  per_host: 64\n", extra)

    started = time.monotonic()
    run = ingest("run", "--sources", sources, "--db", sqlite_url, timeout=60)
    elapsed = time.monotonic() - started
    assert run.returncode == 1, run.stdout + run.stderr  # some failed
    assert elapsed < 15, f"the run took {elapsed:.1f}s: a fault stalled it"
    assert "Traceback" not in run.stderr

    status = ingest("status", "--db", sqlite_url, "--sources", sources, "--format", "json")
    assert status.returncode == 0, status.stderr
    rows = {r["key"]: r for r in json.loads(status.stdout)}
    for key, (_path, want) in FAULTS.items():
        row = rows[key]
        what = f"{key}: {row}"
        if want.get("ok"):
            assert row["last_error"] is None and row["consecutive_failures"] == 0, what
            assert row["last_status"] == want["status"], what
            assert (row["moved_to"] is not None) == bool(want.get("moved")), what
        else:
            assert row["last_error_kind"] == want["kind"], what
            assert want["error"] in row["last_error"], what
            assert row["consecutive_failures"] == 1, what
            if "status" in want:
                assert row["last_status"] == want["status"], what
    assert rows["f-moved"]["moved_to"] == lab.url("/feeds/f00002.xml")
    for key in ("f-429", "f-503"):  # Retry-After: 120 is obeyed
        assert rows[key]["retry_after_until"] is not None, rows[key]
    good = [k for k in rows if k.startswith("f0")]
    assert len(good) == 12 and all(rows[k]["last_error"] is None for k in good)
    assert scalar(sqlite_url, "SELECT count(*) FROM items") == expected["unique_articles"]
