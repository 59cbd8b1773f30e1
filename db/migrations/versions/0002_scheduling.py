"""Scheduling: leases, schedule columns on sources, and the services heartbeat table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("every_seconds", sa.Float))
    op.add_column("sources", sa.Column("cron", sa.Text))
    op.add_column("sources", sa.Column("disabled_reason", sa.Text))
    op.add_column(
        "sources", sa.Column("backoff_seconds", sa.Float, nullable=False, server_default="0")
    )
    op.add_column("sources", sa.Column("lease_owner", sa.Text))
    op.add_column("sources", sa.Column("lease_until", UTCDateTime))
    op.create_index("ix_sources_next_due", "sources", ["next_due_at"])
    op.create_table(
        "services",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("last_tick_at", UTCDateTime, nullable=False),
        sa.Column("config_path", sa.Text),
        sa.Column("config_error", sa.Text),
        sa.Column("stopped_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("services")
    op.drop_index("ix_sources_next_due", "sources")
    with op.batch_alter_table("sources") as batch:
        for column in (
            "lease_until",
            "lease_owner",
            "backoff_seconds",
            "disabled_reason",
            "cron",
            "every_seconds",
        ):
            batch.drop_column(column)
