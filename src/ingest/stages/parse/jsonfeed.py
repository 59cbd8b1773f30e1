"""Read a JSON Feed document (1.0 and 1.1) into `RawEntry` values.

One job: https://jsonfeed.org/version/1.1 items become entries: `id` (a string,
or a number by its text), `url` (else `external_url`), `title`,
`content_html` (else `content_text`, escaped) as content, `summary` (plain
text, escaped), `date_published` / `date_modified`, the first author's name,
`image` and `banner_image`, and the first video or audio attachment with its
`duration_in_seconds`.  It parses with the standard library, fetches nothing,
and cleans nothing (`ingest.stages.normalize` does).  `ingest.stages.parse.feed` sends it
every document whose first byte is `{` or `[`.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ingest.errors import ParseError
from ingest.model import MediaKind, RawEntry
from ingest.stages.parse.dates import as_utc, zone_label
from ingest.stages.parse.values import as_text, media_kind, parse_duration, unique

__all__ = ["parse_json_feed"]

_JSON_FEED_VERSION = "https://jsonfeed.org/version/"


def parse_json_feed(content: bytes, url: str) -> tuple[RawEntry, ...]:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) into entries."""
    try:
        doc = json.loads(content)
    except (UnicodeDecodeError, ValueError) as e:
        raise ParseError(f"{url}: not a feed: looks like JSON but does not parse: {e}") from e
    if not (
        isinstance(doc, dict)
        and str(doc.get("version", "")).startswith(_JSON_FEED_VERSION)
        and isinstance(doc.get("items"), list)
    ):
        raise ParseError(f"{url}: not a feed: looks like JSON but is not a JSON Feed")
    return tuple(_json_entry(item) for item in doc["items"] if isinstance(item, dict))


def _json_entry(item: Mapping[str, Any]) -> RawEntry:
    content = as_text(item.get("content_html"))
    if content is None and as_text(item.get("content_text")):
        content = html.escape(str(item["content_text"]))
    summary = as_text(item.get("summary"))
    authors = item.get("authors") or [item.get("author")]  # `author`: JSON Feed 1.0
    named = [a for a in authors if isinstance(a, dict)] if isinstance(authors, list) else []
    author = next((as_text(a.get("name")) for a in named), None)
    media_url, media_kind, duration = _json_media(item.get("attachments"))
    return RawEntry(
        id=_json_id(item.get("id")),
        link=as_text(item.get("url")) or as_text(item.get("external_url")),
        title=as_text(item.get("title"), strip=False),
        summary=html.escape(summary) if summary else None,  # JSON Feed summaries are plain text
        content=content,
        published=_iso(item.get("date_published")),
        updated=_iso(item.get("date_modified")),
        published_zone=zone_label(item.get("date_published")),
        updated_zone=zone_label(item.get("date_modified")),
        author=author,
        images=unique((item.get("image"), item.get("banner_image"))),
        duration=duration,
        media_url=media_url,
        media_kind=media_kind,
    )


def _json_id(value: object) -> str | None:
    """An item's id: a string, or a number by its text (`1.5` is "1.5"), as `reader` takes it.

    The spec says a string; publishers write numbers.  Booleans, NaN and
    infinities are not ids.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return str(value)
    return as_text(value)


def _json_media(attachments: object) -> tuple[str | None, MediaKind | None, int | None]:
    """The first video or audio attachment of a JSON Feed item: (URL, kind, duration)."""
    if not isinstance(attachments, list):
        return None, None, None
    for a in attachments:
        if not isinstance(a, dict):
            continue
        kind = media_kind(None, a.get("mime_type"))
        url = as_text(a.get("url"))
        if kind and url:
            return url, kind, parse_duration(a.get("duration_in_seconds"))
    return None, None, None


def _iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return as_utc(parsed)
