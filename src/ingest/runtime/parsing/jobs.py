"""Where parse -> normalize -> filter runs: in the polling process, or in a budgeted pool.

Most documents are small, well-formed RSS, Atom or JSON Feeds, which readers
of linear cost take (the fast reader on lxml, the JSON Feed reader): the
pipeline reads those in a thread of its own process (`sift_here`, at most
`QUICK_MAX` bytes, sources without `rules`), with no pickling and no worker
process.  The rest (feedparser's recovery of malformed XML, HTML pages,
larger documents, editors' regular expressions) runs in a small process pool
started when the first such document arrives (`parse_job`).  This module
starts such pools and holds the functions both paths run; it does no I/O of
its own and decides nothing about what to store.  The pool itself
(`ParsePool`: budgets inside each worker, replacing workers that die) is
`ingest.runtime.parsing.pool`.

A hostile document must not pin a core or eat the machine's memory.  What
`sift_here` takes is bounded by its size (256 KiB of bytes, lxml without
entities, DTDs or recovery, HTML nested no deeper than `normalize.MAX_DEPTH`);
every job in a pool runs under budgets (`bounds.ParseLimits`, from `settings:
parse_cpu` and `parse_memory`), in three layers:

1. Before parsing, a feed with more than twice `max_entries` entries loses
   its middle ones (`bounds.trim_entries`), and after parsing only the
   `max_entries` newest entries are normalized: the work is proportional to
   `max_entries`, not to the body size.
2. In the worker, a CPU timer interrupts a parse that used `parse_cpu`
   seconds of CPU, and an address-space limit makes an allocation past
   `parse_memory` fail: both end as a clean per-source parse error, and the
   worker lives on (`parse_pool.budget`).
3. A parse stuck inside C code is killed by the kernel, and `ParsePool`
   replaces the workers so that only the culprit fails (`ingest.runtime.parsing.pool`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime
from typing import Any

from ingest import errors
from ingest.model import Fetched, Item, RawEntry, Source
from ingest.runtime.parsing.pool import (
    OverBudget,
    ParsePool,
    budget,
    forkserver_executor,
)
from ingest.stages.bounds import ParseLimits, newest, trim_entries

__all__ = [
    "QUICK_MAX",
    "may_sift_here",
    "parse_job",
    "sift",
    "sift_here",
    "sifted",
    "start_forkserver_pool",
    "warm_up",
    "worker_count",
]

_MIB = 1024 * 1024
# A document at most this large, in a format read at linear cost, is read in the
# polling process itself (`sift_here`); larger ones, and the rest, in the pool.
# 256 KiB: 155 of the 200 real feeds; the larger ones are most of the parsing work, and
# in the pool they use the other core (1 MiB cost a third more CPU for the same wall time)
QUICK_MAX = 256 * 1024


def sift(
    source: Source,
    fetched: Fetched,
    now: datetime,
    not_before: datetime | None = None,
    limits: ParseLimits | None = None,
    fast: bool = True,
) -> tuple[tuple[Item, ...], str | None]:
    """Fetched -> the Items the source keeps (parse, normalize, then the editors'
    filters), and why nothing was kept when the document had entries but the filters
    or the retention horizon dropped them all (else None).

    With `limits`, an oversized feed is trimmed before parsing and only the
    `limits.max_entries` newest entries are normalized (`ingest.stages.bounds`).
    `fast=False`: the fast reader already refused the document (`sift_here`).
    """
    from ingest.stages.parse import parse

    fetched = _trimmed(source, fetched, limits)
    entries = parse(source, fetched, fast=fast)
    return _kept(source, fetched, entries, now, not_before, limits)


def sift_here(
    source: Source,
    fetched: Fetched,
    now: datetime,
    not_before: datetime | None,
    limits: ParseLimits,
) -> tuple[str, Any] | None:
    """`parse_job(..., why=True)`'s answer, worked out in this process, when the
    work is bounded by the document's size: at most `QUICK_MAX` bytes, read by a
    reader of linear cost (`ingest.stages.parse.parse_quick`), for a source without
    keep/drop `rules` (an editor's regular expression can backtrack).  None: the
    document goes to a pool, where the parse budgets apply."""
    from ingest.stages.parse import parse_quick

    if not may_sift_here(source, fetched):
        return None
    try:
        fetched = _trimmed(source, fetched, limits)
        entries = parse_quick(source, fetched)
        if entries is None:
            return None
        return "ok", _kept(source, fetched, entries, now, not_before, limits)
    except Exception as e:
        return _failure(e, limits)


def may_sift_here(source: Source, fetched: Fetched) -> bool:
    """Whether `sift_here` may take the document, from what is known before reading it:
    at most `QUICK_MAX` bytes, of a feed or a curated source, without keep/drop `rules`
    (an editor's regular expression can backtrack)."""
    return (
        len(fetched.content) <= QUICK_MAX
        and source.kind in ("feed", "curated")
        and not source.rules
    )


def _trimmed(source: Source, fetched: Fetched, limits: ParseLimits | None) -> Fetched:
    if limits is not None and source.kind == "feed" and fetched.content:
        trimmed = trim_entries(fetched.content, limits.max_entries)
        if trimmed is not fetched.content:
            return replace(fetched, content=trimmed)
    return fetched


def _kept(
    source: Source,
    fetched: Fetched,
    entries: tuple[RawEntry, ...],
    now: datetime,
    not_before: datetime | None,
    limits: ParseLimits | None,
) -> tuple[tuple[Item, ...], str | None]:
    from ingest.stages.filters import keep, why_none_kept
    from ingest.stages.normalize import normalize

    if limits is not None:
        entries = newest(entries, limits.max_entries)
    items = normalize(source, fetched.final_url, entries, now)
    kept = keep(source, items, not_before=not_before, now=now)
    if kept or not items:
        return kept, None
    return kept, why_none_kept(source, items, not_before=not_before, now=now)


def parse_job(
    source: Source,
    fetched: Fetched,
    now: datetime,
    not_before: datetime | None,
    limits: ParseLimits | None = None,
    why: bool = False,  # positional: an executor's submit passes no keywords
    fast: bool = True,
) -> tuple[str, Any]:
    """`sift` for a pool: ("ok", items) or (error kind, message);
    with `why`, ("ok", (items, why nothing was kept)) as `sift` gives them;
    `fast=False` when `sift_here` already found the fast reader refusing it.

    A document that cannot be read is an expected outcome of a poll, so it comes
    back as a value (its error kind and message, which is all the report
    keeps), not as an exception, although ingest's errors would cross the
    process boundary (they pickle); over-budget and library crashes become the
    same value, so a pool never sees a job fail.  In a `ParsePool` worker the
    job runs under `limits`' CPU and memory budgets.
    """
    limits = limits or ParseLimits()
    try:
        with budget(limits):
            sifted = sift(source, fetched, now, not_before, limits, fast)
            return "ok", sifted if why else sifted[0]
    except (Exception, OverBudget) as e:  # OverBudget is a BaseException
        return _failure(e, limits)


def _failure(e: BaseException, limits: ParseLimits) -> tuple[str, str]:
    """A parse that raised, as the (error kind, message) value a poll reports."""
    if isinstance(e, OverBudget):
        return "parse", (
            f"parsing stopped after {limits.cpu_seconds:g}s of CPU: the document is too costly "
            "to read (settings: parse_cpu)"
        )
    if isinstance(e, MemoryError):
        return "parse", _out_of_memory(limits)
    if isinstance(e, errors.IngestError):
        if isinstance(e.__cause__, MemoryError):  # a reader translated it
            return "parse", _out_of_memory(limits)
        return e.kind, str(e)
    # a library crash on hostile input must not kill the run
    return "parse", f"unexpected {type(e).__name__} while parsing: {e}"


def sifted(result: tuple[str, Any]) -> tuple[tuple[Item, ...], str | None]:
    """What a `parse_job(..., why=True)` run in a pool gave: (items, why none were kept),
    or its failure raised as the `ParseError` a poll reports."""
    kind, value = result
    if kind != "ok":
        raise errors.ParseError(value)
    found: tuple[tuple[Item, ...], str | None] = value
    return found


def _out_of_memory(limits: ParseLimits) -> str:
    return (
        f"parsing stopped: the document needs more than {limits.memory_bytes // _MIB} MiB "
        "of memory to read (settings: parse_memory)"
    )


def warm_up() -> None:
    """Import the parsing stack (run once per worker while the parent fetches)."""
    import ingest.stages.filters
    import ingest.stages.normalize
    import ingest.stages.parse.feed  # noqa: F401


def worker_count() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def start_forkserver_pool(workers: int | None = None) -> ParsePool:
    """A pool for processes that already run threads (a fork there could deadlock).

    Workers start from a clean server process that has imported only the
    parsing stack, not the HTTP client, the event loop or the database.
    """
    count = workers or worker_count()
    return ParsePool(forkserver_executor(count), count)
