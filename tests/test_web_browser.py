"""The collection page in a real browser: `ingest serve` driven by headless Chromium.

Stores the seed page's stories through the real pipeline (tests/websample.py:
four feeds on a loopback FeedServer, `ingest run`), starts `ingest serve` as a
subprocess on a free loopback port, and drives Debian's `chromium` through
`chromium-driver` with Selenium: every section and its stories must be visible,
with their links, dates, sources and pictures, at desktop and phone widths.
Screenshots go to test-artifacts/ (git-ignored): collection-page.png (1280 px
wide, the whole page), collection-page-mobile.png (390 px) and demo-page.png
(`make demo`'s page, the one docs/demo-page.png shows).

Skipped, with the reason, where /usr/bin/chromium, chromedriver or Selenium is
missing (.ci/run installs the first two with apt-get, the last with the test extras).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_helpers import running_demo
from feedserver import FeedServer
from websample import Collection, fill, serving

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
]  # fmt: skip
SECTIONS = {
    "highlighted": ("Highlighted resources", 3),
    "videos": ("Videos", 3),
    "blogs": ("Blog posts", 4),
    "latest": ("Latest news and research", 15),
}

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
if not Path(DRIVER).exists():
    pytest.skip(
        "chromedriver is missing (apt-get install chromium-driver)", allow_module_level=True
    )
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def collection(feed_server: FeedServer, tmp_path: Path) -> Collection:
    return fill(feed_server, tmp_path, f"sqlite:///{tmp_path / 'site.sqlite3'}")


@pytest.fixture
def site_url(collection: Collection, tmp_path: Path) -> Iterator[str]:
    with serving(collection.db_url, tmp_path / "serve.log") as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1280,900")
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager is not used, but be sure
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _full_page_screenshot(driver: Any, width: int, path: Path) -> None:
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    frame = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(width, height + frame)  # every lazy image is now in the viewport
    driver.execute_script("window.scrollTo(0, 0)")
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


def test_collection_page_shows_every_section_and_story(
    collection: Collection, site_url: str, browser: Any
) -> None:
    browser.get(site_url)
    assert browser.title == "News and resources"
    for landmark in ("header", "nav", "main", "footer"):
        assert len(browser.find_elements(By.TAG_NAME, landmark)) == 1, landmark
    assert browser.find_elements(By.TAG_NAME, "script") == []  # no JavaScript needed
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"

    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2")]
    assert headings == [heading for heading, _ in SECTIONS.values()]
    for key, (_, shown) in SECTIONS.items():
        section = browser.find_element(By.ID, key)
        assert section.tag_name == "section"
        assert section.get_attribute("aria-labelledby") == f"{key}-heading"
        expected = collection.stories[key][:shown]
        articles = section.find_elements(By.CSS_SELECTOR, "article.story")
        assert len(articles) == len(expected), key
        for article, story in zip(articles, expected, strict=True):
            browser.execute_script("arguments[0].scrollIntoView()", article)
            link = article.find_element(By.CSS_SELECTOR, ".story-title a")
            assert link.is_displayed() and link.text == story.title
            assert link.get_attribute("href") == story.url  # utm_* parameters gone
            assert article.find_element(By.CSS_SELECTOR, ".source").text == story.source_name
            when = article.find_element(By.TAG_NAME, "time")
            assert when.is_displayed()
            assert datetime.fromisoformat(when.get_attribute("datetime")) == story.published
            assert when.text == f"{story.published.day} {story.published:%b %Y}"
            images = article.find_elements(By.TAG_NAME, "img")
            if story.image_url:
                (img,) = images
                assert img.get_attribute("src") == story.image_url
                assert img.get_attribute("alt") == ""  # decorative: the title says it all
            else:
                assert images == []
    # the feeds each section links to are there
    for key in SECTIONS:
        link = browser.find_element(By.CSS_SELECTOR, f"#{key} .feeds a[href$='.atom']")
        assert httpx.get(link.get_attribute("href"), timeout=5).status_code == 200

    _full_page_screenshot(browser, 1280, ARTIFACTS / "collection-page.png")
    # phone width: one column, nothing wider than the screen
    browser.set_window_size(390, 900)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    _full_page_screenshot(browser, 390, ARTIFACTS / "collection-page-mobile.png")
    assert (ARTIFACTS / "collection-page.png").stat().st_size > 10_000


def test_status_page_shows_a_failing_source_as_failing_on_a_phone(
    feed_server: FeedServer, tmp_path: Path, browser: Any
) -> None:
    """/status at a phone's width: the failing source comes first, in red words, readable."""
    from test_status_page import fill

    db = f"sqlite:///{tmp_path / 'status.sqlite3'}"
    fill(feed_server, tmp_path, db)
    with serving(db, tmp_path / "serve.log") as url:
        browser.set_window_size(390, 900)
        browser.get(url + "status")
        assert browser.title == "Source health"
        first = browser.find_element(By.CSS_SELECTOR, "li.source")
        assert first.get_attribute("id") == "source-broken"
        assert first.get_attribute("data-state") == "failing"
        state = first.find_element(By.CSS_SELECTOR, ".state")
        assert state.is_displayed() and state.text.startswith("failing since")
        assert state.value_of_css_property("color") == "rgba(183, 28, 28, 1)"  # #b71c1c
        error = first.find_element(By.CSS_SELECTOR, ".error")
        assert error.is_displayed() and "500" in error.text
        fine = browser.find_element(By.ID, "source-fine")
        assert fine.find_element(By.CSS_SELECTOR, ".state").text == "ok"
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0  # nothing wider than the phone
        _full_page_screenshot(browser, 390, ARTIFACTS / "status-page-mobile.png")
        _full_page_screenshot(browser, 1024, ARTIFACTS / "status-page.png")
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_the_demo_page_in_a_browser(tmp_path: Path, browser: Any) -> None:
    """`make demo`'s page: the seed page's headings and picks; its screenshot is the one
    in docs/demo-page.png (copied from test-artifacts/demo-page.png)."""
    with running_demo(tmp_path / "demo") as demo:
        assert demo.page, "".join(demo.output)
        browser.get(demo.page)
        assert browser.title == "Leadership"
        assert browser.find_element(By.TAG_NAME, "h1").text == "Leadership"
        headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "main h2")]
        assert headings[:4] == [
            "Highlighted resources", "Highlighted Leadership Videos", "Blog posts",
            "Latest news and research",
        ]  # fmt: skip
        picks = browser.find_elements(By.CSS_SELECTOR, "#highlighted .story-title a")
        assert len(picks) == 3 and picks[0].text == (
            "Inclusion: essential leadership prerequisite or optional extra?"
        )
        intro = browser.find_element(By.CSS_SELECTOR, "p.intro")
        assert intro.is_displayed() and "Let us know here" in intro.text
        note = browser.find_element(By.CSS_SELECTOR, "p.site-note")
        browser.execute_script("arguments[0].scrollIntoView()", note)
        assert note.is_displayed() and "The Health Foundation" in note.text
        _full_page_screenshot(browser, 1280, ARTIFACTS / "demo-page.png")
    assert (ARTIFACTS / "demo-page.png").stat().st_size > 10_000
