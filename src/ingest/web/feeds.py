"""Atom 1.0 (RFC 4287) and JSON Feed 1.1 documents of one section (pure).

Input: the story rows `Store.latest` returns (newest first).  Each entry's id
is the story's canonical URL, its link the URL as published, its content the
stored full text when the entry had one, else the summary (both already
sanitized HTML; an Atom entry with both carries the summary as <summary>),
its dates the story's own:
`published` is `published_at`; `updated` is `published_at` too unless ingest
saw the story change after first storing it, then `updated_at`.  The
document's `updated` is the newest entry's, so the same stories always make
byte-identical documents (stable ETags, unchanged export files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
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
    """The story's own date, or when ingest saw it change after it was first stored."""
    published: datetime = row["published_at"]
    updated: datetime | None = row.get("updated_at")
    first_seen: datetime | None = row.get("first_seen_at")
    if updated is not None and first_seen is not None and updated > first_seen:
        return max(published, updated)
    return published


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
            f"    <published>{rfc3339(r['published_at'])}</published>",
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
    if r.get("image_url"):
        item["image"] = r["image_url"]
    item["_ingest"] = {
        "source": r.get("source"),
        "source_name": r.get("source_name"),
        "sources": list(r.get("sources") or ()),
    }
    return item
