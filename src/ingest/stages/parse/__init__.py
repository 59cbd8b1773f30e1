"""Turn a fetched document into `RawEntry` values, by the source's kind.

One job: dispatch `Fetched` content to the reader for `Source.kind` (feeds to
`parse.feed`, pages to `parse.page`, curated sources' own items to
`parse.curated`).  It does no reading itself, no cleaning
(that is `ingest.stages.normalize`) and no I/O.  Importing it is cheap: the readers
(and so feedparser and the page reader's libraries) are imported on first use.
"""

from __future__ import annotations

from ingest.errors import ParseError
from ingest.model import Fetched, RawEntry, Source

__all__ = ["parse", "parse_quick"]


def parse(source: Source, fetched: Fetched, *, fast: bool = True) -> tuple[RawEntry, ...]:
    """The entries of `fetched`, read as `source.kind` says.

    A 304 or a byte-identical body (`fetched.needs_parse` false) has nothing
    to read and gives an empty tuple.  Raises `ParseError` when the document
    cannot be read as that kind at all.  `fast=False`: a feed goes straight to
    feedparser (the fast reader already refused it: `parse_quick`).
    """
    if not fetched.needs_parse:
        return ()
    if source.kind == "feed":
        from ingest.stages.parse.feed import parse_feed

        return parse_feed(fetched.content, fetched.final_url, fetched.content_type, fast=fast)
    if source.kind == "page":
        from ingest.stages.parse.page import parse_page

        return parse_page(source, fetched.content, fetched.final_url)
    if source.kind == "curated":
        from ingest.stages.parse.curated import curated_entries

        return curated_entries(source)
    raise ParseError(f"{source.key}: unknown source kind {source.kind!r}")


def parse_quick(source: Source, fetched: Fetched) -> tuple[RawEntry, ...] | None:
    """`parse`'s entries when a reader of linear cost takes the document (a curated
    source's own items, a JSON Feed, well-formed RSS or Atom: `parse.feed.parse_feed_fast`),
    else None: the document needs feedparser or the page reader, whose cost on a
    hostile document is not bounded by its size (the caller runs those under budgets)."""
    if not fetched.needs_parse:
        return ()
    if source.kind == "curated":
        from ingest.stages.parse.curated import curated_entries

        return curated_entries(source)
    if source.kind != "feed":
        return None
    from ingest.stages.parse.feed import parse_feed_fast

    return parse_feed_fast(fetched.content, fetched.final_url, fetched.content_type)
