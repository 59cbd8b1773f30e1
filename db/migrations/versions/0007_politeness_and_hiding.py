"""Host-wide cool-downs (`host_cooldowns`) and hidden stories (`items.hidden_at`, `hidden_by`).

A 429 (or a 503 with Retry-After) from one source holds back every source on
that host, in `ingest run`, the scheduler and every `ingest worker` alike:
each row says until when a host (lower-case name, with `:port` when not the
scheme's default) is left alone,
why, and which source's answer started it.  A row whose `until` has passed
means nothing; it is replaced by the next cool-down of that host.

`items` gains `hidden_at` and `hidden_by`: a story that `ingest refilter`
found the editors' changed rules now turn away is hidden, never deleted, so
that undoing the rule shows it again.  The `latest_items` view is recreated
without hidden stories (its columns are unchanged).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_cooldowns",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source_key", sa.Text),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )

    op.execute("DROP VIEW IF EXISTS latest_items")
    op.add_column("items", sa.Column("hidden_at", UTCDateTime))
    op.add_column("items", sa.Column("hidden_by", sa.Text))
    op.execute(_latest_items_view(op.get_bind().dialect.name, hidden=True))


def downgrade() -> None:
    op.drop_table("host_cooldowns")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch copy of `items` (its ON DELETE CASCADE
    # would take every item_sources row with it), as 0005 does.
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.drop_column("items", "hidden_by")
    op.drop_column("items", "hidden_at")
    op.execute(_latest_items_view(op.get_bind().dialect.name, hidden=False))


def _latest_items_view(dialect: str, *, hidden: bool) -> str:
    # Written out here (as in 0001, 0003 and 0005), so that this revision keeps creating
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
    where = "WHERE i.hidden_at IS NULL " if hidden else ""
    return (
        "CREATE VIEW latest_items AS "
        "SELECT i.id, i.url, i.canonical_url, i.title, i.summary, i.author, i.image_url, "
        "i.published_at, i.date_source, i.first_seen_at, i.updated_at, i.section, "
        "i.source_key AS source, s.name AS source_name, "
        f"{sources} AS sources, i.kind, i.duration_seconds, i.media_url, i.is_short, i.content "
        f"FROM items i JOIN sources s ON s.key = i.source_key {where}"
        "ORDER BY i.published_at DESC, i.id DESC"
    )
