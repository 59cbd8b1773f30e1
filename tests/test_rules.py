"""Keep/drop rules (`rules:`): regular expressions on title, link, summary and author.

One job: show that an editor's rules, global under `defaults:` and per source, decide
which stories a source keeps, and that `ingest try` names the rule that dropped each
one.  Rules are read from sources.yaml text (so the checker's reading is what runs);
end to end, a loopback feed is polled into SQLite and PostgreSQL and only the kept
stories are stored.  The checker's messages for bad rules are file-driven cases of
tests/test_config.py (tests/data/config/rules_problems.yaml).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import Item, Rule, Settings
from ingest.stages.filters import verdicts, why_none_kept
from ingest.store.configs import source_from_json, source_json

NOW = datetime(2026, 12, 1, tzinfo=UTC)
RULES = """defaults:
  rules:
    - drop: {title: "^(sponsored|advertorial)\\\\b"}
sources:
  - key: news
    name: News
    url: URL
    rules:
      - keep: {title: "leader|board"}
      - keep: {author: "^NHS England$"}
      - drop: {link: "/podcasts?/", summary: "listen"}
"""


SPONSORED = r"rule drop title='^(sponsored|advertorial)\\b' (defaults)"


def story(
    title: str, url: str = "https://n.example/a", summary: str = "", author: str = ""
) -> Item:
    return Item(
        source_key="news", entry_key=f"id:{title}", canonical_url=url, url=url, title=title,
        summary=summary, published_at=NOW, date_source="published", author=author or None,
    )  # fmt: skip


def test_rules_are_read_in_order_defaults_first_and_survive_the_database_json() -> None:
    (source,) = parse_config(RULES.replace("URL", "https://n.example/feed"), "s.yaml").sources
    assert source.rules == (
        Rule("drop", (("title", r"^(sponsored|advertorial)\b"),), "defaults"),
        Rule("keep", (("title", "leader|board"),)),
        Rule("keep", (("author", "^NHS England$"),)),
        Rule("drop", (("link", "/podcasts?/"), ("summary", "listen"))),
    )
    assert source_from_json(source_json(source)) == replace(source, line=0)
    assert str(source.rules[0]) == r"drop title='^(sponsored|advertorial)\\b' (defaults)"


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (story("New board appointed"), None),
        (story("Sponsored: board games"), SPONSORED),
        (story("Weekly digest", author="NHS England"), None),  # the second keep rule
        (story("Weekly digest", author="NHS England Press"), "matches none of the keep rules"),
        (story("Leaders talk", "https://n.example/podcast/7", "Listen now"),
         "rule drop link='/podcasts?/' summary='listen'"),
        (story("Leaders talk", "https://n.example/podcast/7", "Read the notes"), None),  # AND
        (story("LEADERSHIP in the NHS"), None),  # searched, any case
    ],
)  # fmt: skip
def test_which_rule_decides(item: Item, why: str | None) -> None:
    (source,) = parse_config(RULES.replace("URL", "https://n.example/feed"), "s.yaml").sources
    ((_, verdict),) = verdicts(source, [item], now=NOW)
    assert verdict == why


def test_a_poll_note_says_the_rules_dropped_everything() -> None:
    (source,) = parse_config(RULES.replace("URL", "https://n.example/feed"), "s.yaml").sources
    note = why_none_kept(source, [story("Sponsored post"), story("Something else")], now=NOW)
    assert note == "2 entries, all dropped by include/exclude or rules"


FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>N</title>
<item><title>New board appointed</title><link>https://n.example/board</link><guid>1</guid></item>
<item><title>Sponsored: conference</title><link>https://n.example/sp</link><guid>2</guid></item>
<item><title>Leader podcast</title><link>https://n.example/podcast/3</link><guid>3</guid>
<description>Listen to the episode</description></item>
<item><title>Staff survey</title><link>https://n.example/survey</link><guid>4</guid></item>
</channel></rss>"""


def test_rules_decide_what_is_stored_and_try_names_each_rule(
    db_url: str, feed_server: FeedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    feed_server.put("/feed.xml", FEED)
    text = RULES.replace("URL", feed_server.url("/feed.xml"))
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    sources = parse_config(text, str(path)).sources
    with Store.open(db_url) as store:
        (report,) = run_pipeline(sources, store, Settings())
        titles = sorted(r["title"] for r in store.latest(limit=10))
    assert report.ok and report.entries == 1 and titles == ["New board appointed"]

    capsys.readouterr()
    assert main(["try", "news", "--sources", str(path), "--format", "json"]) == 0
    trial = json.loads(capsys.readouterr().out)
    dropped = {e["title"]: e["dropped"] for e in trial["entries"]}
    assert dropped == {
        "New board appointed": None,
        "Sponsored: conference": r"rule drop title='^(sponsored|advertorial)\\b' (defaults)",
        "Leader podcast": "rule drop link='/podcasts?/' summary='listen'",
        "Staff survey": "matches none of the keep rules",
    }
