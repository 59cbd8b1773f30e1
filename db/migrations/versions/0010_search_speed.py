"""A small pending list for PostgreSQL's search index (`ix_item_search_document`).

GIN indexes take new entries into a pending list (fastupdate), merged into
the index proper by VACUUM or when the list outgrows `gin_pending_list_limit`
(4 MB by default), and every search reads the whole pending list.  At a
million stories a 2 MB list added 2 ms to a two-word search that takes 12:
this caps the list at 256 kB (32 pages), so stories are still written in
batches, and a search reads at most those.  SQLite's FTS5 index merges its
own segments: nothing changes there.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PENDING_LIST_KB = 256  # as ingest.store.search.PG_PENDING_LIST_KB has it at this revision


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER INDEX ix_item_search_document SET (gin_pending_list_limit = {PENDING_LIST_KB})"
        )
        op.execute("SELECT gin_clean_pending_list('ix_item_search_document')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX ix_item_search_document RESET (gin_pending_list_limit)")
