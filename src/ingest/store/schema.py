"""The database's tables, as SQLAlchemy Core objects.

This is the shape the code reads and writes.  The migrations under
`db/migrations/` bring an existing database to it; a new, empty database is
created from it directly (`ingest.store.migrations.migrate`: these tables, the
`latest_items` view below and the Alembic revision stamp), which spares a
first run importing Alembic.  Tests check that both ways give the same
database.
docs/database.md documents every column for downstream readers.
It declares; it does not connect, migrate or query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    TypeDecorator,
)

__all__ = [
    "LATEST_ITEMS_VIEW",
    "SCHEMA_REVISION",
    "UTCDateTime",
    "fetches",
    "host_cooldowns",
    "hosts",
    "item_sources",
    "items",
    "latest_items_view",
    "metadata",
    "services",
    "settings",
    "sources",
    "subscriptions",
]

# The Alembic revision this code expects; opening a database at another one
# runs the migrations first.  tests/test_store.py checks it is the head.
SCHEMA_REVISION = "0012"

ID = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores `timestamptz`; SQLite stores naive UTC text
    (`YYYY-MM-DD HH:MM:SS.ffffff`), which sorts and compares correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, the text `process_bind_param` and SQLite's DATETIME would make,
        in one step (a cold run binds some 30,000 datetimes); elsewhere as inherited."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _sqlite_text(value: datetime | None) -> str | None:
    """`value` as SQLite stores it: naive UTC, `YYYY-MM-DD HH:MM:SS.ffffff`."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is UTC:  # most of them: the text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    if zone is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


metadata = MetaData()

