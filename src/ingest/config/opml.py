"""OPML, the list of subscriptions every feed reader exports and imports (pure).

One job: read the feeds out of an OPML document (`read_opml`), whatever the
reader that wrote it (Miniflux, FreshRSS, NewsBlur, Feedly, ...): every
`<outline>` with an `xmlUrl` is a feed wherever it is nested, its title is
its `title`, else its `text`, else its address's host, and the folder it
sits in (the nearest enclosing outline without an `xmlUrl`) is kept as its
section; and write the sources of a `Config` as OPML 2.0 (`write_opml`), one
folder outline per section.  XML is read with the standard library's
ElementTree over expat, which expands no external entities, and a document
that declares a DTD is refused (no entity expansion bombs).  It reads no
file and edits no sources.yaml (`ingest.cli.sources` does).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from ingest.config import Config
from ingest.errors import IngestError
from ingest.stages.controls import CONTROL_CHARS

__all__ = ["OpmlError", "OpmlFeed", "read_opml", "section_key", "write_opml"]


class OpmlError(IngestError):
    """The document is not OPML we can read."""

    kind = "opml"


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription of an OPML document."""

    url: str  # the outline's xmlUrl
    title: str
    folder: str | None  # the text of the enclosing outline, if any
    html_url: str | None = None


def section_key(folder: str) -> str:
    """A folder's name as a section key: lower-case words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", folder.lower()).strip("-")[:40].strip("-")


def read_opml(content: bytes) -> tuple[OpmlFeed, ...]:
    """Every feed outline of the document, in document order."""
    if b"<!DOCTYPE" in content[:2048] or b"<!ENTITY" in content:
        raise OpmlError("the OPML file declares a DTD or entities; export it again without")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as e:
        raise OpmlError(f"not well-formed XML: {e}") from e
    if root.tag.lower() != "opml":
        raise OpmlError(f"not an OPML document (its root element is <{root.tag}>)")
    body = next((child for child in root if child.tag.lower() == "body"), None)
    if body is None:
        raise OpmlError("the OPML document has no <body>")
    out: list[OpmlFeed] = []
    _walk(body, None, out)
    return tuple(out)


def _attr(element: ET.Element, name: str) -> str:
    """An attribute by name, any case (`xmlUrl`, `xmlurl`, `XMLURL` all occur)."""
    for key, value in element.attrib.items():
        if key.lower() == name.lower():
            # no control character (C1 included: XML allows them, sources.yaml does not),
            # so that one odd title refuses no import
            return CONTROL_CHARS.sub("", " ".join(value.split()))
    return ""


def _walk(parent: ET.Element, folder: str | None, out: list[OpmlFeed]) -> None:
    for outline in parent:
        if outline.tag.lower() != "outline":
            continue
        url = _attr(outline, "xmlUrl")
        label = _attr(outline, "title") or _attr(outline, "text")
        if url:
            title = label or urlsplit(url).hostname or url
            out.append(OpmlFeed(url, title, folder, _attr(outline, "htmlUrl") or None))
        _walk(outline, folder if url else (label or folder), out)


def write_opml(config: Config, now: datetime) -> bytes:
    """The configured feeds (and pages) as OPML 2.0: one outline per section, headed by
    its heading, holding one outline per source; curated sources (no address) are left
    out, and a disabled source is marked `category="disabled"`."""
    by_section: dict[str, list[str]] = {}
    for s in config.sources:
        if s.kind == "curated":
            continue
        attrs = {
            "type": "rss" if s.kind == "feed" else "link",
            "text": s.name,
            "title": s.name,
            ("xmlUrl" if s.kind == "feed" else "url"): s.url,
        }
        if not s.enabled:
            attrs["category"] = "disabled"
        shown = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
        by_section.setdefault(s.section, []).append(f"      <outline {shown}/>")
    order = [p.key for p in config.site.sections]
    order += sorted(k for k in by_section if k not in order)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{_text(config.site.title)}</title>",
        f"    <dateCreated>{format_datetime(now)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]
    for key in order:
        if key not in by_section:
            continue
        heading = config.site.heading(key)
        lines.append(f"    <outline text={quoteattr(heading)} title={quoteattr(key)}>")
        lines += by_section[key]
        lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
