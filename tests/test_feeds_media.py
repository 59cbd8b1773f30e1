"""Videos and podcasts keep their media in the feeds ingest serves and exports.

One job: stories stored through the real pipeline from the TED, podcast and
YouTube fixtures (tests/data/feeds, served over loopback) come out of
`videos.atom` / `podcasts.atom` with `link rel="enclosure"` and `media:content`
(with the duration), and out of the JSON Feeds with `attachments` carrying
`duration_in_seconds`, matching what `/api/items` says of the same stories.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import quick_sources
from feedserver import FeedServer
from ingest.cli.main import main
from ingest.store import Store
from ingest.web.params import items_query
from ingest.web.site import Site

FEEDS = Path(__file__).parent / "data" / "feeds"
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"


@pytest.fixture
def site(feed_server: FeedServer, tmp_path: Path) -> Iterator[Site]:
    feed_server.put("/ted.xml", (FEEDS / "ted-podcast.xml").read_bytes())
    feed_server.put("/pod.xml", (FEEDS / "podcast.xml").read_bytes())
    feed_server.put("/yt.xml", (FEEDS / "youtube-atom.xml").read_bytes())
    blocks = "".join(
        f"  - key: {key}\n    name: {key}\n    url: {feed_server.url(path)}\n"
        f"    section: {section}\n"
        for key, path, section in [
            ("ted", "/ted.xml", "videos"), ("pod", "/pod.xml", "podcasts"),
            ("yt", "/yt.xml", "videos"),
        ]
    )  # fmt: skip
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["run", "--sources", quick_sources(tmp_path, blocks), "--db", db]) == 0
    with Store.open_existing(db) as store:
        yield Site(store, base_url="https://news.example.org/")


def _api(site: Site, section: str) -> dict[str, dict[str, object]]:
    body = site.items(items_query([("section", section), ("limit", "100")]))
    return {i["canonical_url"]: i for i in json.loads(body.content)["items"]}


@pytest.mark.parametrize("section", ["videos", "podcasts"])
def test_feeds_carry_the_media_the_api_has(site: Site, section: str) -> None:
    api = _api(site, section)
    with_media = {k: i for k, i in api.items() if i["media_url"]}
    assert with_media, api  # the fixtures have media
    atom = site.feed(section, "atom")
    assert atom is not None
    root = ET.fromstring(atom.content)
    seen = 0
    for entry in root.iter(f"{ATOM}entry"):
        story = api[entry.findtext(f"{ATOM}id") or ""]
        enclosures = [x for x in entry.findall(f"{ATOM}link") if x.get("rel") == "enclosure"]
        if not story["media_url"]:
            assert enclosures == []
            continue
        seen += 1
        assert [x.get("href") for x in enclosures] == [story["media_url"]]
        mime = enclosures[0].get("type") or ""
        assert mime.startswith("audio/" if story["kind"] == "audio" else ("video/", "text/html"))
        content = entry.find(f"{MEDIA}content")
        assert content is not None and content.get("url") == story["media_url"]
        assert content.get("medium") == story["kind"]
        if story["duration"]:
            assert content.get("duration") == str(story["duration"])
    assert seen == len(with_media)

    feed = site.feed(section, "json")
    assert feed is not None
    items = json.loads(feed.content)["items"]
    for item in items:
        story = api[item["id"]]
        if not story["media_url"]:
            assert "attachments" not in item
            continue
        (attachment,) = item["attachments"]
        assert attachment["url"] == story["media_url"] and attachment["mime_type"]
        assert attachment.get("duration_in_seconds") == (story["duration"] or None)


def test_an_mp4_talk_is_a_video_file_and_a_youtube_video_a_player(site: Site) -> None:
    feed = site.feed("videos", "json")
    assert feed is not None
    types = {
        a["url"]: a["mime_type"] for i in json.loads(feed.content)["items"]
        for a in i.get("attachments", ())
    }  # fmt: skip
    assert any(u.split("?")[0].endswith(".mp4") and t == "video/mp4" for u, t in types.items())
    assert any("youtube" in u and t == "text/html" for u, t in types.items()), types
    durations = [
        a["duration_in_seconds"] for i in json.loads(feed.content)["items"]
        for a in i.get("attachments", ()) if "duration_in_seconds" in a
    ]  # fmt: skip
    assert 872 in durations
