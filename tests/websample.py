"""A realistic collection for the web tests, stored through the real pipeline.

One job: turn the seed page's stories (shared/seed/leadership-collection-page.txt)
into four RSS feeds — highlighted resources, videos, blog posts, latest news and
research — served with SVG thumbnails by a loopback ``FeedServer``, and store them
with ``ingest run`` into the given database.  ``fill`` returns what a reader should
then see (``Story`` values, newest first per section); ``add_story`` stores one more
story the way a later poll would; ``serving`` runs ``ingest serve`` over a database as
a subprocess on a free loopback port.  It asserts nothing itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import httpx

from feedlab_helpers import free_port
from feedserver import FeedServer
from ingest.model import Item, NextPoll, PollRecord, Source, SourceReport
from ingest.store import Store

__all__ = ["SOURCES", "Collection", "Story", "add_story", "fill", "serving", "thumbnail_svg"]

HIGHLIGHTED = [
    ("Leadership in the NHS: A commentary by Roger Kline",
     "Inclusion: essential leadership prerequisite or optional extra? How staff are treated "
     "significantly influences care provision and organisational performance."),
    ("Developing allied health professional leaders — an interactive guide for clinicians "
     "and trust boards",
     "The common features of the AHP leadership journey, combining insights and evidence "
     "from trust chief executives and chief AHPs."),
    ("Coaching & Mentoring Handbook: NHS Leadership Academy",
     "Supporting the development of all coaches and mentors, and those with whom they work, "
     "to help you grow, learn and thrive at work through effective partnerships."),
]  # fmt: skip
VIDEOS = [
    ("How to turn a group of strangers into a team",
     "How often do we find ourselves working with people we have never met before in "
     "healthcare? This talk gives you some tips and ideas."),
    ("Our fight for disability rights — and why we're not done yet",
     "As healthcare leaders we have a responsibility to make our system more inclusive."),
    ("The quiet power of listening rounds",
     "What happens when a hospital chief executive spends one morning a week just listening?"),
]  # fmt: skip
BLOGS = [
    ("Building a leadership culture fit for the future",
     "Dom Hardy, director of primary care and system transformation at NHS England, is "
     "leading the implementation of the Long Term Plan's commitment to create integrated "
     "care systems across the country. As he explains, change starts at the top."),
    ("Leadership in the NHS - Jon Rouse",
     "The NHS Long Term Plan was released in January with a clear thread leading from the "
     "'Five Year Forward View' toward more place based, integrated care."),
    ("What good board leadership looks like in a crisis",
     "Three lessons from trust boards that kept their focus on patients during the winter."),
]  # fmt: skip
LATEST = [
    "A Dutchman in London: reflections of a hospital chief executive from the Netherlands in the NHS",  # noqa: E501
    "Slaughtering to serving: a reflection on healthcare leadership in Indonesia",
    "We need to work differently in a crisis: peer-professional leadership to redesign physicians work",  # noqa: E501
    "'Mali Matters: reflections on a leadership and quality improvement project to improve blood transfusion safety at Maluti Adventist Hospital, Mapoteng, Lesotho",  # noqa: E501
    "Australian doctors are more engaged than UK doctors: why is this the case?",
    "Stemming the 'Leaky Pipeline: an investigation of the relationship between work-family conflict and womens career progression in academic medicine",  # noqa: E501
    "Supporting the pursuit of professionalism during a crisis",
    "Leading improvement at scale in healthcare: Sir John Oldham",
    "Ten minutes with Professor Marion Lynch, Covid 19 Technical Adviser, Tropical Health and Education Trust (THET)",  # noqa: E501
    "Intersectional effects of gender and ethnicity? A quantitative analysis of bonus pay gap data for Shelford Hospital consultants",  # noqa: E501
    "The critical role of the NHS Race and Health Observatory",
    "Designing the careful and kind clinic: an evidence-based approach",
    "Leadership for careful and kind care",
    "Ten minutes with Professor Gillian Leng, Chief Executive, National Institute for Health and Care Excellence",  # noqa: E501
    "Deliberate practices of speaking up and responding skills: the Speak-PREP e-learning module for healthcare professionals",  # noqa: E501
    "Compassionate leadership and the retention of nurses & midwives",
    "Board diversity and hospital performance: a cross-sectional study",
    "Followership in surgical teams: a qualitative study",
]

# key, name, section, site, stories (title, summary), hours between stories, first age in hours
SOURCES = [
    ("leadership-academy", "NHS Leadership Academy", "highlighted",
     "https://www.leadershipacademy.nhs.uk/resources/", HIGHLIGHTED, 72, 30),
    ("ted", "TED", "videos", "https://www.ted.com/talks/", VIDEOS, 50, 20),
    ("nhs-england-blog", "NHS England", "blogs", "https://www.england.nhs.uk/blog/", BLOGS,
     40, 10),
    ("bmj-leader", "BMJ Leader", "latest", "https://bmjleader.bmj.com/content/early/",
     [(t, "") for t in LATEST], 9, 2),
]  # fmt: skip

PALETTES = [
    ("#0b4f6c", "#20bf55"), ("#5f0f40", "#fb8b24"), ("#1d3557", "#a8dadc"),
    ("#3a0ca3", "#4cc9f0"), ("#2b2d42", "#ef233c"), ("#386641", "#a7c957"),
    ("#6d597a", "#eaac8b"), ("#003049", "#fcbf49"), ("#283618", "#dda15e"),
]  # fmt: skip


@dataclass(frozen=True)
class Story:
    title: str
    url: str  # as published, minus tracking parameters
    published: datetime  # UTC, whole seconds
    section: str
    source: str
    source_name: str
    image_url: str | None


@dataclass(frozen=True)
class Collection:
    db_url: str
    sources_path: Path
    stories: dict[str, list[Story]]  # section -> stories, newest first

    def all(self) -> list[Story]:
        return [s for stories in self.stories.values() for s in stories]


def thumbnail_svg(n: int) -> bytes:
    """A 16:9 abstract picture, different for each n."""
    a, b = PALETTES[n % len(PALETTES)]
    c1 = (90 + 97 * n % 460, 60 + 61 * n % 240, 80 + 23 * n % 70)
    c2 = (520 - 71 * n % 380, 300 - 43 * n % 200, 50 + 31 * n % 60)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" '
        f'stop-color="{a}"/><stop offset="1" stop-color="{b}"/></linearGradient></defs>'
        '<rect width="640" height="360" fill="url(#g)"/>'
        f'<circle cx="{c1[0]}" cy="{c1[1]}" r="{c1[2]}" fill="#fff" fill-opacity=".2"/>'
        f'<circle cx="{c2[0]}" cy="{c2[1]}" r="{c2[2]}" fill="#fff" fill-opacity=".13"/>'
        '<path d="M0 300 C160 250 320 340 640 270 L640 360 L0 360 Z" fill="#000" '
        'fill-opacity=".12"/></svg>'
    ).encode()


def _slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words[:8])


def _rss(name: str, site: str, items: list[tuple[Story, str, str]]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">',
        f"<channel><title>{escape(name)}</title><link>{escape(site)}</link>",
        f"<description>{escape(name)}</description>",
    ]
    for story, summary, link in items:
        out.append("<item>")
        out.append(f"<title>{escape(story.title)}</title><link>{escape(link)}</link>")
        out.append(f"<guid isPermaLink='false'>{escape(story.url)}</guid>")
        out.append(f"<pubDate>{format_datetime(story.published)}</pubDate>")
        if summary:
            out.append(f"<description>{escape(f'<p>{summary}</p>')}</description>")
        if story.image_url:
            out.append(f'<media:thumbnail url="{escape(story.image_url)}" width="640"/>')
        out.append("</item>")
    out.append("</channel></rss>")
    return "\n".join(out)


def fill(
    server: FeedServer, tmp_path: Path, db_url: str, now: datetime | None = None
) -> Collection:
    """Serve the four feeds and their thumbnails, then `ingest run` them into `db_url`."""
    from ingest.cli.main import main

    now = (now or datetime.now(UTC)).replace(microsecond=0)
    stories: dict[str, list[Story]] = {}
    yaml = ["sources:"]
    picture = 0
    for key, name, section, site, entries, step, first in SOURCES:
        items = []
        for i, (title, summary) in enumerate(entries):
            url = f"{site}{_slug(title)}"
            image = None
            if not (section == "latest" and i % 7 == 3):  # a few stories have no picture
                picture += 1
                server.put(f"/img/{picture}.svg", thumbnail_svg(picture), "image/svg+xml")
                image = server.url(f"/img/{picture}.svg")
            published = now - timedelta(hours=first + i * step)
            story = Story(title, url, published, section, key, name, image)
            link = f"{url}?utm_source=rss&utm_medium=feed" if i % 2 else url
            items.append((story, summary, link))
        stories[section] = [s for s, _, _ in items]
        server.put(f"/{key}.xml", _rss(name, site, items))
        yaml += [
            f"  - key: {key}",
            f"    name: {name}",
            f"    url: {server.url(f'/{key}.xml')}",
            f"    section: {section}",
        ]
    sources_path = tmp_path / "sources.yaml"
    sources_path.write_text("\n".join(yaml) + "\n")
    code = main(["run", "--sources", str(sources_path), "--db", db_url])
    if code != 0:
        raise RuntimeError(f"ingest run exited {code}")
    return Collection(db_url, sources_path, stories)


def add_story(
    store: Store,
    source_key: str,
    section: str,
    title: str,
    published: datetime,
    *,
    when: datetime | None = None,
    summary: str = "<p>Added later.</p>",
    content: str | None = None,
) -> str:
    """Store one more story for an existing source, as a poll at `when` would; returns its URL."""
    when = when or datetime.now(UTC)
    url = f"https://added.example.org/{_slug(title)}"
    source = Source(key=source_key, name=source_key, url="http://127.0.0.1:9/", section=section)
    item = Item(
        source_key=source_key,
        entry_key=f"url:{url}",
        canonical_url=url,
        url=url,
        title=title,
        summary=summary,
        published_at=published,
        date_source="published",
        section=section,
        content_hash=f"added-{_slug(title)}",
        content=content,
    )
    report = SourceReport(source_key=source_key, ok=True, status=200)
    record = PollRecord(source, report, None, when, NextPoll(when + timedelta(hours=1)))
    store.save_poll(record, [item])
    return url


@contextmanager
def serving(db_url: str, log: Path, *extra: str) -> Iterator[str]:
    """`ingest serve --db db_url` on 127.0.0.1:<free port> until the block ends; yields
    its base URL once /healthz answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "ingest.cli.main", "serve", "--db", db_url,
           "--host", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    with log.open("wb") as out:
        # in the log's folder: no sources.yaml there, so the page has the default site: words
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(url + "healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ingest serve did not start:\n{log.read_text()}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
