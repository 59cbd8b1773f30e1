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

import time

from feedlab_helpers import Lab, ingest, scalar

RUN_TIMEOUT = 300  # seconds for one `ingest run` over the corpus


def test_feedlab_round_trip(lab: Lab, db_url: str) -> None:
    feeds = 24
    lab.serve()
    expected = lab.gen(feeds=feeds, items=25)
    sources = str(lab.root / "sources.yaml")

    cold = ingest("run", "--sources", sources, "--db", db_url, timeout=RUN_TIMEOUT)
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert scalar(db_url, "SELECT count(*) FROM item_sources") == expected["feed_entries"]
    assert scalar(db_url, "SELECT count(*) FROM items WHERE url LIKE '%utm_%'") == 0
    # syndicated copies merged: some stories are carried by two feeds
    assert scalar(db_url, "SELECT count(*) FROM (SELECT item_id FROM item_sources "
                          "GROUP BY item_id HAVING count(*) > 1) x") > 0  # fmt: skip

    lab.stats(reset=True)
    updated_before = scalar(db_url, "SELECT count(*) FROM items WHERE updated_at > first_seen_at")
    warm = ingest("run", "--sources", sources, "--db", db_url, timeout=RUN_TIMEOUT)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    stats = lab.stats()  # the reset call itself counts as one 200
    assert stats["requests"] == feeds + 1
    assert stats["conditional_requests"] == feeds
    assert stats["status"] == {"304": feeds, "200": 1}
    assert "0 new stories, 0 updated" in warm.stdout
    assert scalar(db_url, "SELECT count(*) FROM items") == expected["unique_articles"]
    assert (
        scalar(db_url, "SELECT count(*) FROM items WHERE updated_at > first_seen_at")
        == updated_before
    )

    time.sleep(1.1)  # feedlab's Last-Modified has one-second resolution
    round1 = lab.gen(feeds=feeds, items=25, rnd=1)
    assert round1["unique_articles"] > expected["unique_articles"]
    third = ingest("run", "--sources", sources, "--db", db_url, timeout=RUN_TIMEOUT)
    assert third.returncode == 0, third.stdout + third.stderr
    assert scalar(db_url, "SELECT count(*) FROM items") == round1["unique_articles"]
    assert scalar(db_url, "SELECT count(*) FROM item_sources") == round1["feed_entries"]
    polls = scalar(db_url, "SELECT count(*) FROM fetches")
    assert polls == 3 * feeds
