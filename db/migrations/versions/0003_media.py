"""Talks and videos, discovery: media columns on items, discovered_url on sources.

`items` gains `kind` (article | video | audio), `duration_seconds`,
`media_url` and `is_short`; `sources` gains `discovered_url` (the feed an
HTML page named).  The `latest_items` view is recreated with the new item
columns after all of its old ones.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NEW_ITEM_COLUMNS = ("is_short", "media_url", "duration_seconds", "kind")


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.add_column("items", sa.Column("kind", sa.Text, nullable=False, server_default="article"))
    op.add_column("items", sa.Column("duration_seconds", sa.Integer))
    op.add_column("items", sa.Column("media_url", sa.Text))
    op.add_column("items", sa.Column("is_short", sa.Boolean, nullable=False, server_default="0"))
    op.add_column("sources", sa.Column("discovered_url", sa.Text))
    op.execute(_latest_items_view(op.get_bind().dialect.name, media=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch table copy: copying
    # `items` would drop it, and with it (ON DELETE CASCADE) every item_sources row.
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.drop_column("sources", "discovered_url")
    for column in _NEW_ITEM_COLUMNS:
        op.drop_column("items", column)
    op.execute(_latest_items_view(op.get_bind().dialect.name, media=False))


def _latest_items_view(dialect: str, *, media: bool) -> str:
    # Written out here (as in 0001), so that this revision keeps creating the
    # view it creates when the view changes again later.
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
    extra = ", i.kind, i.duration_seconds, i.media_url, i.is_short" if media else ""
    return (
        "CREATE VIEW latest_items AS "
        "SELECT i.id, i.url, i.canonical_url, i.title, i.summary, i.author, i.image_url, "
        "i.published_at, i.date_source, i.first_seen_at, i.updated_at, i.section, "
        "i.source_key AS source, s.name AS source_name, "
        f"{sources} AS sources{extra} "
        "FROM items i JOIN sources s ON s.key = i.source_key "
        "ORDER BY i.published_at DESC, i.id DESC"
    )
