"""End to end on the feedlab corpus: the `ingest` process against feedlab's loopback server.

The acceptance run of the core pipeline, small: generate a corpus with
../shared/feedlab/gen.py, serve it with serve.py over 127.0.0.1-4, run the real
`ingest run` command, and check the database holds exactly `unique_articles`
stories with no tracking parameters; a second run is all conditional 304s and
stores nothing; after `--round 1` exactly the new stories appear.  Runs on
SQLite and on PostgreSQL.  Skipped (saying so) where ../shared/feedlab is
missing, as on a laptop without the shared folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
FEEDLAB = Path(os.environ.get("INGEST_FEEDLAB", ROOT.parent / "shared" / "feedlab"))
HOSTS = 4

pytestmark = pytest.mark.skipif(
    not (FEEDLAB / "gen.py").exists(), reason=f"feedlab not found at {FEEDLAB}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    def gen(self, feeds: int, items: int, rnd: int = 0) -> dict[str, int]:
        out = subprocess.run(
            [sys.executable, str(FEEDLAB / "gen.py"), str(self.root), "--feeds", str(feeds),
             "--items", str(items), "--round", str(rnd), "--port", str(self.port),
             "--hosts", str(HOSTS)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        expected: dict[str, int] = json.loads(out.stdout)
        return expected

    def stats(self, reset: bool = False) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.port}/__stats" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            body: dict[str, object] = json.loads(r.read())
        return body


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    port = _free_port()
    lab = Lab(tmp_path / "corpus", port)
    lab.root.mkdir()
    server = subprocess.Popen(
        [sys.executable, str(FEEDLAB / "serve.py"), str(lab.root), "--port", str(port),
         "--hosts", str(HOSTS)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert "serving" in server.stdout.readline()
        yield lab
    finally:
        server.terminate()
        server.wait(timeout=10)


def ingest(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "ingest"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def scalar(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_feedlab_round_trip(lab: Lab, db_url: str) -> None:
    feeds = 24
    expected = lab.gen(feeds=feeds, items=25)
    sources = str(lab.root / "sources.yaml")

    cold = ingest("run", "--sources", sources, "--db", db_url)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert scalar(db_url, "SELECT count(*) FROM item_sources") == expected["feed_entries"]
    assert scalar(db_url, "SELECT count(*) FROM items WHERE url LIKE '%utm_%'") == 0
    # syndicated copies merged: some stories are carried by two feeds
    assert scalar(db_url, "SELECT count(*) FROM (SELECT item_id FROM item_sources "
                          "GROUP BY item_id HAVING count(*) > 1) x") > 0  # fmt: skip

    lab.stats(reset=True)
    updated_before = scalar(db_url, "SELECT count(*) FROM items WHERE updated_at > first_seen_at")
    warm = ingest("run", "--sources", sources, "--db", db_url)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    stats = lab.stats()  # the reset call itself counts as one 200
    assert stats["requests"] == feeds + 1
    assert stats["conditional_requests"] == feeds
    assert stats["status"] == {"304": feeds, "200": 1}
    assert "0 new, 0 updated" in warm.stdout
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert (
        scalar(db_url, "SELECT count(*) FROM items WHERE updated_at > first_seen_at")
        == updated_before
    )

    time.sleep(1.1)  # feedlab's Last-Modified has one-second resolution
    round1 = lab.gen(feeds=feeds, items=25, rnd=1)
    assert round1["unique_articles"] > expected["unique_articles"]
    third = ingest("run", "--sources", sources, "--db", db_url)
    assert third.returncode == 0, third.stdout + third.stderr
    assert scalar(db_url, "SELECT count(*) FROM items") == round1["unique_articles"]
    assert scalar(db_url, "SELECT count(*) FROM item_sources") == round1["feed_entries"]
    polls = scalar(db_url, "SELECT count(*) FROM fetches")
    assert polls == 3 * feeds
