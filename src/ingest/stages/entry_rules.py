"""A source's own rules for its entries, applied by normalize: identity and date repair.

One job: `entry_key_of` names an entry within its source by the source's
`identity:` rule (docs/sources.md, "Identity"), and `local_dates` applies the
source's `timezone:` and `date_offset_fix:` to an entry's dates
(`parse.dates.repair`).  Pure; it does not clean text or links (normalize.py
does, and hands the cleaned values in) or match entries to stored stories
(store/writes.py repairs changed ids).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from ingest.model import Identity, RawEntry, Source
from ingest.stages.parse.dates import as_utc, repair

__all__ = ["entry_key_of", "local_dates"]


def entry_key_of(
    identity: Identity | None,
    raw: RawEntry,
    unique_id: str,
    canonical: str | None,
    title: str,
    text: str,
) -> str:
    """The entry's identity within its source, by the source's `identity:` rule.

    `unique_id` is the entry's id when no other entry of the document has it
    (else ""), `canonical` its canonical link, `title` its plain title and
    `text` its plain text (needed for `content` only).  Default (and `guid`):
    the id, else the canonical link, else a hash of title and date.  `link`:
    the canonical link first.  `title` and `content`: a hash of the title, or
    of the text (an entry without text falls back to its title), with
    whitespace and case folded.
    """
    if identity == "title" or (identity == "content" and not text.strip()):
        return "title:" + _digest(title)
    if identity == "content":
        return "content:" + _digest(text)
    if unique_id and identity != "link":
        return "id:" + unique_id
    if canonical:
        return "url:" + canonical
    if unique_id:
        return "id:" + unique_id
    own_date = raw.published or raw.updated
    own_stamp = (as_utc(own_date) or own_date).isoformat() if own_date else ""
    return "hash:" + hashlib.sha1(f"{title}\x00{own_stamp}".encode()).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha1(" ".join(text.casefold().split()).encode()).hexdigest()


def local_dates(raw: RawEntry, source: Source) -> RawEntry:
    """`raw` with the source's date repair applied (`timezone:`, `date_offset_fix:`)."""
    zone, fix = source.timezone, source.date_offset_fix
    published = raw.published and repair(_utc(raw.published), raw.published_zone, zone, fix)
    updated = raw.updated and repair(_utc(raw.updated), raw.updated_zone, zone, fix)
    if published == raw.published and updated == raw.updated:
        return raw
    return replace(raw, published=published, updated=updated)


def _utc(moment: datetime) -> datetime:
    return as_utc(moment) or moment
