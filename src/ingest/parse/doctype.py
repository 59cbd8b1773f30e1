"""Cut a DOCTYPE's internal subset out of XML bytes, so that no entity is ever declared.

One job: `strip_internal_subset`, the feed reader's defence against entity
expansion ("billion laughs", quadratic blow-up) and external entities (XXE).
The DOCTYPE's internal subset, where `<!ENTITY` declarations live, is removed
from the bytes before feedparser sees them; the rest of the DOCTYPE is kept
(its external identifier lets feedparser recognise Netscape RSS 0.91, and is
never fetched).  The DOCTYPE is looked for after the XML declaration,
comments and PIs; UTF-16/32 documents are decoded, cut and re-encoded.  It
does not parse XML or read entries (`ingest.parse.feed` does).
"""

from __future__ import annotations

import codecs
import re

__all__ = ["strip_internal_subset"]

# Before the root element: where a DOCTYPE may sit.
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_DOCTYPE_START = re.compile(rb"\s*(<!DOCTYPE\b)", re.IGNORECASE)
_DOCTYPE_ANYWHERE = re.compile(rb"(<!DOCTYPE\b)", re.IGNORECASE)
# What may come before a DOCTYPE: whitespace, the XML declaration, PIs, comments.
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
# <!DOCTYPE name externalID? [internal subset]? >, quoted strings honoured.
_DOCTYPE = re.compile(
    rb"""<!DOCTYPE\b((?:"[^"]*"|'[^']*'|[^"'\[>])*)"""
    rb"""(\[(?:"[^"]*"|'[^']*'|[^"'\]])*\])?\s*>""",
    re.IGNORECASE,
)
_SUBSET_END = re.compile(rb"\]\s*>")

# Encodings that are not ASCII-compatible, sniffed as XML 1.0 appendix F does.
# (first bytes, codec, whether those bytes are a byte-order mark)
_WIDE_ENCODINGS = (
    (codecs.BOM_UTF32_BE, "utf-32-be", True),
    (codecs.BOM_UTF32_LE, "utf-32-le", True),
    (codecs.BOM_UTF16_BE, "utf-16-be", True),
    (codecs.BOM_UTF16_LE, "utf-16-le", True),
    (b"\x00\x00\x00<", "utf-32-be", False),
    (b"<\x00\x00\x00", "utf-32-le", False),
    (b"\x00<\x00?", "utf-16-be", False),
    (b"<\x00?\x00", "utf-16-le", False),
)


def strip_internal_subset(data: bytes) -> bytes:
    """`data` with the DOCTYPE's internal subset removed (the rest of it kept).

    The external identifier stays so feedparser still recognises Netscape RSS
    0.91; it never fetches it.  Wide encodings (UTF-16/32) are decoded, cut and
    re-encoded; a document that cannot be decoded is returned as is (feedparser
    will not read it as a feed either).
    """
    for marker, encoding, is_bom in _WIDE_ENCODINGS:
        if data.startswith(marker):
            bom = marker if is_bom else b""
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                return data
            utf8 = text.encode("utf-8")
            cut = _strip_internal_subset_ascii(utf8)
            return data if cut is utf8 else bom + cut.decode("utf-8").encode(encoding)
    return _strip_internal_subset_ascii(data)


def _strip_internal_subset_ascii(data: bytes) -> bytes:
    at = _doctype_position(data)
    if at < 0:
        return data
    m = _DOCTYPE.match(data, at)
    if m is not None:
        if m.group(2) is None:  # no internal subset: nothing to expand
            return data
        return data[:at] + b"<!DOCTYPE" + m.group(1).rstrip() + b">" + data[m.end() :]
    # Malformed: drop everything from the DOCTYPE to the end of what looks like its subset.
    end = _SUBSET_END.search(data, at)
    stop = end.end() if end is not None else data.find(b">", at) + 1 or len(data)
    return data[:at] + data[stop:]


def _doctype_position(data: bytes) -> int:
    """Where the DOCTYPE starts, or -1: after the XML declaration, comments and PIs."""
    pos = 3 if data.startswith(codecs.BOM_UTF8) else 0
    while (item := _PROLOG_ITEM.match(data, pos)) is not None and item.end() > pos:
        pos = item.end()
    if (here := _DOCTYPE_START.match(data, pos)) is not None:
        return here.start(1)
    # Junk in the prolog: no XML parser accepts it, but look before the first element anyway.
    first = _FIRST_ELEMENT.search(data)
    later = _DOCTYPE_ANYWHERE.search(data, 0, first.start() if first else len(data))
    return later.start(1) if later is not None else -1
