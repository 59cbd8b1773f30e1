"""What one document may cost to read: entries kept, entries parsed, CPU and memory.

A feed is a stranger's document.  The fetcher already caps its size (after
decompression) and the time it takes to download; this module holds the
limits on reading it, as plain values and pure functions:

- `ParseLimits`: the entries kept per poll (`settings: max_entries`, the
  newest), and the CPU seconds and extra memory one parse may use in its
  worker process (`parse_cpu`, `parse_memory`; enforced by `ingest.runtime.parsing.pool`).
- `trim_entries`: before a feed is parsed, a document with more than twice
  `max_entries` entry elements keeps its first and its last `max_entries`
  ones and loses the middle (feeds list newest first, or oldest first), so
  the parse costs in proportion to `max_entries`, not to the body size.
- `newest`: after parsing, the `max_entries` newest entries, in document
  order (undated entries rank after dated ones, earlier before later).

No I/O here; `ingest.runtime.parsing.jobs` applies these in the parse worker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.model import RawEntry, Settings

__all__ = ["ParseLimits", "newest", "trim_entries"]

# An opening <item ...>, <entry ...> or <prefix:item ...> tag (not </item>, not <items>).
_ENTRY_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_OLDEST = datetime.min.replace(tzinfo=UTC)
_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """The bounds on reading one document (defaults as `Settings`)."""

    max_entries: int = _DEFAULTS.max_entries
    cpu_seconds: float = _DEFAULTS.parse_cpu
    memory_bytes: int = _DEFAULTS.parse_memory

    @classmethod
    def of(cls, settings: Settings) -> ParseLimits:
        return cls(settings.max_entries, settings.parse_cpu, settings.parse_memory)


def trim_entries(content: bytes, keep: int) -> bytes:
    """`content` without its middle entries when it has more than `2 * keep`.

    The cut runs from the start of entry `keep + 1` to the start of entry
    `n - keep + 1`, so what remains is the document's head, its first `keep`
    entries, its last `keep` entries and its tail: still well-formed when the
    entries are siblings, as in every feed format.  A document this function
    misjudges (an entry tag inside CDATA) only parses worse, never larger.
    UTF-16/32 documents are returned as they are.
    """
    if keep < 1 or content.count(b"item") + content.count(b"entry") <= 2 * keep:
        return content  # the usual case, decided by two fast scans
    starts = [m.start() for m in _ENTRY_TAG.finditer(content)]
    if len(starts) <= 2 * keep:
        return content
    return content[: starts[keep]] + content[starts[len(starts) - keep] :]


def newest(entries: Sequence[RawEntry], keep: int) -> tuple[RawEntry, ...]:
    """The `keep` newest entries (published, else updated), in document order.

    Undated entries count as older than dated ones; among equals, earlier in
    the document wins (feeds list their newest first).
    """
    if len(entries) <= keep:
        return tuple(entries)
    ranked = sorted(
        range(len(entries)),
        key=lambda i: (_date(entries[i]), -i),
        reverse=True,
    )
    chosen = sorted(ranked[:keep])
    return tuple(entries[i] for i in chosen)


def _date(entry: RawEntry) -> datetime:
    moment = entry.published or entry.updated
    if moment is None:
        return _OLDEST
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
