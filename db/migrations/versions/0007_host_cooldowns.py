"""Host-wide cool-downs: `host_cooldowns`, shared by every process that polls.

A 429 (or a 503 with Retry-After) from one source holds back every source on
that host, in `ingest run`, the scheduler and every `ingest worker` alike:
each row says until when a host (lower-case name, with `:port` when not the
scheme's default) is left alone,
why, and which source's answer started it.  A row whose `until` has passed
means nothing; it is replaced by the next cool-down of that host.

Revision ID: 0007
Revises: 0005 (re-chained onto 0006 when merged)
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0007"
down_revision = "0005"
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


def downgrade() -> None:
    op.drop_table("host_cooldowns")
