"""Distributed polling: each source's validated settings and the file's settings in the database.

`sources` gains `config` (the `Source` as JSON, written when sources are
synced), and a small `settings` table holds the `settings:` block, so that
`ingest worker` processes need only the database URL (docs/scaling.md).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("config", sa.Text))
    op.create_table(
        "settings",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_column("sources", "config")
