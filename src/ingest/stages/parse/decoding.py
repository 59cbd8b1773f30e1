"""Turn a web page's bytes into text, deciding the encoding as browsers do.

One job: `decode_html` reads a byte-order mark, else the `<meta charset>` (or
XML declaration), else UTF-8 when the bytes are (mostly) UTF-8, else
windows-1252 (what browsers assume for English pages; "iso-8859-1" and
"ascii" labels also mean windows-1252, as browsers read them); `not_html`
says what bytes that are clearly not an HTML page look like (PDF, images,
archives, JSON, binary).  It does not parse HTML or refuse anything itself:
`ingest.stages.parse.page` raises the `ParseError`.
"""

from __future__ import annotations

import codecs
import re

from bs4.dammit import EncodingDetector

__all__ = ["decode_html", "not_html"]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels browsers read as another encoding (WHATWG Encoding Standard, the common ones).
_LABELS = {
    **dict.fromkeys(
        ("ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp1252"),
        "windows-1252",
    ),
    **dict.fromkeys(("utf-16", "utf-16le", "utf-16be", "utf-32"), "utf-8"),  # in a meta tag
    **dict.fromkeys(("gb2312", "x-gbk"), "gbk"),
}
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"{\\rtf", "an RTF document"),
)
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def not_html(content: bytes) -> str | None:
    """What `content` looks like when it is clearly not an HTML page, else None."""
    if content.startswith(tuple(bom for bom, _ in _BOMS)) or content[:2] in (b"<\x00", b"\x00<"):
        return None  # a byte-order mark, or UTF-16 without one: text
    head = content[:1024].lstrip(b" \t\r\n\f")
    if not head:
        return "an empty document"
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if b"\x00" in head or sum(b < 9 or 13 < b < 27 or 27 < b < 32 for b in head) > 2:
        return f"binary data ({len(content)} bytes, starting {head[:8]!r})"
    if head.startswith((b"{", b"[")):
        return "JSON"
    return None


def decode_html(content: bytes) -> str:
    """The page as text: BOM, else declared charset, else UTF-8, else windows-1252."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, errors="replace")
    if content[:2] == b"<\x00":
        return content.decode("utf-16-le", errors="replace")
    if content[:2] == b"\x00<":
        return content.decode("utf-16-be", errors="replace")
    declared = EncodingDetector.find_declared_encoding(content[:16_384], is_html=True)
    if declared:
        label = declared.strip().lower()
        encoding = _LABELS.get(label, label)
        try:
            codecs.lookup(encoding)
        except LookupError:
            pass  # an unknown label: read it as if undeclared
        else:
            return content.decode(encoding, errors="replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Mostly UTF-8 with a few bad bytes (a pasted-in fragment) stays UTF-8; else windows-1252.
    sequences = _UTF8_SEQUENCE.findall(content)
    stray = len(_HIGH_BYTE.findall(content)) - sum(len(m) for m in sequences)
    if len(sequences) > stray:
        return content.decode("utf-8", errors="replace")
    return content.decode("windows-1252", errors="replace")
