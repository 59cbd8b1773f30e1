"""Read a feed document's bytes into `RawEntry` values.

One job: RSS 0.9x/1.0/2.0, Atom and RDF (through feedparser) and JSON Feed
(through the standard library) become a tuple of `RawEntry`, as the document
carries them.  It does not fetch anything (feedparser is handed the bytes, never
a URL or a path), does not clean text, sanitize HTML, resolve or canonicalize
links, or decide identity: that is `ingest.stages.normalize`.

Talks and podcasts: an entry's video or audio (a `video/*` or `audio/*`
enclosure, else a media:content of that type or medium) gives `media_url` and
`media_kind`; `duration` comes from itunes:duration (seconds, MM:SS or
H:MM:SS) else media:content's `duration`; a YouTube entry (yt:videoId) is a
video whose `media_url` is its embeddable player, https://www.youtube.com/embed/ID.
JSON Feed attachments are read the same way.

Which reader: the document's first bytes decide (`ingest.stages.parse.sniff`): JSON
goes to the JSON Feed reader whatever its items contain, and XML is read by
feedparser; the root element, not a DOCTYPE, says whether it is a feed.

Entry ids are taken as the document writes them, never resolved against the
document's URL or an xml:base (feedparser would resolve an RSS guid only
when it is told a base), so an entry's identity does not depend on where the
feed is served from or on what other entries contain.

Safety: a DOCTYPE's internal subset (where ENTITY declarations live) is cut out
of the bytes before feedparser sees them, and references to what it declared
are dropped (`ingest.stages.parse.doctype`), so no entity is ever expanded (no
"billion laughs") and no external entity is ever read (no XXE); feedparser's
SAX parser is also set not to load external entities.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import feedparser.api
import feedparser.mixin

from ingest.errors import ParseError
from ingest.model import MediaKind, RawEntry
from ingest.stages.parse.dates import parse_date, zone_label
from ingest.stages.parse.doctype import strip_internal_subset
from ingest.stages.parse.fast import read_fast
from ingest.stages.parse.jsonfeed import parse_json_feed
from ingest.stages.parse.sniff import root_element, sniff
from ingest.stages.parse.values import as_text, media_kind, parse_duration, unique

__all__ = ["parse_feed", "parse_feed_fast"]

# feedparser's SAX parser: expat with whole text runs (ingest.stages.parse.saxdriver)
feedparser.api.PREFERRED_XML_PARSERS[:] = ["ingest.stages.parse.saxdriver"]
# Entry ids as written: feedparser resolves a guid or id against the base it knows,
# which would make an entry's identity depend on whether it was told one.
feedparser.mixin._FeedParserMixin.can_be_relative_uri = (
    feedparser.mixin._FeedParserMixin.can_be_relative_uri - {"id"}
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # an absolute URL (any scheme)

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
_YOUTUBE_EMBED = "https://www.youtube.com/embed/"
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{6,20}")


def parse_feed(
    content: bytes, url: str, content_type: str | None = None, *, fast: bool = True
) -> tuple[RawEntry, ...]:
    """Parse one feed document into its entries, in document order.

    `url` is where the document came from (after redirects): the base for
    relative links.  `content_type` is the HTTP Content-Type, used for the
    character encoding; without one the XML declaration (else UTF-8) decides.

    Well-formed RSS 2.0, RSS 1.0 and Atom 1.0 are read by the fast reader
    (`ingest.stages.parse.fast`), everything else by feedparser; both give the same
    entries (`fast=False` reads with feedparser only, for the tests that prove it).
    Entries feedparser recovers from malformed XML are kept.  A document that
    is not a feed at all (HTML, JSON that is not a JSON Feed, garbage) raises
    `ParseError` saying what it looked like.  A valid feed with no entries
    gives an empty tuple.
    """
    if fast and (quick := parse_feed_fast(content, url, content_type)) is not None:
        return quick
    if sniff(content) == "json":
        return parse_json_feed(content, url)
    data = strip_internal_subset(content)
    # The document's URL goes to feedparser only when an xml:base needs it: given a
    # base, feedparser joins it with every element's xml:base (a third of its time),
    # and without one it drops a relative xml:base (its scheme check sees no scheme).
    # Without xml:base, `_join` resolves the links against `url` just the same.
    headers = {"content-type": content_type or "application/xml"}
    if b"xml:base" in data:
        headers["content-location"] = url
    try:
        result = feedparser.parse(
            io.BytesIO(data),  # a stream: feedparser never opens a URL or a path
            response_headers=headers,
            resolve_relative_uris=False,  # normalize resolves (nh3, against the same base)
            sanitize_html=False,  # normalize sanitizes with nh3
        )
    except Exception as e:  # feedparser reports problems in `bozo`; anything raised is a fault
        raise ParseError(f"{url}: feedparser failed: {e}") from e
    entries = result.get("entries") or []
    if not entries and not result.get("version"):
        problem = result.get("bozo_exception")
        detail = f" ({problem})" if problem else ""
        raise ParseError(f"{url}: not a feed: looks like {_describe(content)}{detail}")
    # Plain dicts: FeedParserDict's lookups alias keys (a missing `updated_parsed` answers
    # with `published_parsed`, with a DeprecationWarning); we want what the entry has.
    return tuple(_raw_entry(dict(e), url) for e in entries)


def parse_feed_fast(
    content: bytes, url: str, content_type: str | None = None
) -> tuple[RawEntry, ...] | None:
    """`parse_feed`'s entries when a reader whose cost is linear in the document
    takes it (a JSON Feed, or the fast reader's well-formed RSS and Atom), else None:
    the document is feedparser's, which `parse_feed` falls back to."""
    if sniff(content) == "json":
        return parse_json_feed(content, url)
    entries = read_fast(strip_internal_subset(content), url, content_type)
    if entries is None:
        return None
    return tuple(_raw_entry(e, url) for e in entries)


def _describe(data: bytes) -> str:
    """What a document that is not a feed looks like, for the error message."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return "an empty document"
    kind = sniff(data)
    if kind == "html":
        return "an HTML page"
    if b"\x00" in head[:512] or sum(b < 9 for b in head[:512]) > 2:
        return f"binary data ({len(data)} bytes, starting {head[:8]!r})"
    root = root_element(data)
    if root is not None:
        return f"XML with root element <{root}>"
    if head.startswith(b"<"):
        return "XML without a feed root element"
    return f"text starting {head[:40].decode('utf-8', 'replace')!r}"


# -- feedparser entry -> RawEntry ---------------------------------------------


def _raw_entry(e: Mapping[str, Any], url: str) -> RawEntry:
    content = next(
        (as_text(c.get("value")) for c in e.get("content") or () if c.get("value")), None
    )
    first = next(iter(e.get("content") or ()), None)
    media_url, kind, duration = _media(e)
    # a link feedparser took from a guid (ids are not resolved) joins the entry's base
    entry_base = _base(url, e.get("title_detail")) or url
    published = _date(e, "published")  # else the creation date, with its own zone
    return RawEntry(
        id=as_text(e.get("id")),
        link=_absolute(_entry_link(e), entry_base),
        title=as_text(e.get("title"), strip=False),
        summary=as_text(e.get("summary"), strip=False),
        content=content,
        published=published or _date(e, "created"),
        updated=_date(e, "updated"),
        published_zone=zone_label(e.get("published") if published else e.get("created")),
        updated_zone=zone_label(e.get("updated")),
        author=_author(e),
        # a summary without its own detail is feedparser's copy of the content
        base=_base(url, e.get("summary_detail") or first, e.get("title_detail")),
        content_base=_base(url, first, e.get("title_detail")),
        images=tuple(_join(i, url) for i in _images(e)),
        duration=duration,
        media_url=_absolute(media_url, url),
        media_kind=kind,
    )


def _absolute(link: str | None, url: str) -> str | None:
    return None if link is None else _join(link, url)


def _join(link: str, url: str) -> str:
    """A link feedparser left relative (it has no base of its own), joined with `url`.

    feedparser already joined it with the xml:base in force, so this is the
    join it would have done had it been told the document's URL.
    """
    return link if _SCHEME.match(link) else urljoin(url, link)


def _entry_link(e: Mapping[str, Any]) -> str | None:
    link = as_text(e.get("link"))
    if link:
        return link
    for candidate in e.get("links") or ():
        if candidate.get("rel", "alternate") == "alternate" and as_text(candidate.get("href")):
            return as_text(candidate.get("href"))
    return None


def _date(e: Mapping[str, Any], key: str) -> datetime | None:
    """The entry's `key` date: feedparser's reading, else ours (`parse_date`) of the text.

    feedparser gives up on an RFC 822 date without a zone ("Wed, 01 Jul 2026
    09:00:00"), the very shape of a feed written in local time; `parse_date`
    reads it (as UTC, until the source's `timezone:` says otherwise).
    """
    parsed = _utc(e.get(key + "_parsed"))
    if parsed is None and isinstance(text := e.get(key), str) and text.strip():
        return parse_date(text)
    return parsed


def _utc(parsed: tuple[int, ...] | None) -> datetime | None:
    """feedparser's `*_parsed` (a struct_time already in UTC) as an aware datetime."""
    if parsed is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(f) for f in parsed[:6])
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _author(e: Mapping[str, Any]) -> str | None:
    detail = e.get("author_detail") or {}
    return as_text(detail.get("name")) or as_text(e.get("author"))


def _base(url: str, *details: Mapping[str, Any] | None) -> str | None:
    """The xml:base feedparser recorded for the first of `details` that has one, unless
    it is the document URL itself (then None: normalize falls back to that URL)."""
    for detail in details:
        if detail and detail.get("base"):
            base = str(detail["base"])
            return None if base == url else base
    return None


def _images(e: Mapping[str, Any]) -> tuple[str, ...]:
    """Candidate image URLs, best first: thumbnails, image media, iTunes art, image enclosures."""
    found: list[str | None] = [t.get("url") for t in e.get("media_thumbnail") or ()]
    for m in e.get("media_content") or ():
        medium, kind = str(m.get("medium", "")).lower(), str(m.get("type", "")).lower()
        src = str(m.get("url", ""))
        untyped_image = not medium and not kind and src.lower().endswith(_IMAGE_EXTENSIONS)
        if medium == "image" or kind.startswith("image/") or untyped_image:
            found.append(src)
    image = e.get("image")
    if isinstance(image, Mapping):
        found.append(image.get("href"))
    found += [
        link.get("href")
        for link in e.get("links") or ()
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/")
    ]
    return unique(found)


def _media(e: Mapping[str, Any]) -> tuple[str | None, MediaKind | None, int | None]:
    """The entry's video or audio: (URL, kind, duration in seconds), each possibly None.

    Enclosures first (a podcast's file), then media:content; a YouTube entry
    is a video played through its embed URL when it names no media file.
    """
    found: list[tuple[str, MediaKind]] = []
    for link in e.get("links") or ():
        kind = media_kind(None, link.get("type"))
        href = as_text(link.get("href"))
        if link.get("rel") == "enclosure" and kind and href:
            found.append((href, kind))
    duration = parse_duration(e.get("itunes_duration"))
    for m in e.get("media_content") or ():
        kind = media_kind(m.get("medium"), m.get("type"))
        src = as_text(m.get("url"))
        if kind and src:
            found.append((src, kind))
            if duration is None:
                duration = parse_duration(m.get("duration"))
    media_url, kind_found = found[0] if found else (None, None)
    video_id = as_text(e.get("yt_videoid"))
    if video_id and _YOUTUBE_ID.fullmatch(video_id):
        kind_found = "video"
        media_url = media_url or _YOUTUBE_EMBED + video_id
    return media_url, kind_found, duration
