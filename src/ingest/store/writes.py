"""Writing polls to the database: stories, their sources, source state, poll log.

Each function takes an open Connection inside a transaction the caller owns
(`Store` in store/__init__.py), so one source's writes commit or roll back
together.  Upserts use `INSERT ... ON CONFLICT` through SQLAlchemy's SQLite
and PostgreSQL dialects, so two processes writing the same story at once
cannot duplicate it.  What is new or changed is decided by `dedupe.plan`
(pure) on the rows read here; an entry whose id changed is first matched to
the story it is (`rekey.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from ingest.model import Item, Plan, PollRecord, Source, SourceReport
from ingest.stages import dedupe
from ingest.store import direct, search
from ingest.store.configs import source_json
from ingest.store.db import chunks, dialect_insert, insert_for
from ingest.store.hosts import record_cooldowns
from ingest.store.rekey import rekey
from ingest.store.schema import fetches, item_sources, items, sources

__all__ = ["log_push", "record_polls", "save_items", "sync_sources"]


_SYNCED = (
    "key", "name", "url", "kind", "section", "enabled", "in_config", "every_seconds", "cron",
    "config",
)  # fmt: skip


def _synced(s: Source) -> tuple[Any, ...]:
    every = None if s.cron else s.every
    return (s.key, s.name, s.url, s.kind, s.section, s.enabled, True, every, s.cron, source_json(s))


def sync_sources(conn: Connection, configured: Sequence[Source], now: datetime) -> int:
    """Make the `sources` rows match the configuration; returns rows written.

    Sources no longer in the file keep their row (their stories stay) with
    `in_config` false.  Each row's `config` holds the whole validated Source
    as JSON (store/configs.py), which is what `ingest worker` polls from.
    Unchanged rows are not written.  A source whose URL
    an editor changed starts afresh: a `410 Gone` that disabled it, a
    recorded permanent move and a discovered feed are cleared.
    """
    existing = {
        row[0]: tuple(row) for row in conn.execute(select(*(sources.c[c] for c in _SYNCED)))
    }
    wanted = {s.key: _synced(s) for s in configured}
    fresh = [w for k, w in wanted.items() if k not in existing]
    changed = [w for k, w in wanted.items() if k in existing and existing[k] != w]
    gone = [k for k, row in existing.items() if k not in wanted and row[6]]
    if fresh:
        conn.execute(
            dialect_insert(conn, sources).on_conflict_do_nothing(index_elements=["key"]),
            [dict(zip(_SYNCED, w, strict=True), created_at=now, updated_at=now) for w in fresh],
        )
    for w in changed:
        values = dict(zip(_SYNCED[1:], w[1:], strict=True), updated_at=now)
        if existing[w[0]][2] != w[2]:  # the URL changed
            values.update(disabled_reason=None, moved_to=None, consecutive_failures=0,
                          backoff_seconds=0, next_due_at=None, retry_after_until=None,
                          discovered_url=None)  # fmt: skip
        conn.execute(update(sources).where(sources.c.key == w[0]).values(**values))
    if gone:
        conn.execute(
            update(sources).where(sources.c.key.in_(gone)).values(in_config=False, updated_at=now)
        )
    return len(fresh) + len(changed) + len(gone)


# The reads of every poll that stores stories, built once: building a statement and its
# cache key cost more than SQLite's answer (an expanding IN list is filled in per call).
_KNOWN = select(
    item_sources.c.entry_key, item_sources.c.content_hash, item_sources.c.item_id
).where(
    item_sources.c.source_key == bindparam("b_source"),
    item_sources.c.entry_key.in_(bindparam("b_keys", expanding=True)),
)
_BY_URL = select(items.c.canonical_url, items.c.id, items.c.published_at).where(
    items.c.canonical_url.in_(bindparam("b_urls", expanding=True))
)


def _known(conn: Connection, source_key: str, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Of the source's `keys`, those stored: entry key -> (content hash, story id)."""
    known: dict[str, tuple[str, int]] = {}
    for chunk in chunks(keys):
        rows = conn.execute(_KNOWN, {"b_source": source_key, "b_keys": list(chunk)})
        known.update((r[0], (r[1], r[2])) for r in rows)
    return known


