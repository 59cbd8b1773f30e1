"""Full content: `items.content` beside the short `summary`.

`items` gains `content` (the entry's whole text as sanitized HTML, nullable:
a WordPress feed's `content:encoded` beside its excerpt).  The
`latest_items` view is recreated with it after all of its old columns.
Stories stored before have no content until their entry changes: the
content is part of `content_hash`, so the next poll that reads their feed
updates them in place.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.add_column("items", sa.Column("content", sa.Text))
    op.execute(_latest_items_view(op.get_bind().dialect.name, content=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch table copy: copying
    # `items` would drop it, and with it (ON DELETE CASCADE) every item_sources row.
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.drop_column("items", "content")
    op.execute(_latest_items_view(op.get_bind().dialect.name, content=False))


def _latest_items_view(dialect: str, *, content: bool) -> str:
    # Written out here (as in 0001 and 0003), so that this revision keeps creating
    # the view it creates when the view changes again later.
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
    extra = ", i.content" if content else ""
    return (
        "CREATE VIEW latest_items AS "
        "SELECT i.id, i.url, i.canonical_url, i.title, i.summary, i.author, i.image_url, "
        "i.published_at, i.date_source, i.first_seen_at, i.updated_at, i.section, "
        "i.source_key AS source, s.name AS source_name, "
        f"{sources} AS sources, i.kind, i.duration_seconds, i.media_url, i.is_short{extra} "
        "FROM items i JOIN sources s ON s.key = i.source_key "
        "ORDER BY i.published_at DESC, i.id DESC"
    )
