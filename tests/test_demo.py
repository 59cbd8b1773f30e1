"""`make demo`: sample feeds over loopback, ingested and served, offline, in one command.

One job: run `python -m ingest.demo` (tests/demo_helpers.py) and check that every sample
source is polled from its loopback server, that the page it serves reads like the seed
page (headings and highlighted items), that the sample shapes come through (a scraped
page, a JSON Feed, TED's enclosures, a YouTube channel), and that Ctrl-C stops the page
and the sample server alike.  The browser's view of the same page is in
tests/test_web_browser.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup

from demo_helpers import Demo, running_demo
from ingest.config import load_config
from ingest.demo.server import DATA, ROUTES, render

SEED_HEADINGS = [
    "Highlighted resources", "Highlighted Leadership Videos", "Blog posts",
    "Latest news and research",
]  # fmt: skip
SEED_PICKS = [
    "Inclusion: essential leadership prerequisite or optional extra?",
    "Developing allied health professional leaders — an interactive guide for clinicians and "
    "trust boards",
    "Coaching & Mentoring Handbook: NHS Leadership Academy",
]
SEED_VIDEOS = [
    "How to turn a group of strangers into a team",
    "Our fight for disability rights — and why we're not done yet",
]


def test_the_demo_sources_file_is_valid_and_uses_every_sample(tmp_path: Path) -> None:
    base = "http://127.0.0.1:9"
    text = render((DATA / "sources.yaml").read_text(), base, datetime.now(UTC))
    (tmp_path / "sources.yaml").write_text(text)
    config = load_config(tmp_path / "sources.yaml")
    assert config.settings.allow_networks == ("127.0.0.0/8",)
    paths = {s.url.replace(base, "") for s in config.sources if s.kind != "curated"}
    assert paths == set(ROUTES) - {"/img/video.svg"}
    assert {name for name, _ in ROUTES.values()} == {
        p.name for p in DATA.iterdir() if p.name != "sources.yaml"
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    where = tmp_path_factory.mktemp("demo")
    with running_demo(where) as demo:
        assert demo.page, "".join(demo.output)
        page = httpx.get(demo.page, timeout=10)
        demo.output.append(page.text)  # the page, for the tests below
        feed = httpx.get(demo.page + "feeds/talks.json", timeout=10).json()
        demo.output.append(repr(feed))
        assert httpx.get(demo.samples + "blog/feed/", timeout=10).status_code == 200
    return demo


def test_every_sample_source_is_polled(demo: Demo) -> None:
    log = "".join(demo.output)
    assert "8 sources: 8 ok, 0 failed;" in log, log
    for key in ("journal-current", "research-digest", "service-blog", "thinktank-blogs",
                "demo-talks", "demo-channel"):  # fmt: skip
        assert f"ok    {key} HTTP 200:" in log, key


def test_the_demo_page_reads_like_the_seed_page(demo: Demo) -> None:
    html = next(o for o in demo.output if o.lstrip().startswith("<!doctype html>"))
    soup = BeautifulSoup(html, "html.parser")
    assert [h.get_text() for h in soup.find_all("h1")] == ["Leadership"]
    assert [h.get_text() for h in soup.find_all("h2")][:4] == SEED_HEADINGS
    assert [a.get_text() for a in soup.select("#highlighted h3 a")] == SEED_PICKS
    assert [a.get_text() for a in soup.select("#videos h3 a")] == SEED_VIDEOS
    intro = " ".join(soup.select_one("p.intro").get_text().split())  # type: ignore[union-attr]
    assert intro.startswith("Welcome to our collection of resources on leadership in healthcare.")
    assert "The Health Foundation" in soup.select_one("p.site-note").get_text()  # type: ignore[union-attr]
    # the sample shapes came through: the scraped page and WordPress feed the blogs
    blogs = [a.get_text() for a in soup.select("#blogs h3 a")]
    assert "Leading in a crisis without burning out" in blogs
    assert "Building a leadership culture, one team meeting at a time" in blogs
    assert len(soup.select("#latest h3")) == 8  # HighWire RSS 1.0 and the JSON Feed


def test_talks_keep_their_media(demo: Demo) -> None:
    feed = next(o for o in demo.output if o.startswith("{'version'"))
    assert "'mime_type': 'video/mp4'" in feed and "'duration_in_seconds': 702" in feed
    assert "youtube.com/embed/DemoVid0001" in feed


def test_ctrl_c_stops_the_page_and_the_sample_server(demo: Demo) -> None:
    assert demo.returncode == 0, "".join(demo.output)
    for url in (demo.page, demo.samples):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)
    assert "Traceback" not in "".join(demo.output)


def test_the_readme_shows_the_demo_first() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make run")