def _story_row(item: Item, now: datetime) -> dict[str, Any]:
    return {
        "canonical_url": item.canonical_url,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "author": item.author,
        "image_url": item.image_url,
        "published_at": item.published_at,
        "date_source": item.date_source,
        "section": item.section,
        "source_key": item.source_key,
        "content_hash": item.content_hash,
        "first_seen_at": now,
        "updated_at": now,
        "kind": item.kind,
        "duration_seconds": item.duration,
        "media_url": item.media_url,
        "is_short": item.is_short,
        "content": item.content,
    }


def _searched(item: Item) -> tuple[str, str | None, str | None]:
    """What search indexes of a story (store/search.py)."""
    return item.title, item.summary, item.content


def _ids_by_url(conn: Connection, urls: Sequence[str]) -> dict[str, tuple[int, datetime]]:
    """Stored stories among `urls`: canonical URL -> (id, published_at)."""
    out: dict[str, tuple[int, datetime]] = {}
    for chunk in chunks(urls):
        rows = conn.execute(_BY_URL, {"b_urls": list(chunk)})
        out.update((r[0], (r[1], r[2])) for r in rows)
    return out


@lru_cache(maxsize=4)
def _story_insert(dialect: str) -> Any:
    """The INSERT of new stories that skips a canonical URL already stored and returns
    (canonical_url, id, published_at) of those it inserted; built once per dialect
    (store/direct.py keys its compiled forms by the object)."""
    return (
        insert_for(dialect, items)
        .on_conflict_do_nothing(index_elements=["canonical_url"])
        .returning(items.c.canonical_url, items.c.id, items.c.published_at)
    )


@lru_cache(maxsize=4)
def _carrier_insert(dialect: str) -> Any:
    """The INSERT of a story's carriers (`item_sources`) that skips rows already there,
    built once per dialect."""
    return insert_for(dialect, item_sources).on_conflict_do_nothing(
        index_elements=["source_key", "entry_key"]
    )


def save_items(conn: Connection, source: Source, batch: Sequence[Item], now: datetime) -> Plan:
    """Store one poll's Items for `source`; returns what dedupe decided."""
    known = _known(conn, source.key, [i.entry_key for i in batch])
    if source.kind != "curated" and len(known) < len(batch):  # ids that changed (rekey.py)
        known.update(rekey(conn, source.key, batch, known, now))
    plan = dedupe.plan(batch, {key: digest for key, (digest, _) in known.items()})
    if plan.new:
        stories = dedupe.first_by_canonical_url(plan.new)
        # a link with a fragment joins the story another source keyed with it (page#two)
        keyed = _ids_by_url(
            conn, sorted({i.fragment_url for i in stories.values() if i.fragment_url})
        )
        ids = {u: keyed[i.fragment_url] for u, i in stories.items() if i.fragment_url in keyed}
        fresh = [item for url, item in stories.items() if url not in ids]
        inserted_count = 0
        if fresh:
            inserted = direct.insert_returning(
                conn, _story_insert(conn.dialect.name), [_story_row(item, now) for item in fresh]
            )
            inserted_count = len(inserted)
            ids.update((r[0], (r[1], r[2])) for r in inserted)
            search.write_documents(
                conn, [(r[1], *_searched(stories[r[0]]), r[2]) for r in inserted], new=True
            )
        plan = replace(plan, stories=inserted_count)
        # stories another source stored first were not inserted: look their ids up
        ids.update(_ids_by_url(conn, [u for u in stories if u not in ids]))
        direct.executemany(  # the driver's executemany: SQLAlchemy's per-row handling cost more
            conn,
            _carrier_insert(conn.dialect.name),
            [
                {
                    "source_key": source.key,
                    "entry_key": item.entry_key,
                    "item_id": ids[item.canonical_url][0],
                    "url": item.url,
                    "content_hash": item.content_hash,
                    "first_seen_at": now,
                    "updated_at": now,
                    # the story's date as stored (another source's, when it came first)
                    "published_at": ids[item.canonical_url][1],
                }
                for item in plan.new
            ],
        )
    if plan.changed:
        item_ids = {key: item_id for key, (_, item_id) in known.items()}
        _apply_changes(conn, source, plan.changed, item_ids, now)
    if source.kind == "curated":
        _forget_unlisted(conn, source.key, {i.entry_key for i in batch})
    return plan


