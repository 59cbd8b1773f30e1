"""`ingest try`: poll one source once and say what would be stored, storing nothing.

How an editor tunes a source: the same fetch (fetch.py, with discovery and
curated sources as in a real poll, `discovery.fetch_source`), the same parse
and normalize, and the source's filters, but no database at all (not even the
`sources` row) and no conditional GET (there is no earlier state).  Each
entry comes back with why the filters would drop it, if they would.  A
failed fetch or parse carries the message a real poll would record.

`source_for_url` builds a throw-away source from a URL, a kind and
`field=css` selectors, validated as sources.yaml would be.  This module
returns values; printing is the command line's (cli/format.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ingest import errors
from ingest.model import Fetched, FetchState, Item, Settings, Source
from ingest.runtime import eventloop
from ingest.runtime.parsing import jobs as workers
from ingest.stages import filters

if TYPE_CHECKING:
    import httpx

    from ingest.stages.bounds import ParseLimits

__all__ = ["TRY_KEY", "Trial", "Tried", "run_trial", "source_for_url", "try_source"]

TRY_KEY = "try"  # the key of a source made from a URL


@dataclass(frozen=True, slots=True)
class Tried:
    """One entry of the document, normalized, and why the filters drop it (None: kept)."""

    item: Item
    dropped: str | None = None


@dataclass(frozen=True, slots=True)
class Trial:
    """What one trial poll came to."""

    source: Source
    ok: bool
    status: int | None = None  # HTTP status (None: no answer, or a curated source)
    url: str = ""  # what was asked for: the discovered feed when there is one
    final_url: str = ""  # after redirects
    discovered_url: str | None = None  # the feed the page at the source's URL named
    moved_to: str | None = None
    elapsed_ms: int = 0
    error: str | None = None
    error_kind: str | None = None
    entries: tuple[Tried, ...] = ()
    untitled: int = 0  # entries with neither a title nor any text: left out, as a poll does

    @property
    def kept(self) -> tuple[Item, ...]:
        return tuple(t.item for t in self.entries if t.dropped is None)


def source_for_url(url: str, kind: str | None = None, select: Sequence[str] = ()) -> Source:
    """A source for `url`: `kind` feed (default) or page; `select` as `field=css` strings
    (which make the kind page when it is not given).

    Raises `ValueError` listing every problem, in sources.yaml's words.
    """
    from ingest.config import parse_config

    problems: list[str] = []
    pairs: list[tuple[str, str]] = []
    for spec in select:
        name, eq, css = spec.partition("=")
        if not eq or not name.strip() or not css.strip():
            problems.append(f"--select {spec!r}: write field=css, e.g. item='ul.news > li'")
        else:
            pairs.append((name.strip(), css.strip()))
    if problems:
        raise ValueError("\n".join(problems))
    kind = kind or ("page" if pairs else "feed")
    lines = [
        "sources:",
        f"  - key: {TRY_KEY}",
        f"    name: {json.dumps(urlsplit(url).hostname or url)}",
        f"    url: {json.dumps(url)}",
        f"    kind: {json.dumps(kind)}",
    ]
    if pairs:
        lines.append("    select:")
        lines += [f"      {json.dumps(name)}: {json.dumps(css)}" for name, css in pairs]
    try:
        config = parse_config("\n".join(lines) + "\n", "ingest try")
    except errors.ConfigError as e:
        shown = (p.message.replace("select: ", "--select ") for p in e.problems)
        raise ValueError("\n".join(shown)) from None
    return config.sources[0]


async def try_source(
    source: Source,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> Trial:
    """Fetch, parse and filter `source` once, as a poll would; store nothing."""
    from ingest.runtime.discovery import fetch_source
    from ingest.stages.fetch import Fetcher
    from ingest.stages.transport import make_client

    now = now or datetime.now(UTC)
    started = time.monotonic()
    async with make_client(settings, transport=transport) as client:
        try:
            fetched = await fetch_source(Fetcher(client, settings), source, FetchState())
        except errors.IngestError as e:
            return Trial(
                source,
                ok=False,
                status=getattr(e, "status", None) or None,
                url=getattr(e, "url", None) or source.url,
                elapsed_ms=_ms(started),
                error=str(e),
                error_kind=e.kind,
            )
    answered = Trial(
        source,
        ok=True,
        status=fetched.status or None,
        url=fetched.url,
        final_url=fetched.final_url,
        discovered_url=fetched.discovered_url,
        moved_to=fetched.moved_to,
    )
    # the pool's function and limits, so a failure reads as the poll's would; the filters
    # are applied below, to say why
    from ingest.stages.bounds import ParseLimits

    unfiltered = replace(source, include=(), exclude=(), max_age=None, rules=())
    kind, value = workers.parse_job(unfiltered, fetched, now, None, ParseLimits.of(settings))
    if kind != "ok":
        return replace(
            answered, ok=False, elapsed_ms=_ms(started), error=str(value), error_kind=kind
        )
    not_before = now - timedelta(seconds=settings.retention)
    judged = filters.verdicts(source, value, not_before=not_before, now=now)
    return replace(
        answered,
        elapsed_ms=_ms(started),
        entries=tuple(Tried(item, why) for item, why in judged),
        untitled=_untitled(unfiltered, fetched, now, ParseLimits.of(settings)),
    )


def _untitled(source: Source, fetched: Fetched, now: datetime, limits: ParseLimits) -> int:
    """How many of the document's entries normalize leaves out for having neither a
    title nor any text (parsed again here: a trial is one document, once)."""
    from ingest.stages.bounds import newest
    from ingest.stages.normalize import normalize
    from ingest.stages.parse import parse

    entries = newest(parse(source, fetched), limits.max_entries)
    return sum(not normalize(source, fetched.final_url, [raw], now) for raw in entries)


def run_trial(
    source: Source,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    now: datetime | None = None,
) -> Trial:
    """`try_source` on a fresh event loop (for the command line)."""
    return eventloop.run(try_source(source, settings, transport=transport, now=now))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
