"""PostgreSQL's search table in slices of 100,000 story ids (`item_search` partitioned).

A two-word search at a million stories read every match's row to find the
1,000 newest (7,464 rows, two thirds of its 21 ms).  The table is now
partitioned by `slice` (the story's id // 100,000), each slice with its own
GIN index, so that a search reads the GIN indexes and rows of the newest
slices only (ingest.store.search.pg_page).  `slice` has no index of its
own: conditions on it choose partitions and nothing else.  The rows are
copied into the new table; on SQLite nothing changes.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Written out here, as ingest.store.search has them at this revision.
SLICE = 100_000
PENDING_LIST_KB = 256


def _slice(number: int) -> str:
    return (
        f"CREATE TABLE item_search_{number:05d} PARTITION OF item_search "
        f"FOR VALUES FROM ({number}) TO ({number + 1})"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE item_search RENAME TO item_search_0010")
    op.execute("ALTER INDEX item_search_pkey RENAME TO item_search_0010_pkey")
    op.execute("ALTER INDEX ix_item_search_document RENAME TO ix_item_search_0010_document")
    op.execute(
        "CREATE TABLE item_search (item_id BIGINT NOT NULL REFERENCES items (id) "
        "ON DELETE CASCADE, slice BIGINT NOT NULL, published_at TIMESTAMP WITH TIME ZONE "
        "NOT NULL, document TSVECTOR NOT NULL, PRIMARY KEY (item_id, slice)) "
        "PARTITION BY RANGE (slice)"
    )
    op.execute(
        "CREATE INDEX ix_item_search_document ON item_search USING gin (document) "
        f"WITH (gin_pending_list_limit = {PENDING_LIST_KB})"
    )
    top = bind.exec_driver_sql(
        "SELECT greatest(coalesce((SELECT max(id) FROM items), 0), coalesce("
        "pg_sequence_last_value(CAST(pg_get_serial_sequence('items', 'id') AS regclass)), 0))"
    ).scalar_one()
    for number in range(0, int(top) // SLICE + 2):  # every id so far, and the next slice
        op.execute(_slice(number))
    op.execute(
        "INSERT INTO item_search (item_id, slice, published_at, document) "
        f"SELECT item_id, item_id / {SLICE}, published_at, document FROM item_search_0010"
    )
    op.execute("DROP TABLE item_search_0010")
    op.execute("ANALYZE item_search")  # the slices' sizes, which searches are planned by


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE item_search RENAME TO item_search_0011")
    op.execute("ALTER INDEX item_search_pkey RENAME TO item_search_0011_pkey")
    op.execute("ALTER INDEX ix_item_search_document RENAME TO ix_item_search_0011_document")
    op.execute(
        "CREATE TABLE item_search (item_id BIGINT NOT NULL PRIMARY KEY "
        "REFERENCES items (id) ON DELETE CASCADE, published_at TIMESTAMP WITH TIME ZONE "
        "NOT NULL, document TSVECTOR NOT NULL)"
    )
    op.execute(
        "INSERT INTO item_search (item_id, published_at, document) "
        "SELECT item_id, published_at, document FROM item_search_0011"
    )
    op.execute("DROP TABLE item_search_0011")
    op.execute(
        "CREATE INDEX ix_item_search_document ON item_search USING gin (document) "
        f"WITH (gin_pending_list_limit = {PENDING_LIST_KB})"
    )
