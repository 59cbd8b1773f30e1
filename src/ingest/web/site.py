"""The site's documents, built from the Store: the page, API answers, feeds, health.

`Site` is what `ingest serve` and `ingest export` share, so the files an
export writes are the bodies the server sends.  Each method returns a `Body`:
the bytes, their media type, and the Last-Modified moment (the newest
`updated_at` of the stories in it; for a body without stories, the last time
ingest wrote to the database).  HTTP itself (ETag, 304) is app.py's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingest import errors
from ingest.config.site import PageSection, SiteSpec
from ingest.model import STORY_FIELDS, Story
from ingest.store import Store
from ingest.web import feeds, page
from ingest.web.params import ItemsQuery, encode_cursor

__all__ = ["FEED_LIMIT", "Body", "Site"]

FEED_LIMIT = 50  # entries per feed
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
_SECTION = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Body:
    content: bytes
    media_type: str
    last_modified: datetime
    status: int = 200


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: datetimes as ISO 8601, as `datetime.isoformat` writes them)."""
    return orjson.dumps(data)


class Site:
    """The documents of one database, rendered with one set of templates."""

    def __init__(
        self,
        store: Store,
        *,
        templates: Path | None = None,
        base_url: str | None = None,
        spec: SiteSpec | None = None,
    ) -> None:
        self.store = store
        self.env = page.environment(templates)
        self.base_url = _with_slash(base_url) if base_url else None
        self.spec = spec or SiteSpec()  # sources.yaml's site: block
        self._page_keys = frozenset(s.key for s in self.spec.sections)

    # -- what exists ---------------------------------------------------------------

    def sections(self) -> list[str]:
        """The page's sections (`site: sections:`), then every other section a source feeds."""
        keys = [s.key for s in self.spec.sections]
        keys += [k for k in self.store.sections() if k not in keys and _SECTION.fullmatch(k)]
        return keys

    def _modified(self, rows: Sequence[Mapping[str, Any]]) -> datetime:
        newest = max((r["updated_at"] for r in rows), default=None)
        if newest is None:
            newest = self.store.last_change()
        return newest or EPOCH

    # -- documents -----------------------------------------------------------------

    def page(self) -> Body:
        chosen: list[tuple[PageSection, list[Story]]] = []
        for key in self.sections():
            spec = self.spec.section(key)
            chosen.append((spec, self.store.latest(section=key, limit=spec.limit)))
        everything = [r for _, rows in chosen for r in rows]
        newest = max((r["updated_at"] for r in everything), default=None)
        html = page.render_page(self.env, chosen, updated=newest, site=self.spec)
        return Body(html, HTML_TYPE, self._modified(everything))

    def items(self, query: ItemsQuery, *, paginate: bool = True) -> Body:
        """`{"items": [...], "next_cursor": ...}`, newest first; with `paginate=False`
        (static export) `next_cursor` is always null."""
        before = query.before
        rows = self.store.latest(
            section=query.section,
            source=query.source,
            kind=query.kind,
            since=query.since,
            until=query.until,
            search=query.search,
            limit=query.limit + 1,
            before=None if before is None else (before.published_at, before.id),
            before_score=None if before is None else before.score,
            block_top=None if before is None else before.block,
        )
        more, rows = len(rows) > query.limit, rows[: query.limit]
        cursor = None
        if more and paginate:
            last = rows[-1]
            cursor = encode_cursor(
                last["published_at"], last["id"], last.get("score"), last.get("block")
            )
        # orjson writes the dates
        stories = [{k: r[k] for k in STORY_FIELDS} for r in rows]  # type: ignore[literal-required]
        body = json_bytes({"items": stories, "next_cursor": cursor})
        return Body(body, JSON_TYPE, self._modified(rows))

    def feed(self, section: str, kind: str, *, request_base: str | None = None) -> Body | None:
        """The section's Atom (`kind="atom"`) or JSON Feed (`"json"`); None for an unknown
        section.  Links are absolute with a base URL (configured, else the request's)."""
        rows = self.feed_rows(section)
        return None if rows is None else self.render_feed(section, kind, rows, request_base)

    def feed_rows(self, section: str) -> list[Story] | None:
        """The stories a section's feeds carry, newest first; None for an unknown section."""
        if section not in self._page_keys and section not in self.sections():
            return None
        return self.store.latest(section=section, limit=FEED_LIMIT)

    def render_feed(
        self,
        section: str,
        kind: str,
        rows: Sequence[Mapping[str, Any]],
        request_base: str | None = None,
    ) -> Body:
        """`rows` (from `feed_rows`) as the section's Atom or JSON Feed."""
        base = self.base_url or (_with_slash(request_base) if request_base else None)
        title = f"{self.spec.title}: {self.spec.heading(section)}"  # the site's, then the list's
        if kind == "atom":
            feed_id = f"{self.base_url}feeds/{section}.atom" if self.base_url else None
            content = feeds.atom(rows, section=section, title=title, base_url=base, feed_id=feed_id)
            media_type = feeds.ATOM_TYPE
        else:
            content = feeds.json_feed(rows, section=section, title=title, base_url=base)
            media_type = feeds.JSON_FEED_TYPE
        return Body(content, media_type, self._modified(rows))

    def health(self) -> Body:
        """200 with the story count when the database answers, else 503."""
        try:
            count = self.store.story_count()
            changed = self.store.last_change() or EPOCH
        except errors.StoreError as e:
            down = {"status": "unavailable", "database": "unreachable", "error": str(e)}
            return Body(json_bytes(down), JSON_TYPE, EPOCH, status=503)
        data = {"status": "ok", "database": "reachable", "stories": count}
        return Body(json_bytes(data), JSON_TYPE, changed)

    def error(self, status: int, message: str, **extra: Any) -> Body:
        try:
            changed = self.store.last_change() or EPOCH
        except errors.StoreError:
            changed = EPOCH
        return Body(json_bytes({"error": message, **extra}), JSON_TYPE, changed, status=status)


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
