"""`ingest try`: one source, fetched once for real, shown, and never stored.

One job: check what an editor sees when tuning a source (by key from
sources.yaml, or by URL with `--kind` and `--select`): every entry, whether
it would be stored and why the filters (include, exclude, max_age) would drop
it, discovery and curated sources as in a real poll, a failed fetch or parse
with the message a poll records and exit 1, bad arguments with exit 2, and
no database at all (the SQLite file is never created).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import status_json
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.runtime.trial import source_for_url

DATA = Path(__file__).parent / "data"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "never.sqlite3"


def _sources(tmp_path: Path, body: str) -> str:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + body)
    return str(path)


def _try(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["try", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_try_a_key_shows_what_would_be_stored_and_why_the_rest_is_dropped(
    feed_server: FeedServer, tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/blog.xml", (DATA / "feeds" / "wordpress-rss2.xml").read_bytes())
    sources = _sources(
        tmp_path,
        f"  - key: blog\n    name: Blog\n    url: {feed_server.url('/blog.xml')}\n"
        "    include: [compassionate, coaching]\n    exclude: [podcast]\n",
    )
    code, out, _ = _try(capsys, "blog", "--sources", sources, "--db", f"sqlite:///{db}",
                        "--format", "json")  # fmt: skip
    assert code == 0
    trial = json.loads(out)
    assert trial["ok"] and trial["status"] == 200 and trial["source"] == "blog"
    assert trial["url"] == feed_server.url("/blog.xml")
    verdicts = {e["title"]: (e["stored"], e["dropped"]) for e in trial["entries"]}
    assert len(verdicts) == 3
    assert sum(stored for stored, _ in verdicts.values()) == 1
    reasons = sorted(str(why) for stored, why in verdicts.values() if not stored)
    assert reasons == ["mentions 'Podcast' (exclude)", "mentions none of the include words"]
    assert not db.exists()

    code, out, _ = _try(capsys, "blog", "--sources", sources, "--db", f"sqlite:///{db}")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(f"blog {feed_server.url('/blog.xml')}: HTTP 200, 3 entries: ")
    assert "1 would be stored, 2 dropped by filters" in first and "nothing was stored" in first
    assert "mentions none of the include words" in out
    assert not db.exists()
    assert feed_server.count("/blog.xml") == 2
    assert feed_server.last("/blog.xml").header("if-none-match") is None  # no state: no database


def test_try_a_url_with_selectors(
    feed_server: FeedServer, tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/latest", (DATA / "pages" / "bmj-latest.html").read_bytes(), "text/html")
    code, out, _ = _try(
        capsys, feed_server.url("/latest"),
        "--select", "item=section.latest-news ul.latest > li",
        "--select", "title=.highwire-cite-title",
        "--select", "link=a.highwire-cite-linked-title@href",
        "--select", "date=.highwire-cite-metadata-date",
        "--db", f"sqlite:///{db}", "--sources", str(tmp_path / "absent.yaml"), "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    trial = json.loads(out)
    assert trial["source"] == "try" and len(trial["entries"]) == 8
    first = trial["entries"][0]
    assert first["url"] == feed_server.url("/content/early/2026/03/12/leader-2025-001342")
    assert first["title"].startswith("A Dutchman in London")
    assert first["published_at"] == "2026-03-12T00:00:00+00:00" and first["stored"]
    assert not db.exists()

    # a selector that finds nothing is the poll's own message, exit 1
    code, out, err = _try(
        capsys, feed_server.url("/latest"), "--select", "item=ul.gone > li",
        "--select", "title=a", "--select", "link=a@href", "--db", f"sqlite:///{db}",
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "selector 'item: ul.gone > li' matched nothing on the page" in err
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select", "item"], "write field=css"),
        (["--select", "item=li", "--select", "title=a"], "select is missing 'link'"),
        (["--select", "item=li", "--select", "title=a", "--select", "link=a["],
         "not a valid CSS"),
        (["--select", "teaser=p", "--select", "item=li", "--select", "title=a",
          "--select", "link=a@href"], "unknown field 'teaser'"),
        (["--kind", "page"], "kind: page needs a 'select:' block"),
    ],
)  # fmt: skip
def test_bad_arguments_for_a_url_are_usage_errors(
    args: list[str], message: str, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _try(capsys, "https://example.org/news", *args, "--db", f"sqlite:///{db}")
    assert code == 2 and message in err, err
    assert not db.exists()


def test_source_for_url_makes_a_feed_unless_told_otherwise() -> None:
    feed = source_for_url("https://example.org/feed.xml")
    assert (feed.key, feed.kind, feed.name, feed.select) == ("try", "feed", "example.org", ())
    page = source_for_url("https://example.org/x", None, ["item=li", "title=a", "link=a@href"])
    assert page.kind == "page" and dict(page.select)["link"] == "a@href"
    with pytest.raises(ValueError, match="not a web address"):
        source_for_url("ftp://example.org/feed")


def test_a_failed_fetch_says_what_a_poll_would_record(
    feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.error("/broken.xml", 503, "down")
    feed_server.put("/notafeed", b"Service Unavailable", "text/plain")
    sources = _sources(
        tmp_path,
        f"  - key: broken\n    name: B\n    url: {feed_server.url('/broken.xml')}\n"
        f"  - key: notafeed\n    name: N\n    url: {feed_server.url('/notafeed')}\n",
    )
    db = f"sqlite:///{tmp_path / 'real.sqlite3'}"
    assert main(["run", "--sources", sources, "--db", db]) == 1
    recorded = {key: r["last_error"] for key, r in status_json(db, capsys).items()}
    for key in ("broken", "notafeed"):
        code, out, err = _try(capsys, key, "--sources", sources)
        assert code == 1 and out == ""
        assert err.strip().endswith(f": {recorded[key]}"), (err, recorded[key])
    assert "FAIL  broken HTTP 503: HTTP 503" in _try(capsys, "broken", "--sources", sources)[2]
    code, out, _ = _try(capsys, "broken", "--sources", sources, "--format", "json")
    trial = json.loads(out)
    assert code == 1 and not trial["ok"] and trial["status"] == 503
    assert trial["error"] == recorded["broken"] and trial["error_kind"] == "http"


def test_try_shows_max_age_discovery_and_curated_sources(
    feed_server: FeedServer, tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = ('<!doctype html><html><head><link rel="alternate" type="application/rss+xml" '
            'href="/talks.xml"></head></html>')  # fmt: skip
    feed_server.put("/talks", page, "text/html")
    feed_server.put("/talks.xml", (DATA / "feeds" / "ted-podcast.xml").read_bytes())
    sources = _sources(
        tmp_path,
        f"  - key: talks\n    name: Talks\n    url: {feed_server.url('/talks')}\n"
        "    section: videos\n    max_age: 1d\n"
        "  - key: picks\n    name: Picks\n    kind: curated\n    items:\n"
        "      - title: One pick\n        url: https://example.org/one\n",
    )
    code, out, _ = _try(capsys, "talks", "--sources", sources, "--db", f"sqlite:///{db}")
    assert code == 0
    assert f"feed found at {feed_server.url('/talks.xml')}: update sources.yaml" in out
    assert "older than max_age 1d" in out  # the talks are from February 2026
    assert "video 14:32" in out  # kind and duration of the first talk

    code, out, _ = _try(capsys, "picks", "--sources", sources, "--format", "json")
    trial = json.loads(out)
    assert code == 0 and trial["status"] is None and trial["entries"][0]["title"] == "One pick"
    code, out, _ = _try(capsys, "picks", "--sources", sources)
    assert out.startswith("picks: no request (curated), 1 entry: 1 would be stored")
    assert not db.exists()

    code, _, err = _try(capsys, "nope", "--sources", sources)
    assert code == 2 and "no source named nope" in err
    code, _, err = _try(capsys, "talks", "--kind", "page", "--sources", sources)
    assert code == 2 and "are for a URL" in err
