"""One poll's answer for a source, by the source's kind: what parse reads next.

One job: `fetch_source` gets a `Fetched` for a source the way its kind asks.
A `kind: curated` source is "fetched" without any request (its items are in
the file, their hash stands in for a body hash); a `kind: feed` source whose
URL answers with an HTML page is polled through the feed that page names
(`parse.discover`), which later polls then ask for directly, until it is
gone.  The HTTP is fetch.py's; this module does not parse, store or decide
when to poll.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ingest import errors
from ingest.model import Fetched, FetchState, Source

if TYPE_CHECKING:
    from ingest.stages.fetch import Fetcher

__all__ = ["FindLinks", "fetch_source"]

log = logging.getLogger("ingest.poll")

FindLinks = Callable[[bytes, str], Awaitable[tuple[str, ...]]]
_FEED_GONE = frozenset({404, 410})  # a discovered feed answering this: read the page again


async def _find_links_here(content: bytes, url: str) -> tuple[str, ...]:
    from ingest.stages.parse.discover import find_feed_links

    return find_feed_links(content, url)


async def fetch_source(
    fetcher: Fetcher,
    source: Source,
    state: FetchState,
    find_links: FindLinks = _find_links_here,
) -> Fetched:
    """One poll's answer for `source`: what parse reads next (raises `IngestError`s).

    - `kind: curated`: no request; the items' hash stands in for a body hash,
      so a poll whose items did not change is `unchanged`.
    - `kind: feed` with a `state.discovered_url`: that feed is asked for
      directly; if it is gone (404, 410), the page is read again for a new one.
    - `kind: feed` answering with an HTML page: the first feed that the page
      names (`find_links`, run where the caller wants the CPU spent) is
      fetched and returned, with `discovered_url` set; a page that names none
      is a `ParseError` saying so.
    """
    if source.kind == "curated":
        from ingest.stages.parse.curated import items_hash

        digest = items_hash(source)
        unchanged = digest == state.body_hash
        return Fetched(source.key, source.url, source.url, 0, body_hash=digest, unchanged=unchanged)
    if source.kind == "feed" and state.discovered_url:
        try:
            fetched = await fetcher.fetch(replace(source, url=state.discovered_url), state)
            return replace(fetched, discovered_url=state.discovered_url)
        except errors.HTTPStatusError as e:
            if e.status not in _FEED_GONE:
                raise
            log.info("%s: discovered feed %s is gone; reading the page again", source.key, e.url)
            state = FetchState(failures=state.failures)
    fetched = await fetcher.fetch(source, state)
    if source.kind != "feed" or not fetched.needs_parse:
        return fetched
    from ingest.stages.parse.discover import looks_like_html

    if not looks_like_html(fetched.content):
        return fetched
    found = await find_links(fetched.content, fetched.final_url)
    links = [u for u in found if u not in (source.url, fetched.final_url)]  # not the page itself
    if not links:
        raise errors.ParseError(
            f"{fetched.final_url}: not a feed: looks like an HTML page, and no feed link was "
            'found on it (<link rel="alternate" type="application/rss+xml" href="...">)'
        )
    feed = await fetcher.fetch(replace(source, url=links[0]), FetchState(failures=state.failures))
    return replace(feed, discovered_url=links[0])