def _forget_unlisted(conn: Connection, key: str, listed: set[str]) -> None:
    """A curated source's stories are exactly the items its file lists now: the links
    of items an editor removed go, and so do their stories when no other source has them."""
    rows = conn.execute(
        select(item_sources.c.entry_key, item_sources.c.item_id).where(
            item_sources.c.source_key == key
        )
    ).all()
    gone = [(entry_key, item_id) for entry_key, item_id in rows if entry_key not in listed]
    if not gone:
        return
    for chunk in chunks([e for e, _ in gone]):
        conn.execute(
            delete(item_sources).where(
                item_sources.c.source_key == key, item_sources.c.entry_key.in_(chunk)
            )
        )
    still = select(item_sources.c.item_id).where(item_sources.c.item_id == items.c.id)
    for chunk in chunks(sorted({i for _, i in gone})):
        conn.execute(delete(items).where(items.c.id.in_(chunk), ~still.exists()))


def _apply_changes(
    conn: Connection,
    source: Source,
    changed: Sequence[Item],
    item_ids: dict[str, int],  # entry key -> story id, as `_known` read them
    now: datetime,
) -> None:
    reindex: list[search.Indexed] = []
    moved: list[dict[str, Any]] = []
    for item in changed:
        item_id = item_ids[item.entry_key]
        values: dict[str, Any] = {
            "url": item.url,
            "title": item.title,
            "summary": item.summary,
            "author": item.author,
            "image_url": item.image_url,
            "content_hash": item.content_hash,
            "updated_at": now,
            "kind": item.kind,
            "duration_seconds": item.duration,
            "media_url": item.media_url,
            "is_short": item.is_short,
            "content": item.content,
        }
        dated = item.date_source != "first_seen"
        if dated:  # an undated story keeps the time we first saw it
            values.update(published_at=item.published_at, date_source=item.date_source)
        # the story's own row follows the source that first carried it
        row = conn.execute(
            update(items)
            .where(items.c.id == item_id, items.c.source_key == source.key)
            .values(**values)
            .returning(items.c.published_at, items.c.hidden_at)
        ).first()
        stored = None if row is None else row[0]
        if row is not None and row[1] is None:  # a hidden story stays out of the index
            reindex.append((item_id, *_searched(item), row[0]))
        if stored is not None and dated:
            moved.append({"b_item": item_id, "b_published": item.published_at})
    search.write_documents(conn, reindex)
    if moved:  # every source's link to the story carries its date, for `source=` reads
        conn.execute(
            update(item_sources)
            .where(item_sources.c.item_id == bindparam("b_item"))
            .values(published_at=bindparam("b_published")),
            moved,
        )
    conn.execute(
        update(item_sources)
        .where(
            item_sources.c.source_key == bindparam("b_source"),
            item_sources.c.entry_key == bindparam("b_entry"),
        )
        .values(content_hash=bindparam("b_hash"), url=bindparam("b_url"), updated_at=now),
        [
            {
                "b_source": source.key,
                "b_entry": i.entry_key,
                "b_hash": i.content_hash,
                "b_url": i.url,
            }
            for i in changed
        ],
    )


