"""Which WebSub hub a fetched feed advertises, and under which topic URL (pure).

One job: `advert_of` reads a feed's WebSub discovery (W3C WebSub §4) from an
answer's HTTP `Link` header and from the document itself: `<link rel="hub">`
and `<link rel="self">` among an Atom feed's own elements, `<atom:link>` in
an RSS channel (RSS 2.0, RSS 1.0), or a JSON Feed's `hubs` and `feed_url`.
The header wins over the document, as the Recommendation asks; the first
hub is taken; the topic is the `rel="self"` URL, else the URL the feed was
fetched from.  Relative URLs are resolved against the feed's URL and only
http(s) URLs count.

It is cheap enough for the event loop: a body without the bytes `hub` is not
read at all, and an XML document is read with lxml's pull parser (no
entities, no DTD, no network) only up to its first entry and at most
`HEAD_BYTES`, since feed-level links come before the entries.  It never
raises: a document it cannot read advertises nothing.  Subscribing is
`websub.py`'s and the scheduler's business, not this module's.
"""

from __future__ import annotations

import json
import re
from typing import Final

from lxml import etree

from ingest.model import Advert, Fetched
from ingest.stages.parse.doctype import strip_internal_subset
from ingest.stages.parse.sniff import sniff
from ingest.stages.urls import absolute_http_url

__all__ = ["HEAD_BYTES", "advert_of", "header_links"]

HEAD_BYTES: Final = 256 * 1024  # an XML document is read this far at most for its links
_ATOM: Final = "{http://www.w3.org/2005/Atom}"
_ENTRIES: Final = frozenset(
    {f"{_ATOM}entry", "item", "{http://purl.org/rss/1.0/}item", "entry"}
)  # fmt: skip
_LINK = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)
_STEP = 16 * 1024


def header_links(value: str | None, base: str) -> tuple[list[str], list[str]]:
    """The hub and self URLs of HTTP `Link` header values (RFC 8288), in order, absolute."""
    hubs: list[str] = []
    selves: list[str] = []
    for target, params in _LINK.findall(value or ""):
        m = _REL.search(params)
        if m is None:
            continue
        rels = (m.group(1) or m.group(2) or "").lower().split()
        url = absolute_http_url(target, base)
        if url is None:
            continue
        if "hub" in rels:
            hubs.append(url)
        if "self" in rels:
            selves.append(url)
    return hubs, selves


def advert_of(fetched: Fetched) -> Advert | None:
    """The hub and topic `fetched` advertises (header first, then the document), or None."""
    base = fetched.final_url
    hubs, selves = header_links(fetched.link, base)
    if not hubs or not selves:
        found_hubs, found_selves = _document_links(fetched.content, base)
        hubs = hubs or found_hubs
        selves = selves or found_selves
    if not hubs:
        return None
    return Advert(hub=hubs[0], topic=selves[0] if selves else base)


def _document_links(content: bytes, base: str) -> tuple[list[str], list[str]]:
    if not content or not _mentions_hub(content):
        return [], []
    if sniff(content) == "json":
        # a JSON Feed names its hubs under "hubs": without that key (a "github" link
        # is no hub) the whole document is not decoded a second time
        return _json_links(content, base) if b'"hubs"' in content else ([], [])
    return _xml_links(content[:HEAD_BYTES], base)


def _mentions_hub(content: bytes) -> bool:
    """Whether `hub`, in any case, is anywhere in `content`: each 64 KiB piece lowered (ASCII,
    as a case-blind `re` over bytes folds it) and searched as a plain string, which is four
    times quicker than the case-blind pattern; a piece overlaps the next by two bytes."""
    for start in range(0, len(content), _STEP * 4):
        if b"hub" in content[start : start + _STEP * 4 + 2].lower():
            return True
    return False


def _json_links(content: bytes, base: str) -> tuple[list[str], list[str]]:
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        return [], []
    if not isinstance(doc, dict):
        return [], []
    hubs = [
        url
        for h in doc.get("hubs") or []
        if isinstance(h, dict)
        and str(h.get("type", "")).lower() in ("websub", "pubsubhubbub")
        and isinstance(h.get("url"), str)
        and (url := absolute_http_url(h["url"], base)) is not None
    ]
    own = doc.get("feed_url")
    self_url = absolute_http_url(own, base) if isinstance(own, str) else None
    return hubs, [self_url] if self_url else []


def _xml_links(head: bytes, base: str) -> tuple[list[str], list[str]]:
    """The feed-level hub and self links of an XML feed's first bytes, before any entry."""
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )  # fmt: skip
    hubs: list[str] = []
    selves: list[str] = []
    data = strip_internal_subset(head)
    depth_of_feed = {"feed": 1, "channel": 2}  # Atom: children of <feed>; RSS: of <channel>
    try:
        for start in range(0, len(data), _STEP):
            parser.feed(data[start : start + _STEP])
            for _event, el in parser.read_events():
                tag = el.tag if isinstance(el.tag, str) else ""
                if tag in _ENTRIES:
                    return hubs, selves
                if tag != f"{_ATOM}link" or _depth(el) != depth_of_feed.get(_parent_name(el)):
                    continue
                rels = (el.get("rel") or "").lower().split()
                url = absolute_http_url(el.get("href"), base)
                if url is not None and "hub" in rels:
                    hubs.append(url)
                if url is not None and "self" in rels:
                    selves.append(url)
    except etree.LxmlError:
        pass  # what was read before the fault stands; a broken document says no more
    return hubs, selves


def _parent_name(el: etree._Element) -> str:
    parent = el.getparent()
    if parent is None or not isinstance(parent.tag, str):
        return ""
    return str(etree.QName(parent).localname)


def _depth(el: etree._Element) -> int:
    depth = 0
    parent = el.getparent()
    while parent is not None:
        depth += 1
        parent = parent.getparent()
    return depth
