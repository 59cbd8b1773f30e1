"""The sources that carried each story read from one index (`ix_item_sources_carriers`).

Every listed story names the sources that carried it, first to carry it first
(`ingest.store.reads.carriers`): a subquery per story over `item_sources` by
`item_id`.  With an index on `item_id` alone each of those read the rows
from the table and sorted them; `(item_id, source_key, first_seen_at)` holds
everything the subquery reads, in the order it groups by.  On PostgreSQL at a
million stories a page of 21 stories runs in 0.10 to 0.13 ms instead of 0.18.
It replaces `ix_item_sources_item`, which it begins with (the cascade from
`items` uses it the same way).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_item_sources_carriers", "item_sources", ["item_id", "source_key", "first_seen_at"]
    )
    op.drop_index("ix_item_sources_item", table_name="item_sources")


def downgrade() -> None:
    op.create_index("ix_item_sources_item", "item_sources", ["item_id"])
    op.drop_index("ix_item_sources_carriers", table_name="item_sources")
