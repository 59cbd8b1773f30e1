"""Shared host state (`hosts`): failed polls in a row, and the slot of the next request.

One row per host (lower-case name, with `:port` when not the scheme's
default, as in `host_cooldowns`) that ingest has counted a failure against
or spaced requests to, shared by `ingest run`, the scheduler and every
`ingest worker`:

- `failures`: polls of the host's sources that failed in a row on the
  server's side or on the way (5xx, timeouts, connection errors, bot
  challenges); `settings: host_failures` of them cool the host down (a
  `host_cooldowns` row), and the count starts again;
- `strikes`: how many such cool-downs came in a row with no success between
  (each one lasts twice the one before, at most an hour); a poll the server
  answered sets both back to 0;
- `next_request_at`: the earliest moment the next request to the host may
  go (`settings: per_host_delay`, `host_delays`); each request takes the
  slot and moves it on by the delay, in one transaction.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("strikes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_request_at", UTCDateTime),
    )


def downgrade() -> None:
    op.drop_table("hosts")
