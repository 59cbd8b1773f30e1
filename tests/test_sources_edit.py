"""`ingest add`, `ingest disable` and `ingest opml`: the editors' file edited from the command line.

One job: check that the edits keep every other byte of a commented sources.yaml (the
repository's own, diffed), are validated before anything is written (nothing written on
error), find a page's feed as `ingest try` does (a loopback FeedServer), skip duplicates
by canonical URL, and that OPML goes out and comes back (file-driven cases of real
readers' exports in tests/data/opml: Miniflux, FreshRSS, NewsBlur, nested folders,
missing titles, hostile or broken documents).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedserver import FeedServer
from ingest.cli.main import main
from ingest.config import load_config
from ingest.config.opml import OpmlError, read_opml

HERE = Path(__file__).parent
REPO_SOURCES = HERE.parent / "sources.yaml"
OPML = HERE / "data" / "opml"
FEED = (HERE / "data" / "feeds" / "wordpress-rss2.xml").read_bytes()
PAGE = """<!doctype html><html><head><title>A blog</title>
<link rel="alternate" type="application/rss+xml" title="A blog" href="/blog/feed.xml">
</head><body><p>Posts</p></body></html>"""


def _diff(before: str, after: str) -> list[str]:
    """The changed lines of a unified diff (+ and -), without the headers."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [x for x in lines if x[:1] in "+-" and not x.startswith(("+++", "---"))]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "sources.yaml"
    shutil.copyfile(REPO_SOURCES, copy)
    return copy


@pytest.fixture
def blog(feed_server: FeedServer) -> FeedServer:
    feed_server.put("/blog/", PAGE, "text/html; charset=utf-8")
    feed_server.put("/blog/feed.xml", FEED, "application/rss+xml")
    return feed_server


# -- ingest add ---------------------------------------------------------------------


