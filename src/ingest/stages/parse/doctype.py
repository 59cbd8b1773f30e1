"""Cut a DOCTYPE's internal subset out of XML bytes, so that no entity is ever declared.

One job: `strip_internal_subset`, the feed reader's defence against entity
expansion ("billion laughs", quadratic blow-up) and external entities (XXE).

- Only a real DOCTYPE declaration is touched: the prolog is walked as an XML
  parser walks it (the XML declaration, processing instructions and
  comments are skipped whole, so a comment that mentions `<!DOCTYPE [` is
  just a comment), up to the root element.  Junk text in the prolog (a
  server's warning printed above the feed) is stepped over the same way.
- The internal subset, where `<!ENTITY` declarations live, is removed; the
  rest of the DOCTYPE is kept (its external identifier lets feedparser
  recognise Netscape RSS 0.91, and is never fetched).
- References to the general entities the subset declared (`&lol9;`,
  `&xxe;`) are then dropped from the document: they can no longer mean
  anything, and a story must never be titled with one.  The five predefined
  entities (`&amp;` ...) and character references are never touched.
- UTF-16/32 documents are decoded, cut and re-encoded.

It does not parse XML or read entries (`ingest.stages.parse.feed` does).
"""

from __future__ import annotations

import codecs
import re

from ingest.stages.parse.sniff import prolog, wide_encoding

__all__ = ["strip_internal_subset"]

# <!DOCTYPE name externalID? [internal subset]? >: quoted strings, and comments and
# PIs inside the subset, honoured (a "]" or ">" in them ends nothing).
_DOCTYPE = re.compile(
    rb"""<!DOCTYPE\b((?:"[^"]*"|'[^']*'|[^"'\[>])*)"""
    rb"""(\[(?:"[^"]*"|'[^']*'|<!--.*?-->|<\?.*?\?>|[^"'\]])*\])?\s*>""",
    re.IGNORECASE | re.DOTALL,
)
_SUBSET_END = re.compile(rb"\]\s*>")
_GENERAL_ENTITY = re.compile(rb"<!ENTITY\s+([^\s%][^\s\"'>]*)")
_REFERENCE = re.compile(rb"&([A-Za-z_:][\w.:-]*);")
_PREDEFINED = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})


def strip_internal_subset(data: bytes) -> bytes:
    """`data` without the DOCTYPE's internal subset, nor references to what it declared.

    Returns `data` itself (the same object) when there is nothing to cut.  A
    wide document that cannot be decoded is returned as is (feedparser will
    not read it as a feed either).
    """
    wide = wide_encoding(data)
    if wide is None:
        return _strip(data)
    encoding, bom_length = wide
    bom = data[:bom_length]
    try:
        text = data[bom_length:].decode(encoding)
    except UnicodeDecodeError:
        return data
    utf8 = text.encode("utf-8")
    cut = _strip(utf8)
    return data if cut is utf8 else bom + cut.decode("utf-8").encode(encoding)


def _strip(data: bytes) -> bytes:
    at = _doctype_position(data)
    if at < 0:
        return data
    m = _DOCTYPE.match(data, at)
    if m is not None:
        subset = m.group(2)
        if subset is None:  # no internal subset: nothing declared, nothing to expand
            return data
        kept = data[:at] + b"<!DOCTYPE" + m.group(1).rstrip() + b">"
        return _drop_references(kept, data[m.end() :], subset)
    # Malformed: drop everything from the DOCTYPE to the end of what looks like its subset.
    end = _SUBSET_END.search(data, at)
    stop = end.end() if end is not None else data.find(b">", at) + 1 or len(data)
    return _drop_references(data[:at], data[stop:], data[at:stop])


def _drop_references(before: bytes, rest: bytes, subset: bytes) -> bytes:
    """`before + rest`, with the references in `rest` to entities `subset` declared removed."""
    declared = {m.group(1) for m in _GENERAL_ENTITY.finditer(subset)} - _PREDEFINED
    if declared and b"&" in rest:
        rest = _REFERENCE.sub(lambda r: b"" if r.group(1) in declared else r.group(0), rest)
    return before + rest


def _doctype_position(data: bytes) -> int:
    """Where the prolog's DOCTYPE starts, or -1 when the root element comes first
    (`ingest.stages.parse.sniff.prolog`, junk text stepped over)."""
    return prolog(data, 3 if data.startswith(codecs.BOM_UTF8) else 0, junk=True).doctype_at
