"""Feed discovery: which feeds an HTML page points to with `<link rel="alternate">`.

One job: given the bytes of an HTML page, say whether it is one
(`looks_like_html`) and list the feeds it advertises in its head
(`find_feed_links`), as absolute URLs.  Pure: it fetches nothing (the
pipeline fetches the feed it picks) and stores nothing.  bs4 is imported on
first use, so importing this module is cheap.

What counts as a feed link: a `<link>` whose `rel` includes `alternate`, whose
`type` is `application/rss+xml`, `application/atom+xml`,
`application/rdf+xml` or `application/feed+json`, and whose `href` resolves
(against the page's `<base href>`, else the page URL) to an http(s) URL.
They come in page order, except that comment feeds (WordPress's "Comments
Feed") go last.
"""

from __future__ import annotations

import warnings

from ingest.stages.parse.sniff import sniff
from ingest.stages.urls import href_url

__all__ = ["FEED_TYPES", "find_feed_links", "looks_like_html"]

FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json"}
)


def looks_like_html(content: bytes) -> bool:
    """Whether `content` is an HTML page: its root element (or, without one, its DOCTYPE)
    says so (`ingest.stages.parse.sniff`).  An Atom or RSS root under `<!DOCTYPE html>` is a
    feed, and JSON is never a page whatever its strings hold.

    Decided on the bytes, not the Content-Type: servers send feeds as
    text/html often enough.
    """
    return sniff(content) == "html"


def find_feed_links(content: bytes, url: str) -> tuple[str, ...]:
    """The feeds the page at `url` advertises, as absolute URLs (see the module doc).

    Never raises: a page that cannot be read advertises nothing.
    """
    try:
        from bs4 import BeautifulSoup, Tag
        from bs4.filter import SoupStrainer

        with warnings.catch_warnings():  # bs4's advice (XML read as HTML ...) is not for users
            warnings.simplefilter("ignore")
            soup = BeautifulSoup(
                content,
                _features(),
                parse_only=SoupStrainer(["link", "base"]),
                multi_valued_attributes=None,
            )
    except Exception:  # bs4 recovers from nearly anything; a raise means "no links"
        return ()
    base = url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = href_url(str(base_tag.get("href") or ""), url) or url
    main: dict[str, None] = {}
    comments: dict[str, None] = {}
    for tag in soup.find_all("link"):
        if not isinstance(tag, Tag):
            continue
        rel = str(tag.get("rel") or "").lower().split()
        kind = str(tag.get("type") or "").partition(";")[0].strip().lower()
        if "alternate" not in rel or kind not in FEED_TYPES:
            continue
        href = href_url(str(tag.get("href") or ""), base)
        if href is None:
            continue
        title = str(tag.get("title") or "").lower()
        is_comments = "comment" in title or "/comments/" in href.lower()
        (comments if is_comments else main).setdefault(href, None)
    return tuple(main) + tuple(u for u in comments if u not in main)


def _features() -> str:
    import importlib.util

    return "lxml" if importlib.util.find_spec("lxml") is not None else "html.parser"