def test_add_finds_the_feed_of_a_page_and_appends_a_commented_block(
    blog: FeedServer, repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    page = blog.url("/blog/")
    code = main(["add", page, "--sources", str(repo_copy), "--section", "blogs",
                 "--name", "A blog: with a colon"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 entries: 3 would be stored" in out  # what it would give, shown first
    assert f"feed found at {blog.url('/blog/feed.xml')}" in out
    changed = _diff(before, repo_copy.read_text())
    assert all(line.startswith("+") for line in changed), changed  # nothing else touched
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert changed == [
        "+",
        "+  - key: 127-0-0-1-blog",
        '+    name: "A blog: with a colon"',
        f"+    # added with `ingest add` on {today}: 3 entries found (the feed of {page})",
        f"+    url: {blog.url('/blog/feed.xml')}",
        "+    section: blogs",
    ]
    added = load_config(repo_copy).get("127-0-0-1-blog")
    assert added is not None and added.url == blog.url("/blog/feed.xml")
    assert added.name == "A blog: with a colon" and added.section == "blogs"

    # the same feed again, by another spelling of its address: refused, nothing written
    after = repo_copy.read_text()
    again = blog.url("/blog/feed.xml?utm_source=newsletter#top")
    assert main(["add", again, "--sources", str(repo_copy)]) == 1
    assert "already in" in capsys.readouterr().err
    assert repo_copy.read_text() == after


def test_add_writes_nothing_when_the_result_would_be_invalid(
    blog: FeedServer, repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    url = blog.url("/blog/feed.xml")
    for extra, words in [(["--key", "Not A Key"], "key"), (["--key", "ted-talks"], "ted-talks"),
                         (["--section", "Blog Posts"], "section")]:  # fmt: skip
        assert main(["add", url, "--sources", str(repo_copy), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{repo_copy}:" in err and words in err and "nothing was run" in err
        assert repo_copy.read_text() == before
    assert not list(repo_copy.parent.glob(".sources-*"))  # no temporary file left behind


def test_add_a_page_without_a_feed_says_what_to_do_and_writes_nothing(
    feed_server: FeedServer, repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.put("/plain/", "<html><body><p>No feed here</p></body></html>", "text/html")
    before = repo_copy.read_text()
    assert main(["add", feed_server.url("/plain/"), "--sources", str(repo_copy)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAIL") and "--select" in err
    assert repo_copy.read_text() == before


def test_add_dry_run_shows_the_block_and_writes_nothing(
    blog: FeedServer, repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    url = blog.url("/blog/feed.xml")
    assert main(["add", url, "--sources", str(repo_copy), "--key", "a-blog", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing written" in out and "- key: a-blog" in out and f"url: {url}" in out
    assert repo_copy.read_text() == before


# -- ingest disable ---------------------------------------------------------------


def test_disable_adds_one_line_or_changes_one_value(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    assert main(["disable", "ted-talks", "--sources", str(repo_copy)]) == 0
    assert "no longer polled" in capsys.readouterr().out
    assert _diff(before, repo_copy.read_text()) == ["+    enabled: false"]
    ted = load_config(repo_copy).get("ted-talks")
    assert ted is not None and not ted.enabled
    # a source that says `enabled: true`: the value changes, the comment stays
    text = repo_copy.read_text().replace(
        "    section: blogs\n    every: 1h\n",
        "    section: blogs\n    enabled: true # on\n    every: 1h\n", 1,
    )  # fmt: skip
    repo_copy.write_text(text)
    assert main(["disable", "nhs-england-blog", "--sources", str(repo_copy)]) == 0
    assert _diff(text, repo_copy.read_text()) == [
        "-    enabled: true # on",
        "+    enabled: false # on",
    ]
    capsys.readouterr()
    assert main(["disable", "nhs-england-blog", "--sources", str(repo_copy)]) == 0
    assert "already disabled" in capsys.readouterr().out
    assert main(["disable", "nope", "--sources", str(repo_copy)]) == 1
    assert "no source named nope" in capsys.readouterr().err


# -- OPML -------------------------------------------------------------------------


def _cases() -> list[str]:
    return sorted(p.stem for p in OPML.glob("*.opml"))


def test_every_opml_case_has_its_expectation() -> None:
    assert len(_cases()) >= 6
    for case in _cases():
        assert (OPML / f"{case}.expected.json").is_file(), case


@pytest.mark.parametrize("case", _cases())
def test_read_opml(case: str) -> None:
    expected = json.loads((OPML / f"{case}.expected.json").read_text())
    content = (OPML / f"{case}.opml").read_bytes()
    if "error" in expected:
        with pytest.raises(OpmlError, match=re.escape(expected["error"])):
            read_opml(content)
        return
    assert [asdict(f) for f in read_opml(content)] == expected["feeds"]


def test_opml_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exported = tmp_path / "out.opml"
    assert main(["opml", "export", "--sources", str(REPO_SOURCES), "--out", str(exported)]) == 0
    repo = load_config(REPO_SOURCES)
    fresh = tmp_path / "sources.yaml"
    fresh.write_text(
        "# a new site's file\nsources:\n"
        "  - key: picks # the editors' own\n    name: Picks\n    kind: curated\n"
        "    items:\n      - title: One\n        url: https://example.org/one\n"
    )
    capsys.readouterr()
    assert main(["opml", "import", str(exported), "--sources", str(fresh)]) == 0
    out = capsys.readouterr().out
    wanted = [s for s in repo.sources if s.kind == "feed"]
    assert f"added {len(wanted)} to" in out
    got = load_config(fresh)
    imported = [s for s in got.sources if s.key != "picks"]
    assert [(s.url, s.name, s.section) for s in imported] == [
        (s.url, s.name, s.section) for s in sorted(wanted, key=_page_order(repo))
    ]
    # again: every feed is already there, and the file is not touched
    before = fresh.read_text()
    assert main(["opml", "import", str(exported), "--sources", str(fresh)]) == 0
    assert f"added 0 to {fresh}, skipped {len(wanted)} already there" in capsys.readouterr().out
    assert fresh.read_text() == before


def _page_order(config: object) -> object:
    from ingest.config import Config

    assert isinstance(config, Config)
    order = [p.key for p in config.site.sections]
    return lambda s: order.index(s.section) if s.section in order else len(order)


def test_opml_import_of_a_readers_export_into_the_repository_file(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    assert main(["opml", "import", str(OPML / "miniflux.opml"), "--sources", str(repo_copy)]) == 0
    out = capsys.readouterr().out
    assert "3 feeds; added 2" in out and "skipped 1 already there" in out
    assert "http://www.england.nhs.uk/blog/feed/: already there as nhs-england-blog" in out
    changed = _diff(before, repo_copy.read_text())
    assert all(line.startswith("+") for line in changed), changed
    config = load_config(repo_copy)
    notes = config.get("policy-notes-example-org")
    diary = config.get("wardsister-example-net")
    assert notes is not None and notes.section == "all" and notes.name == "Health Policy Notes"
    assert diary is not None and diary.section == "blogs"  # the folder named like a heading

    # FreshRSS: one new section name given for all, a title-less feed named by its host
    assert main(["opml", "import", str(OPML / "freshrss.opml"), "--sources", str(repo_copy),
                 "--section", "latest"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "3 feeds; added 2" in out and "already there as bmj-leader-current" in out
    untitled = load_config(repo_copy).get("untitled-example-com")
    assert untitled is not None and untitled.name == "untitled.example.com"


def test_opml_import_of_a_broken_file_writes_nothing(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = repo_copy.read_text()
    assert main(["opml", "import", str(OPML / "entity_bomb.opml"),
                 "--sources", str(repo_copy)]) == 1  # fmt: skip
    assert "DTD" in capsys.readouterr().err
    assert repo_copy.read_text() == before
