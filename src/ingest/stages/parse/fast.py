"""The fast feed reader: well-formed RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 on lxml.

One job: `read_fast` turns a feed document into the entries feedparser would
give (dicts with the keys `ingest.stages.parse.feed` reads, so one function makes
`RawEntry` values of both), for the documents it accepts, in a fraction of
the time; for any other document it returns None and the caller reads it
with feedparser.  Each entry is replayed by `ingest.stages.parse.fast_entry`.  It
does not fetch, clean, sanitize or decide identity (that is
`ingest.stages.normalize`, shared by both paths).

How it stays identical: the bytes are decoded exactly as feedparser decodes
them (its own `convert_to_utf8`); lxml parses them with no entity
resolution, no network, no DTD and no recovery; then each entry's
elements are replayed through the few feedparser rules that make the
fields `RawEntry` holds (element names lower-cased and namespaces mapped to
feedparser's prefixes, summary/content precedence, the title depth rule,
author details, links, enclosures, media, xml:base, its text repairs), and
dates go through feedparser's own date parser.  tests/test_fastpath.py
compares both paths over the real-world corpus, a feedlab corpus, every
feed under tests/data and generated documents.

What is left to feedparser (`read_fast` returns None):

- a document that is not well-formed XML for lxml, or has a DOCTYPE;
- an encoding feedparser had to guess or override (a charset that does not
  decode the bytes, or that disagrees with the declaration);
- a root other than `<rss>`, `<rdf:RDF>` of RSS 1.0 or Atom 1.0's `<feed>`;
- inside an entry: markup inside a text element (unescaped HTML, Atom
  `type="xhtml"`), base64 or other non-text content types, an `<image>`
  or `<textinput>` element, an author with nested elements.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import feedparser as _fp
import feedparser.encodings
import feedparser.urls
from lxml import etree

from ingest.stages.parse.fast_entry import (
    FEED_LEVEL_REFUSED,
    EntryReader,
    Refused,
    base_of,
    name_of,
)

__all__ = ["read_fast"]

_ATOM = "http://www.w3.org/2005/Atom"
_RSS10 = "http://purl.org/rss/1.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    recover=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def read_fast(content: bytes, url: str, content_type: str | None) -> list[dict[str, Any]] | None:
    """Feedparser-shaped entries of `content` (the keys `ingest.stages.parse.feed` reads), or
    None when the document is left to feedparser (see the module doc)."""
    data = _decoded(content, content_type or "application/xml")
    if data is None or _DOCTYPE.search(data, 0, 4096):
        return None
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return None
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag not in ("rss", f"{{{_RDF}}}RDF", f"{{{_ATOM}}}feed"):
        return None
    base = str(_fp.urls.make_safe_absolute_uri(url)) if b"xml:base" in content else ""
    try:
        return list(_Walk(base).document(root))
    except Refused:
        return None


def _decoded(content: bytes, content_type: str) -> bytes | None:
    """The document as UTF-8 bytes, decoded as feedparser decodes it, or None when
    feedparser had to guess: a charset that did not decode, or two that disagree."""
    media, charset = _fp.encodings.parse_content_type(content_type)
    start = content[3:] if content.startswith(b"\xef\xbb\xbf") else content
    declared = _fp.encodings.RE_XML_PI_ENCODING.match(start)
    xml_encoding = declared.group(1).decode("ascii", "replace").lower() if declared else ""
    if charset and xml_encoding and charset.lower() != xml_encoding:
        return None
    xml_type = media in _XML_MEDIA or (media.startswith("application/") and media.endswith("+xml"))
    if (
        xml_type
        and (charset or xml_encoding or "utf-8") in _UTF8
        and start[:1] in (b"<", b" ", b"\t", b"\r", b"\n")
    ):
        return content  # what feedparser would decode as UTF-8 (lxml refuses it if it is not)
    result: dict[str, Any] = {}
    try:
        data: bytes = _fp.encodings.convert_to_utf8({"content-type": content_type}, content, result)
    except Exception:  # whatever feedparser's decoder does, feedparser reads it
        return None
    problem = type(result.get("bozo_exception")).__name__
    encoding = str(result.get("encoding") or "").lower()
    if problem == "CharacterEncodingOverride" and encoding in _UTF8:
        return data  # text/xml's us-ascii default given up for the declared UTF-8: no doubt
    if not encoding or problem not in ("NoneType", "NonXMLContentType"):
        return None
    return data


_XML_MEDIA = frozenset({"application/xml", "application/xml-dtd"})
_UTF8 = frozenset({"utf-8", "utf8"})


class _Walk:
    """One document's entries, each element replayed through feedparser's rules."""

    def __init__(self, base: str) -> None:
        self.base = base

    # -- the document -----------------------------------------------------------------

    def document(self, root: Any) -> Iterator[dict[str, Any]]:
        stack = [(root, base_of(root, self.base), 1)]
        while stack:
            el, base, depth = stack.pop()
            inside = []  # the children that are not entries, read after this element's entries
            for child in el:
                name, child_base = name_of(child), base_of(child, base)
                if name in ("item", "entry"):
                    yield EntryReader(child, child_base, depth + 1).read()
                elif name in FEED_LEVEL_REFUSED:
                    raise Refused  # feed-level content would carry into the first entry
                else:
                    inside.append((child, child_base, depth + 1))
            stack.extend(reversed(inside))