sources = Table(
    "sources",
    metadata,
    Column("key", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default="feed"),
    Column("section", Text, nullable=False, server_default="latest"),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("in_config", Boolean, nullable=False, server_default="1"),
    # conditional-GET state; valid only for `state_url`
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", Text),
    Column("state_url", Text),
    # what the last polls came to
    Column("last_attempt_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_error_kind", Text),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_entries", Integer),
    Column("next_due_at", UTCDateTime),
    Column("retry_after_until", UTCDateTime),
    Column("moved_to", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # schedule (0002): the interval as configured, why polling stopped, the
    # wait added by backoff, and which process is polling the source right now
    Column("every_seconds", Float),
    Column("cron", Text),
    Column("disabled_reason", Text),
    Column("backoff_seconds", Float, nullable=False, server_default="0"),
    Column("lease_owner", Text),
    Column("lease_until", UTCDateTime),
    # discovery (0003): the feed an HTML page at `url` named; polls ask for it directly
    Column("discovered_url", Text),
    # distributed polling (0004): the validated Source as JSON, for `ingest worker`
    Column("config", Text),
    # WebSub (0008): the hub and topic the feed advertised at its last parsed poll
    Column("websub_hub", Text),
    Column("websub_topic", Text),
    Index("ix_sources_next_due", "next_due_at"),
)

items = Table(
    "items",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("canonical_url", Text, nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("author", Text),
    Column("image_url", Text),
    Column("published_at", UTCDateTime, nullable=False),
    Column("date_source", Text, nullable=False),
    Column("section", Text, nullable=False),
    Column("source_key", Text, ForeignKey("sources.key"), nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # talks and videos (0003)
    Column("kind", Text, nullable=False, server_default="article"),  # article | video | audio
    Column("duration_seconds", Integer),
    Column("media_url", Text),
    Column("is_short", Boolean, nullable=False, server_default="0"),
    # full content (0005): the entry's whole text, sanitized HTML, when it carries one
    Column("content", Text),
    # hidden by `ingest refilter` (0007): never deleted, so a rule undone shows it again
    Column("hidden_at", UTCDateTime),
    Column("hidden_by", Text),  # "news: rule drop title='^Sponsored'"
    Index("ix_items_section_published", "section", "published_at", "id"),
    Index("ix_items_published", "published_at", "id"),
    # the read side at scale (0006): `kind=` newest first
    Index("ix_items_kind_published", "kind", "published_at", "id"),
)

item_sources = Table(
    "item_sources",
    metadata,
    Column("source_key", Text, ForeignKey("sources.key"), primary_key=True),
    Column("entry_key", Text, primary_key=True),
    Column("item_id", ID, ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # the read side at scale (0006): the story's `published_at`, kept in step with
    # `items` by the store's writes, so that `source=` reads one index newest first
    Column("published_at", UTCDateTime, nullable=False),
    # every listed story's carriers (reads.carriers) from the index alone (0012)
    Index("ix_item_sources_carriers", "item_id", "source_key", "first_seen_at"),
    Index("ix_item_sources_source_published", "source_key", "published_at", "item_id"),
)

fetches = Table(
    "fetches",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source_key", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("status", Integer),
    Column("outcome", Text, nullable=False),  # ok | not_modified | unchanged | error
    Column("entries", Integer, nullable=False, server_default="0"),
    Column("new", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Index("ix_fetches_source_started", "source_key", "started_at"),
    Index("ix_fetches_started", "started_at"),
)

# host-wide politeness (0007): a host left alone until `until` (a 429, a 503 with Retry-After)
host_cooldowns = Table(
    "host_cooldowns",
    metadata,
    Column("host", Text, primary_key=True),  # lower-case name, `:port` if not the default
    Column("until", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),  # "HTTP 429 from bmj-leader"
    Column("source_key", Text),  # whose answer started it
    Column("updated_at", UTCDateTime, nullable=False),
)

# shared host state (0009): failed polls in a row across the host's sources, the failure
# cool-downs in a row (each doubles), and when the next request may go (`per_host_delay`)
hosts = Table(
    "hosts",
    metadata,
    Column("host", Text, primary_key=True),  # as in host_cooldowns
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("strikes", Integer, nullable=False, server_default="0"),
    Column("next_request_at", UTCDateTime),
)

# WebSub (0008): our subscriptions to hubs (websub.py); `id` ends the callback URL
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("source_key", Text, nullable=False),
    Column("hub", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("callback", Text, nullable=False),
    Column("secret", Text, nullable=False),  # the HMAC key of the pushes; never shown
    Column("state", Text, nullable=False),  # requested | active | unsubscribing | failed | denied
    Column("requested_at", UTCDateTime),
    Column("verified_at", UTCDateTime),
    Column("lease_seconds", Integer),
    Column("expires_at", UTCDateTime),
    Column("retry_at", UTCDateTime),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("last_push_at", UTCDateTime),
    Column("pushes", Integer, nullable=False, server_default="0"),
    Column("refused", Integer, nullable=False, server_default="0"),  # bad signatures
    Column("last_refused_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_subscriptions_source", "source_key"),
)

services = Table(
    "services",
    metadata,
    Column("name", Text, primary_key=True),  # "scheduler"
    Column("owner", Text, nullable=False),  # host:pid of the process
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_tick_at", UTCDateTime, nullable=False),
    Column("config_path", Text),
    Column("config_error", Text),  # the last sources.yaml edit that was refused, if any
    Column("stopped_at", UTCDateTime),
)

# distributed polling (0004): the `settings:` block as JSON (name "settings"), for `ingest worker`
settings = Table(
    "settings",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def latest_items_view(dialect: str) -> str:
    """CREATE VIEW latest_items as revision 0007 defines it (0008 left it as it is)."""
    if dialect == "postgresql":
        sources = (
            "(SELECT string_agg(x.source_key, ',' ORDER BY x.first_seen_at, x.source_key) "
            "FROM item_sources x WHERE x.item_id = i.id)"
        )
    else:
        sources = (
            "(SELECT group_concat(source_key, ',') FROM (SELECT x.source_key FROM item_sources x "
            "WHERE x.item_id = i.id ORDER BY x.first_seen_at, x.source_key))"
        )
    return (
        "CREATE VIEW latest_items AS "
        "SELECT i.id, i.url, i.canonical_url, i.title, i.summary, i.author, i.image_url, "
        "i.published_at, i.date_source, i.first_seen_at, i.updated_at, i.section, "
        "i.source_key AS source, s.name AS source_name, "
        f"{sources} AS sources, i.kind, i.duration_seconds, i.media_url, i.is_short, i.content "
        "FROM items i JOIN sources s ON s.key = i.source_key WHERE i.hidden_at IS NULL "
        "ORDER BY i.published_at DESC, i.id DESC"
    )


LATEST_ITEMS_VIEW = "latest_items"
