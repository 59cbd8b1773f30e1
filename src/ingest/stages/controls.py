"""Control characters: kept out of what is stored, and out of what is printed.

One job, at two edges.  `without_controls` removes every C0 control
character and DEL from each text field and URL of an `Item` (tab and newline
stay in text): normalize.py applies it to every Item it makes, so whatever a
feed carries, no NUL reaches PostgreSQL (which refuses it) and no ESC or BEL
reaches a reader's page or terminal (`strip_controls` does the same for
the message of a failed poll).  `printable` makes any text safe for a
terminal: C0, DEL and C1 characters become visible escapes (`\x1b`), so a
story, a server's message or a config value printed by the command line can
never set a window title, move the cursor or ring the bell.  Beside them,
`PRINTABLE_ASCII` is what a header value ingest sends may hold (checked in
sources.yaml and again once the environment has filled it in).  It does not
sanitize HTML (normalize.py does, with nh3).
"""

from __future__ import annotations

import operator
import re
from dataclasses import fields, replace
from typing import Any, Final

from ingest.model import Item

__all__ = [
    "CONTROL_CHARS",
    "CONTROL_CHARS_IN_TEXT",
    "PRINTABLE_ASCII",
    "printable",
    "strip_controls",
    "without_controls",
]

_ITEM_FIELDS: Final = tuple(f.name for f in fields(Item))
_URL_FIELDS: Final = frozenset({"canonical_url", "url", "image_url", "media_url"})
_URL_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")  # C0 and DEL
_TEXT_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # the same but tab and newline
_TERMINAL_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1
_LINE_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # the same but newline
# what sources.yaml refuses in a value: every control character (C0, DEL, C1), and in
# text that may run over lines the same but tab and newline
CONTROL_CHARS: Final = _TERMINAL_CONTROL
CONTROL_CHARS_IN_TEXT: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# what an HTTP header value ingest sends may hold: printable ASCII (sources.yaml's `headers:`,
# checked again once `${NAME}` references are filled in)
PRINTABLE_ASCII: Final = re.compile(r"[\x20-\x7e]*")


_VALUES: Final = operator.attrgetter(*_ITEM_FIELDS)
_URLS: Final = operator.attrgetter(*sorted(_URL_FIELDS))
# the same characters as bytes, for the quick look (each is one byte in UTF-8, and no byte
# of a longer character is one of them)
_URL_CONTROL_BYTES: Final = bytes([*range(0x20), 0x7F])
_TEXT_CONTROL_BYTES: Final = bytes([*range(0x09), *range(0x0B, 0x20), 0x7F])


def _free_of(text: str, controls: bytes) -> bool:
    """Whether `text` has none of `controls`: three times quicker than the pattern's search."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data.translate(None, controls)) == len(data)


def without_controls(item: Item) -> Item:
    """`item` with no C0 control character or DEL in any text field or URL (tab and
    newline stay in text fields); the same `item` when it has none."""
    # the usual case first, two looks in all: a character is in a field exactly when it
    # is in the fields joined (the URL characters include the text ones)
    urls = "".join([v for v in _URLS(item) if v])
    texts = "".join([v for v in _VALUES(item) if isinstance(v, str)])
    if _free_of(urls, _URL_CONTROL_BYTES) and _free_of(texts, _TEXT_CONTROL_BYTES):
        return item
    changes: dict[str, Any] = {}
    for name in _ITEM_FIELDS:
        value = getattr(item, name)
        if isinstance(value, str):
            pattern = _URL_CONTROL if name in _URL_FIELDS else _TEXT_CONTROL
            if pattern.search(value):
                changes[name] = pattern.sub("", value)
    return replace(item, **changes) if changes else item


def strip_controls(text: str) -> str:
    """`text` without C0 control characters and DEL, tab and newline kept: for a
    failure's message, which quotes servers and libraries and is stored."""
    return _TEXT_CONTROL.sub("", text) if _TEXT_CONTROL.search(text) else text


def printable(text: str, *, lines: bool = False) -> str:
    """`text` with every control character (C0, DEL, C1) written as a visible escape
    (`\\x1b`, `\\x07`); with `lines`, newlines are kept."""
    pattern = _LINE_CONTROL if lines else _TERMINAL_CONTROL
    if not pattern.search(text):
        return text
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
