"""Say what a fetched document is from its first bytes: JSON, a feed, an HTML page.

One job: `sniff` reads the start of a document the way a parser would meet
it (byte-order mark, whitespace, the XML declaration, processing
instructions, comments, a DOCTYPE) and decides by what comes first after
that prolog: `{`/`[` is JSON, a root element `<rss>`, `<feed>` or
`<rdf:RDF>` is a feed whatever DOCTYPE stands before it (static-site
generators write `<!DOCTYPE html>` above Atom feeds), `<html>`, `<head>` or
`<body>` is a page, and so is anything under an HTML DOCTYPE.  Text inside
a comment or a JSON string never counts.  It does not parse documents,
decode them beyond the first few KiB, or raise: the readers do that.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal, NamedTuple

__all__ = ["DocumentKind", "Prolog", "prolog", "root_element", "sniff", "wide_encoding"]

DocumentKind = Literal["json", "feed", "html", "xml", "unknown"]

_HEAD = 8192  # bytes looked at: prologs longer than this are not real documents
_SPACE = b" \t\r\n\f"
_PI = re.compile(rb"<\?.*?\?>", re.DOTALL)
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
# <!DOCTYPE name ...>, quoted strings and an internal subset honoured
_DOCTYPE = re.compile(
    rb"""<!DOCTYPE\s+([^\s\[>]*)(?:"[^"]*"|'[^']*'|\[(?:"[^"]*"|'[^']*'|[^"'\]])*\]|[^"'\[>])*>""",
    re.IGNORECASE,
)
_ELEMENT = re.compile(rb"<([A-Za-z_][\w:.-]*)")
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf", b"channel"})  # local names, any case
_HTML_ROOTS = frozenset({b"html", b"head", b"body"})
# Encodings that are not ASCII-compatible, sniffed as XML 1.0 appendix F does:
# (first bytes, codec, whether those bytes are a byte-order mark)
_WIDE = (
    (codecs.BOM_UTF32_BE, "utf-32-be", True),
    (codecs.BOM_UTF32_LE, "utf-32-le", True),
    (codecs.BOM_UTF16_BE, "utf-16-be", True),
    (codecs.BOM_UTF16_LE, "utf-16-le", True),
    (b"\x00\x00\x00<", "utf-32-be", False),
    (b"<\x00\x00\x00", "utf-32-le", False),
    (b"\x00<", "utf-16-be", False),
    (b"<\x00", "utf-16-le", False),
)


def sniff(content: bytes) -> DocumentKind:
    """What `content` is: "json", "feed", "html", "xml" (another root) or "unknown"."""
    head = _ascii_head(content)
    if head[:1] in (b"{", b"["):
        return "json"
    _, doctype, root = prolog(head)
    if root is not None:
        local = root.rpartition(b":")[2].lower()
        if local in _FEED_ROOTS:
            return "feed"
        if local in _HTML_ROOTS:
            return "html"
    if doctype is not None and doctype.lower() == b"html":
        return "html"
    return "unknown" if root is None else "xml"


def root_element(content: bytes) -> str | None:
    """The name of the document's root element as written, when the prolog leads to one."""
    root = prolog(_ascii_head(content)).root
    return None if root is None else root.decode("ascii", "replace")


def wide_encoding(data: bytes) -> tuple[str, int] | None:
    """(codec, length of its byte-order mark) when `data` is UTF-16 or UTF-32, else None."""
    for marker, encoding, is_bom in _WIDE:
        if data.startswith(marker):
            return encoding, len(marker) if is_bom else 0
    return None


def _ascii_head(content: bytes) -> bytes:
    """The first bytes, BOM and leading whitespace removed, wide encodings made UTF-8."""
    head = content[:_HEAD]
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    elif (wide := wide_encoding(head)) is not None:
        encoding, bom = wide
        width = 4 if "32" in encoding else 2
        body = head[bom:]
        head = body[: len(body) - len(body) % width].decode(encoding, "ignore").encode()
    return head.lstrip(_SPACE)


class Prolog(NamedTuple):
    """What comes before a document's root element."""

    doctype_at: int  # where `<!DOCTYPE` starts, or -1
    doctype: bytes | None  # its name (`html`, `rss`), when it could be read
    root: bytes | None  # the root element's name, when the prolog leads to one


def prolog(data: bytes, start: int = 0, *, junk: bool = False) -> Prolog:
    """Walk a document's prolog from `start` as an XML parser does: whitespace, PIs and
    comments are skipped whole (a comment that mentions `<!DOCTYPE` is a comment), a
    DOCTYPE is noted, and the first element is the root.

    Text that is none of these means there is no root to speak of (a text file,
    JSON), unless `junk` is true: then it is stepped over to the next `<` (a
    server's warning printed above a feed).
    """
    pos, size = start, len(data)
    doctype_at, doctype = -1, None
    while pos < size:
        while pos < size and data[pos] in _SPACE:
            pos += 1
        if data.startswith(b"<?", pos):
            m = _PI.match(data, pos)
        elif data.startswith(b"<!--", pos):
            m = _COMMENT.match(data, pos)
        elif data[pos : pos + 9].upper() == b"<!DOCTYPE":
            m = _DOCTYPE.match(data, pos)
            if doctype_at < 0:  # the first one is the declaration; a parser stops at another
                doctype_at, doctype = pos, m.group(1) if m is not None else None
        elif (element := _ELEMENT.match(data, pos)) is not None:
            return Prolog(doctype_at, doctype, element.group(1))
        elif junk and (nxt := data.find(b"<", pos + 1)) >= 0:
            pos = nxt
            continue
        else:
            break
        if m is None:  # unterminated: the rest is inside it
            break
        pos = m.end()
    return Prolog(doctype_at, doctype, None)
