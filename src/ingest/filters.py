"""The editors' keyword filters: which normalized Items a source keeps.

`include` keeps only stories whose title or summary mentions at least one of
the words; `exclude` drops stories that mention any.  Words match whole and
case-insensitively (`lead` does not match `leadership`; a phrase such as
`patient safety` matches as written, across any whitespace), on the title and
the summary's text with its HTML tags removed.  Stories older than the
retention horizon are dropped here too.  Pure: Items in, Items out;
it does not fetch, parse or store.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache

from ingest.model import Item, Source

__all__ = ["keep", "matches"]

_TAG = re.compile(r"<[^>]*>")


@lru_cache(maxsize=256)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = [r"\s+".join(map(re.escape, w.split())) for w in words if w.strip()]
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def _text(item: Item) -> str:
    return item.title + "\n" + html.unescape(_TAG.sub(" ", item.summary))


def matches(words: Iterable[str], text: str) -> bool:
    """Whether `text` contains any of `words` as whole words, ignoring case."""
    pattern = _pattern(tuple(words))
    return bool(pattern and pattern.search(text))


def keep(
    source: Source, items: Sequence[Item], *, not_before: datetime | None = None
) -> tuple[Item, ...]:
    """The Items that pass the source's include and exclude lists, in order.

    With `not_before`, stories published earlier are dropped too (the
    retention horizon: what pruning deleted must not come back on the next
    poll).
    """
    if not_before is not None:
        items = [i for i in items if i.published_at >= not_before]
    if not source.include and not source.exclude:
        return tuple(items)
    out = []
    for item in items:
        text = _text(item)
        if source.include and not matches(source.include, text):
            continue
        if source.exclude and matches(source.exclude, text):
            continue
        out.append(item)
    return tuple(out)
