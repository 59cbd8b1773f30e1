"""WebSub: the hub each source advertises, and our subscriptions to hubs.

`sources` gains `websub_hub` and `websub_topic`: the hub and topic URL the
source's feed advertised at its last parsed poll (parse/hubs.py), None when
it advertises none.

`subscriptions` holds one row per subscription to a hub (websub.py): its
random id (the last segment of the callback URL the hub calls), the source,
hub, topic and callback, its own random secret (the HMAC key of the pushes),
its state (requested, active, unsubscribing, failed, denied), the lease the
hub granted and when it ends, when it was last requested and verified, the
pushes received and refused, and the last error.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("websub_hub", sa.Text))
    op.add_column("sources", sa.Column("websub_topic", sa.Text))
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("source_key", sa.Text, nullable=False),
        sa.Column("hub", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("callback", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("requested_at", UTCDateTime),
        sa.Column("verified_at", UTCDateTime),
        sa.Column("lease_seconds", sa.Integer),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("retry_at", UTCDateTime),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("last_push_at", UTCDateTime),
        sa.Column("pushes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("refused", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_refused_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_subscriptions_source", "subscriptions", ["source_key"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_source", "subscriptions")
    op.drop_table("subscriptions")
    op.drop_column("sources", "websub_topic")
    op.drop_column("sources", "websub_hub")