def _state_values(record: PollRecord) -> dict[str, Any]:
    report, fetched, started = record.report, record.fetched, record.started_at
    values: dict[str, Any] = {
        "last_attempt_at": started,
        "last_status": report.status,
        "next_due_at": record.next.due_at,
        "retry_after_until": record.next.retry_after_until,
        "backoff_seconds": record.next.backoff,
        "updated_at": started,
        "lease_owner": None,  # the poll is over: free the source for the next one
        "lease_until": None,
    }
    if record.next.disabled_reason:
        values["disabled_reason"] = record.next.disabled_reason
    if report.ok:
        values.update(
            last_success_at=started,
            last_error=None,
            last_error_kind=None,
            consecutive_failures=0,
            last_entries=report.entries,
            moved_to=report.moved_to,
        )
        if report.read_body:  # what the parsed body advertised replaces what was recorded
            advert = report.advert
            values.update(
                websub_hub=advert.hub if advert else None,
                websub_topic=advert.topic if advert else None,
            )
        if fetched is not None:
            values.update(
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                body_hash=fetched.body_hash,
                state_url=fetched.url,  # the discovered feed's, when the source has one
                discovered_url=fetched.discovered_url,
            )
    else:
        values.update(last_error=report.error, last_error_kind=report.error_kind)
        if report.moved_to:
            values["moved_to"] = report.moved_to
    return values


def _outcome(report: SourceReport) -> str:
    if report.not_modified:
        return "not_modified"
    if report.unchanged:
        return "unchanged"
    return "ok" if report.ok else "error"


def log_push(conn: Connection, report: SourceReport, url: str, now: datetime) -> None:
    """A push in the poll log (`fetches`): outcome `push`, or `push_error` when its body
    could not be read; a source's poll state (validators, schedule, lease) is not touched."""
    outcome = "push" if report.ok else "push_error"
    conn.execute(fetches.insert().values(**_log_row(report, now, url, outcome)))


def _log_row(report: SourceReport, started_at: datetime, url: str, outcome: str) -> dict[str, Any]:
    """One row of the poll log (`fetches`) for a poll's or a push's report."""
    return {
        "source_key": report.source_key, "started_at": started_at,
        "duration_ms": report.elapsed_ms, "url": url, "status": report.status,
        "outcome": outcome, "entries": report.entries, "new": report.new,
        "updated": report.updated, "error": report.error,
    }  # fmt: skip


_LOG_INSERT = fetches.insert()


@lru_cache(maxsize=64)
def _state_update(failed: bool, columns: tuple[str, ...]) -> Any:
    """The UPDATE of a source's state row that sets `columns` (and counts a failure):
    built once per shape, since building it cost more than running it (the service
    records a few polls at a time)."""
    stmt = (
        update(sources)
        .where(sources.c.key == bindparam("b_key"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    if failed:
        stmt = stmt.values(consecutive_failures=sources.c.consecutive_failures + 1)
    return stmt


def record_polls(conn: Connection, records: Iterable[PollRecord]) -> None:
    """Update each source's state row and append each poll to `fetches`.

    Rows of the same shape go in one executemany, so recording 200 polls
    costs a handful of statements, not 400.
    """
    records = list(records)
    groups: dict[tuple[bool, tuple[str, ...]], list[dict[str, Any]]] = {}
    log_rows = []
    for record in records:
        source, report = record.source, record.report
        values = _state_values(record)
        counts = not report.ok and report.error_kind != "cooldown"  # a poll not made: no failure
        shape = (counts, tuple(sorted(values)))
        params = {f"v_{k}": v for k, v in values.items()}
        params["b_key"] = source.key
        groups.setdefault(shape, []).append(params)
        url = record.fetched.url if record.fetched is not None else source.url
        log_rows.append(_log_row(report, record.started_at, url, _outcome(report)))
    # on the driver's executemany (store/direct.py): SQLAlchemy's handling of each row's
    # parameters cost more than the writes themselves
    for (failed, columns), params_list in groups.items():
        direct.executemany(conn, _state_update(failed, columns), params_list)
    direct.executemany(conn, _LOG_INSERT, log_rows)
    record_cooldowns(conn, records)  # a 429, or failures in a row, hold back the host (hosts.py)
