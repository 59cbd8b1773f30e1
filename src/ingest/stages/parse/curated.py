"""Read a `kind: curated` source's own items (written by editors) into `RawEntry` values.

One job: the stories an editor listed under `items:` in sources.yaml become
entries, as a feed's would, so normalize, the filters, dedupe and the store
treat them like any other story (identity by canonical URL: an edited title
or summary updates the story in place; a changed URL is a new story).  It
also gives the hash that stands in for a body hash, so a poll whose items
did not change is "unchanged" and costs nothing.  Pure: no network, no
database, no clock.
"""

from __future__ import annotations

import hashlib
import html
import json

from ingest.model import RawEntry, Source

__all__ = ["curated_entries", "items_hash"]


def curated_entries(source: Source) -> tuple[RawEntry, ...]:
    """One entry per item, in file order.

    Titles and summaries are plain text as the editor typed them: they are
    escaped here so that normalize, which reads them as HTML, keeps them as
    written (`R&D`, `<3`).  Blank lines in a summary separate paragraphs.
    """
    return tuple(
        RawEntry(
            link=item.url,
            title=html.escape(item.title, quote=False),
            summary=_paragraphs(item.summary) if item.summary else None,
            published=item.date,
            images=(item.image,) if item.image else (),
        )
        for item in source.items
    )


def _paragraphs(text: str) -> str:
    parts = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    parts = [html.escape(p, quote=False) for p in parts if p]
    return parts[0] if len(parts) == 1 else "".join(f"<p>{p}</p>" for p in parts)


def items_hash(source: Source) -> str:
    """SHA-256 of everything that decides what the source's items become."""
    doc = {
        # 2: undated items are ordered by their place ("listed"); a new number makes every
        # curated source's next poll re-read its items once, so stored picks follow
        "rules": 2,
        "items": [
            [i.title, i.url, i.summary, i.image, i.date.isoformat() if i.date else None]
            for i in source.items
        ],
        "section": source.section,
        "include": source.include,
        "exclude": source.exclude,
        "strip_params": source.strip_params,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
