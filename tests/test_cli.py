"""The `ingest` command end to end, in-process: check, run, latest, status and exit codes.

Runs `ingest.cli.main` against the project's loopback FeedServer and a real
SQLite file (the PostgreSQL path of the same code is covered by
test_feedlab.py and test_store.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import write_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.model import STORY_FIELDS

DATA = Path(__file__).parent / "data" / "feeds"


def source_block(key: str, url: str, section: str = "latest") -> str:
    return f"  - key: {key}\n    name: Source {key}\n    url: {url}\n    section: {section}\n"


@pytest.fixture
def served(feed_server: FeedServer, tmp_path: Path) -> tuple[FeedServer, str]:
    feed_server.put("/blog.xml", (DATA / "wordpress-rss2.xml").read_bytes())
    feed_server.put("/talks.xml", (DATA / "ted-podcast.xml").read_bytes())
    feed_server.error("/broken.xml", 500, "oops")
    feed_server.put("/notafeed.xml", b"<html><body>We moved!</body></html>", "text/html")
    text = "sources:\n" + "".join(
        [
            source_block("blog", feed_server.url("/blog.xml"), "blogs"),
            source_block("talks", feed_server.url("/talks.xml"), "videos"),
            source_block("broken", feed_server.url("/broken.xml")),
            source_block("notafeed", feed_server.url("/notafeed.xml")),
        ]
    )
    return feed_server, write_sources(tmp_path, text)


def test_check_accepts_a_good_file(
    served: tuple[FeedServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, sources = served
    assert main(["check", "--sources", sources]) == 0
    assert "4 sources (4 enabled), no problems" in capsys.readouterr().out


def test_check_names_every_mistake_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(
        tmp_path,
        "sources:\n"
        "  - key: one\n"
        "    name: One\n"
        "    url: https://example.org/feed\n"
        "    evry: 30m\n"  # line 5: misspelled field
        "  - key: two\n"
        "    name: Two\n"
        "    url: not a url\n"  # line 8: malformed URL
        "    every: 5x\n"  # line 9: bad interval
        "  - key: one\n"  # line 10: duplicate key
        "    name: Again\n"
        "    url: https://example.org/other\n"
        "    kind: podcast\n",  # line 13: unknown kind
    )
    assert main(["check", "--sources", sources]) == 2
    err = capsys.readouterr().err
    for line, words in [(5, "did you mean 'every'"), (8, "url"), (9, "5x"), (10, "one"),
                        (13, "podcast")]:  # fmt: skip
        hits = [x for x in err.splitlines() if x.startswith(f"{sources}:{line}: ")]
        assert hits and words in hits[0], (line, err)


def test_check_refuses_a_bad_websub_verify_timeout_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "sources:\n  - {key: a, name: A, url: 'https://example.org/feed'}\n"
    sources = write_sources(tmp_path, "settings:\n  websub_verify_timeout: 2h\n" + source)
    assert main(["check", "--sources", sources]) == 2
    err = capsys.readouterr().err
    assert (
        f"{sources}:2: settings: websub_verify_timeout must be at most an hour (1h), not '2h'"
        in err
    )
    sources = write_sources(tmp_path, "settings:\n  websub_verify_timeout: 20m\n" + source)
    assert main(["check", "--sources", sources]) == 0
    assert "1 source (1 enabled), no problems" in capsys.readouterr().out


def test_run_stores_good_sources_and_reports_each_failure(
    served: tuple[FeedServer, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, sources = served
    db = f"sqlite:///{tmp_path / 'ingest.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 1  # some failed
    out = capsys.readouterr().out
    lines = {line.split()[1]: line for line in out.splitlines() if line[:4] in ("ok  ", "FAIL")}
    assert lines["blog"].startswith("ok") and "new" in lines["blog"]
    assert lines["talks"].startswith("ok")
    assert lines["broken"].startswith("FAIL") and "HTTP 500" in lines["broken"]
    assert lines["notafeed"].startswith("FAIL") and "not a feed" in lines["notafeed"]
    assert "4 sources: 2 ok, 2 failed" in out

    assert main(["latest", "--db", db, "--limit", "100", "--format", "json"]) == 0
    stories = json.loads(capsys.readouterr().out)
    assert stories and {tuple(s) for s in stories} == {STORY_FIELDS}
    assert {s["section"] for s in stories} == {"blogs", "videos"}
    assert all("utm_" not in s["url"] for s in stories)
    dates = [s["published_at"] for s in stories]
    assert dates == sorted(dates, reverse=True)
    assert all(d.endswith("+00:00") for d in dates)
    assert all(s["sources"] == [s["source"]] for s in stories)

    assert main(["latest", "--db", db, "--section", "videos", "--format", "json"]) == 0
    assert {s["source"] for s in json.loads(capsys.readouterr().out)} == {"talks"}

    assert main(["status", "--db", db, "--format", "json"]) == 0
    status = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert status["broken"]["consecutive_failures"] == 1
    assert status["broken"]["last_status"] == 500 and "500" in status["broken"]["last_error"]
    assert status["blog"]["consecutive_failures"] == 0 and status["blog"]["items"] > 0
    assert status["blog"]["next_due_at"] > status["blog"]["last_attempt_at"]

    # polled again: the good feeds answer 304 and nothing is written twice
    server.clear()
    assert main(["run", "--sources", sources, "--db", db, "--format", "json"]) == 1
    polls = {p["source"]: p for p in map(json.loads, capsys.readouterr().out.splitlines())}
    assert polls["blog"]["not_modified"] and polls["talks"]["not_modified"]
    assert server.last("/blog.xml").header("if-none-match")
    assert main(["status", "--db", db, "--format", "json"]) == 0
    again = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert again["broken"]["consecutive_failures"] == 2
    assert again["blog"]["items"] == status["blog"]["items"]

    assert main(["status", "--db", db]) == 0  # the table for people
    table = capsys.readouterr().out
    assert "broken" in table and "HTTP 500" in table


def test_run_only_and_the_database_from_the_environment(
    served: tuple[FeedServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _, sources = served
    monkeypatch.setenv("INGEST_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite3'}")
    assert main(["run", "--sources", sources, "--only", "blog"]) == 0
    assert "1 source: 1 ok, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "env.sqlite3").exists()
    assert main(["run", "--sources", sources, "--only", "nope"]) == 2
    assert "no source named nope" in capsys.readouterr().err


def test_an_invalid_sources_file_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = write_sources(tmp_path, "sources:\n  - key: Bad Key\n    name: x\n")
    db = tmp_path / "never.sqlite3"
    assert main(["run", "--sources", sources, "--db", f"sqlite:///{db}"]) == 2
    assert "nothing was run" in capsys.readouterr().err
    assert not db.exists()


def test_latest_on_an_empty_database_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.store import Store

    db = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    Store.open(db).close()  # ingest's schema, no stories yet
    assert main(["latest", "--db", db]) == 0
    assert "ingest run" in capsys.readouterr().out
