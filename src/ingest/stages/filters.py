"""The editors' keyword filters: which normalized Items a source keeps.

`include` keeps only stories whose title or summary mentions at least one of
the words; `exclude` drops stories that mention any.  Words match whole and
case-insensitively (`lead` does not match `leadership`; a phrase such as
`patient safety` matches as written, across any whitespace), on the title and
the summary's text with its HTML tags removed.  Stories older than the
retention horizon, or than the source's own `max_age`, are dropped here too
(the stricter of the two wins; an editor's undated pick, `date_source`
"listed", has no age), and so are those the source's keep/drop `rules`
turn away (rules.py).  `verdicts` says why each dropped story was
dropped (for `ingest try`); `keep` is what the pipeline stores, and
`why_none_kept` the run's one-line reason when it keeps nothing.  Pure: Items
in, Items out; it does not fetch, parse or store.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from ingest.model import Item, Source
from ingest.stages.rules import rule_verdict

__all__ = ["keep", "matches", "verdicts", "why_none_kept"]

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


def _found(words: Iterable[str], text: str) -> str | None:
    pattern = _pattern(tuple(words))
    m = pattern.search(text) if pattern else None
    return m.group(0) if m else None


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def verdicts(
    source: Source,
    items: Sequence[Item],
    *,
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> tuple[tuple[Item, str | None], ...]:
    """Each Item with why the source's filters drop it, or None when it is kept.

    `not_before` is the retention horizon (what pruning deleted must not come
    back on the next poll); with `now`, the source's `max_age` drops stories
    published more than that long before it.
    """
    max_age_limit = None
    if source.max_age is not None and now is not None:
        max_age_limit = now - timedelta(seconds=source.max_age)
    out: list[tuple[Item, str | None]] = []
    for item in items:
        why: str | None = None
        day = f"{item.published_at:%Y-%m-%d}"
        aged = item.date_source != "listed"  # an editor's undated pick has no age
        if aged and max_age_limit is not None and item.published_at < max_age_limit:
            assert source.max_age is not None
            why = f"published {day}, older than max_age {_age(source.max_age)}"
        elif aged and not_before is not None and item.published_at < not_before:
            why = f"published {day}, before the retention horizon (settings: retention)"
        elif source.include or source.exclude:
            text = _text(item)
            if source.include and not matches(source.include, text):
                why = "mentions none of the include words"
            elif source.exclude and (word := _found(source.exclude, text)) is not None:
                why = f"mentions {word!r} (exclude)"
        if why is None and source.rules:
            why = rule_verdict(source.rules, item)
        out.append((item, why))
    return tuple(out)


def why_none_kept(
    source: Source,
    items: Sequence[Item],
    *,
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> str | None:
    """When `items` is not empty and the filters keep none of them, say why in a few words
    ("10 entries, all older than the 365-day retention"); else None."""
    if not items:
        return None
    judged = verdicts(source, items, not_before=not_before, now=now)
    reasons = [why for _, why in judged]
    if any(why is None for why in reasons):
        return None
    count = f"{len(items)} {'entry' if len(items) == 1 else 'entries'}"
    retention = "the retention horizon"
    if not_before is not None and now is not None:
        retention = f"the {_age((now - not_before).total_seconds())} retention".replace(
            "d retention", "-day retention"
        )
    kinds = {
        "max_age": sum("max_age" in str(w) for w in reasons),
        "retention": sum("retention" in str(w) for w in reasons),
    }
    kinds["filters"] = len(reasons) - kinds["max_age"] - kinds["retention"]
    words = {
        "max_age": f"older than max_age {_age(source.max_age or 0)}",
        "retention": f"older than {retention}",
        "filters": "dropped by include/exclude" + (" or rules" if source.rules else ""),
    }
    present = [k for k, n in kinds.items() if n]
    if len(present) == 1:
        return f"{count}, all {words[present[0]]}"
    return f"{count}, none kept: " + ", ".join(f"{kinds[k]} {words[k]}" for k in present)


def keep(
    source: Source,
    items: Sequence[Item],
    *,
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> tuple[Item, ...]:
    """The Items that pass the source's filters (see `verdicts`), in order."""
    if not source.include and not source.exclude and source.max_age is None and not source.rules:
        if not_before is None:
            return tuple(items)
        return tuple(i for i in items if i.published_at >= not_before or i.date_source == "listed")
    return tuple(
        item for item, why in verdicts(source, items, not_before=not_before, now=now) if why is None
    )
