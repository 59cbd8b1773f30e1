"""Initial schema: sources, items, item_sources, fetches and the latest_items view.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False, server_default="feed"),
        sa.Column("section", sa.Text, nullable=False, server_default="latest"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("in_config", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("body_hash", sa.Text),
        sa.Column("state_url", sa.Text),
        sa.Column("last_attempt_at", UTCDateTime),
        sa.Column("last_success_at", UTCDateTime),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_kind", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_entries", sa.Integer),
        sa.Column("next_due_at", UTCDateTime),
        sa.Column("retry_after_until", UTCDateTime),
        sa.Column("moved_to", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("canonical_url", sa.Text, nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("image_url", sa.Text),
        sa.Column("published_at", UTCDateTime, nullable=False),
        sa.Column("date_source", sa.Text, nullable=False),
        sa.Column("section", sa.Text, nullable=False),
        sa.Column("source_key", sa.Text, sa.ForeignKey("sources.key"), nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_items_section_published", "items", ["section", "published_at", "id"])
    op.create_index("ix_items_published", "items", ["published_at", "id"])
    op.create_table(
        "item_sources",
        sa.Column("source_key", sa.Text, sa.ForeignKey("sources.key"), primary_key=True),
        sa.Column("entry_key", sa.Text, primary_key=True),
        sa.Column("item_id", ID, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_item_sources_item", "item_sources", ["item_id"])
    op.create_table(
        "fetches",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source_key", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("new", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_fetches_source_started", "fetches", ["source_key", "started_at"])
    op.create_index("ix_fetches_started", "fetches", ["started_at"])
    op.execute(_latest_items_view(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.drop_table("fetches")
    op.drop_table("item_sources")
    op.drop_table("items")
    op.drop_table("sources")


def _latest_items_view(dialect: str) -> str:
    # Written out here, not imported from schema.py, so that this revision
    # keeps creating the view it always created when the view changes later.
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
        f"{sources} AS sources "
        "FROM items i JOIN sources s ON s.key = i.source_key "
        "ORDER BY i.published_at DESC, i.id DESC"
    )
