"""`ingest refilter`: changed rules applied to stored stories, by hiding, never deleting.

One job: show on SQLite and PostgreSQL, with a loopback feed polled into the database,
that a rule added later hides the stories it turns away from `ingest latest`, the
`latest_items` view and the API's reads (the rows stay, with the rule that hid them),
that `--dry-run` writes nothing, that undoing the rule shows them again, and that a
story another source still keeps is never hidden.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedserver import FeedServer

NOW = datetime.now(UTC)


def entries(*titles: str, at: str = "n") -> str:
    """Entries titled `titles`, linking https://<at>.example/<first word of the title>."""
    return "".join(
        f"<item><title>{t}</title><link>https://{at}.example/{t.split()[0].lower()}</link>"
        f"<guid>{t}</guid><pubDate>{NOW:%a, %d %b %Y %H:%M:%S} GMT</pubDate></item>"
        for t in titles
    )


def feed(body: str) -> str:
    return f'<rss version="2.0"><channel><title>N</title>{body}</channel></rss>'


def write(path: Path, server: FeedServer, rules: str = "") -> None:
    path.write_text(
        "sources:\n"
        f"  - {{key: news, name: News, url: '{server.url('/news.xml')}'{rules}}}\n"
        f"  - {{key: digest, name: Digest, url: '{server.url('/digest.xml')}'}}\n"
    )


def shown(db_url: str) -> tuple[list[str], list[str], list[tuple[str, str | None]]]:
    from ingest.store import Store

    with Store.open(db_url) as store:
        latest = sorted(r["title"] for r in store.latest(limit=50))
    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            view = sorted(c.execute(text("SELECT title FROM latest_items")).scalars())
            rows = c.execute(text("SELECT title, hidden_by FROM items ORDER BY title")).all()
    finally:
        engine.dispose()
    return latest, view, [(r[0], r[1]) for r in rows]


def found(db_url: str, words: str) -> list[str]:
    from ingest.store import Store

    with Store.open(db_url) as store:
        return [r["title"] for r in store.latest(search=words, limit=50)]


def test_refilter_hides_and_shows_again(
    db_url: str, feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main

    feed_server.put(
        "/news.xml", feed(entries("Sponsored: conference", "Board news", "Shared story"))
    )
    # the digest carries the shared story too (the same link): one story, two sources
    feed_server.put("/digest.xml", feed(entries("Weekly digest", at="d") + entries("Shared story")))
    path = tmp_path / "sources.yaml"
    write(path, feed_server)
    assert main(["run", "--sources", str(path), "--db", db_url]) == 0
    all_four = ["Board news", "Shared story", "Sponsored: conference", "Weekly digest"]
    assert shown(db_url)[0] == all_four

    rule = ", rules: [{drop: {title: '^sponsored|^shared'}}]"
    write(path, feed_server, rule)
    capsys.readouterr()
    assert main(["refilter", "--sources", str(path), "--db", db_url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "hide" in out and "Sponsored: conference" in out and "nothing was written" in out
    assert shown(db_url)[0] == all_four

    assert main(["refilter", "--sources", str(path), "--db", db_url, "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "1 were hidden, 0 were shown again" in out
    latest, view, rows = shown(db_url)
    kept = ["Board news", "Shared story", "Weekly digest"]  # the digest still keeps the shared one
    assert latest == view == kept
    assert found(db_url, "conference") == []  # search does not find a hidden story
    assert ("Sponsored: conference", "news: rule drop title='^sponsored|^shared'") in rows
    assert len(rows) == 4  # nothing deleted

    assert main(["run", "--sources", str(path), "--db", db_url]) == 0  # a poll keeps it hidden
    assert shown(db_url)[0] == kept and len(shown(db_url)[2]) == 4

    write(path, feed_server)  # the rule undone
    capsys.readouterr()
    assert main(["refilter", "--sources", str(path), "--db", db_url]) == 0
    assert "0 were hidden, 1 were shown again" in capsys.readouterr().out
    latest, view, rows = shown(db_url)
    assert latest == view == all_four and all(why is None for _, why in rows)
    assert found(db_url, "conference") == ["Sponsored: conference"]  # indexed again
