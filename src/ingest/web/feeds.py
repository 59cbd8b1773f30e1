"""Atom 1.0 (RFC 4287) and JSON Feed 1.1 documents of one section (pure).

Input: the story rows `Store.latest` returns (newest first).  Each entry's id
is the story's canonical URL, its link the URL as published, its content the
stored full text when the entry had one, else the summary (both already
sanitized HTML; an Atom entry with both carries the summary as <summary>),
a video's or podcast's media as an enclosure (Atom `link rel="enclosure"` and
`media:content` with the duration; JSON Feed `attachments` with
`duration_in_seconds`), its dates the story's own:
`published` is `published_at`; `updated` is `published_at` too unless ingest
saw the story change after first storing it, then `updated_at` (an editor's
undated pick, `date_source` "listed", has no `published` and is `updated`
when last stored; feeds list it in the order of sources.yaml).  The
document's `updated` is the newest entry's, so the same stories always make
byte-identical documents (stable ETags, unchanged export files).
"""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from ingest import __version__

__all__ = ["ATOM_TYPE", "JSON_FEED_TYPE", "atom", "entry_updated", "json_feed", "rfc3339"]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
GENERATOR_URI = "https://github.com/ingest-news/ingest"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# characters XML 1.0 forbids even escaped
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Row = Mapping[str, Any]


def rfc3339(moment: datetime) -> str:
    """2026-06-01T08:00:00Z (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_updated(row: Row) -> datetime:
    """The story's own date, or when ingest saw it change after it was first stored
    (an editor's undated pick: when ingest last stored it)."""
    if _undated(row):
        return max(d for d in (row.get("updated_at"), row.get("first_seen_at"), EPOCH) if d)
    published: datetime = row["published_at"]
    updated: datetime | None = row.get("updated_at")
    first_seen: datetime | None = row.get("first_seen_at")
    if updated is not None and first_seen is not None and updated > first_seen:
        return max(published, updated)
    return published


def _media(row: Row) -> tuple[str, str] | None:
    """A video's or a podcast's media URL and its media type, for the enclosure.

    The type is guessed from the URL's file name; a video without one (a
    player page, such as YouTube's embed address) is `text/html`, an audio
    file without one `audio/mpeg`.  The stored stories carry no byte length,
    so enclosures have none (Atom and JSON Feed make it optional).
    """
    url = row.get("media_url")
    kind = row.get("kind")
    if not url or kind not in ("video", "audio"):
        return None
    guessed, _ = mimetypes.guess_type(urlsplit(str(url)).path)
    if guessed is None or not guessed.startswith(("video/", "audio/")):
        guessed = "text/html" if kind == "video" else "audio/mpeg"
    return str(url), guessed


def _undated(row: Row) -> bool:
    """An editor's undated pick: its `published_at` is its place in sources.yaml."""
    return row.get("date_source") == "listed"


def _link(row: Row) -> str:
    return str(row.get("url") or row["canonical_url"])


def _author(row: Row) -> str:
    return str(row.get("author") or row.get("source_name") or row.get("source") or "")


def _feed_updated(rows: Sequence[Row]) -> datetime:
    return max((entry_updated(r) for r in rows), default=EPOCH)


def _x(text: object) -> str:
    return escape(_NOT_XML.sub("", str(text)))


def _attr(text: object) -> str:
    return quoteattr(_NOT_XML.sub("", str(text)))


def atom(
    rows: Sequence[Row],
    *,
    section: str,
    title: str,
    base_url: str | None = None,
    feed_id: str | None = None,
) -> bytes:
    """The Atom document.  Without `base_url` the self and home links are relative to
    the feed's own address (`feeds/<section>.atom` beside `index.html`)."""
    self_href = f"{base_url}feeds/{section}.atom" if base_url else f"{section}.atom"
    home_href = base_url or "../"
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">',
        f"  <id>{_x(feed_id or f'urn:ingest:feed:{section}')}</id>",
        f'  <title type="text">{_x(title)}</title>',
        f"  <updated>{rfc3339(_feed_updated(rows))}</updated>",
        f'  <link rel="self" type="application/atom+xml" href={_attr(self_href)}/>',
        f'  <link rel="alternate" type="text/html" href={_attr(home_href)}/>',
        f"  <generator uri={_attr(GENERATOR_URI)} version={_attr(__version__)}>ingest</generator>",
    ]
    for r in rows:
        out += [
            "  <entry>",
            f"    <id>{_x(r['canonical_url'])}</id>",
            f'    <title type="text">{_x(r["title"])}</title>',
            f'    <link rel="alternate" type="text/html" href={_attr(_link(r))}/>',
            *([] if _undated(r) else [f"    <published>{rfc3339(r['published_at'])}</published>"]),
            f"    <updated>{rfc3339(entry_updated(r))}</updated>",
            f"    <author><name>{_x(_author(r))}</name></author>",
            f"    <category term={_attr(r['section'])}/>",
        ]
        if r.get("content") and r.get("summary") and r["content"] != r["summary"]:
            out.append(f'    <summary type="html">{_x(r["summary"])}</summary>')
        if r.get("content") or r.get("summary"):  # the full text when there is one
            out.append(f'    <content type="html">{_x(r.get("content") or r["summary"])}</content>')
        if r.get("image_url"):
            out.append(f"    <media:thumbnail url={_attr(r['image_url'])}/>")
        media = _media(r)
        if media is not None:
            url, mime = media
            out.append(f'    <link rel="enclosure" type={_attr(mime)} href={_attr(url)}/>')
            duration = f" duration={_attr(r['duration'])}" if r.get("duration") else ""
            out.append(
                f"    <media:content url={_attr(url)} type={_attr(mime)} "
                f"medium={_attr(r['kind'])}{duration}/>"
            )
        out.append("  </entry>")
    out.append("</feed>\n")
    return "\n".join(out).encode("utf-8")


def json_feed(
    rows: Sequence[Row],
    *,
    section: str,
    title: str,
    base_url: str | None = None,
) -> bytes:
    """The JSON Feed 1.1 document; `_ingest` on each item names its sources."""
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
    }
    if base_url:  # absolute URLs only: JSON Feed has no base to resolve against
        feed["home_page_url"] = base_url
        feed["feed_url"] = f"{base_url}feeds/{section}.json"
    feed["items"] = [_json_item(r) for r in rows]
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_item(r: Row) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": r["canonical_url"],
        "url": _link(r),
        "title": r["title"],
        "content_html": r.get("content") or r.get("summary") or "",
        "date_published": rfc3339(r["published_at"]),
        "date_modified": rfc3339(entry_updated(r)),
        "authors": [{"name": _author(r)}],
        "tags": [r["section"]],
    }
    if _undated(r):  # optional in JSON Feed: an editor's pick has no date of its own
        del item["date_published"]
    if r.get("image_url"):
        item["image"] = r["image_url"]
    media = _media(r)
    if media is not None:
        attachment: dict[str, Any] = {"url": media[0], "mime_type": media[1]}
        if r.get("duration"):
            attachment["duration_in_seconds"] = r["duration"]
        item["attachments"] = [attachment]
    item["_ingest"] = {
        "source": r.get("source"),
        "source_name": r.get("source_name"),
        "sources": list(r.get("sources") or ()),
    }
    return item
