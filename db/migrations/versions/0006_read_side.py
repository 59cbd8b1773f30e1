"""The read side at scale: an index for every filter, and full-text search.

- `item_sources` gains `published_at` (the story's, kept in step with
  `items.published_at` by the store's writes) and the index
  `ix_item_sources_source_published (source_key, published_at, item_id)`,
  so that "one source's stories, newest first" reads one index range instead
  of collecting every story of the source and sorting them;
- `items` gains `ix_items_kind_published (kind, published_at, id)`;
- search: on SQLite the FTS5 table `items_fts` (title, body; rowid = the
  story's id) and a trigger that drops a story's row with the story; on
  PostgreSQL the table `item_search (item_id, published_at, document tsvector)`
  with a GIN index.  Every stored story is indexed here, in batches.

The `latest_items` view is unchanged; it is dropped and recreated around the
rebuild of `item_sources` (SQLite cannot rename a table a view names).

Revision ID: 0006
Revises: 0005
"""

import html
import re

import sqlalchemy as sa
from alembic import op

from ingest.store.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TAG = re.compile(r"<[^>]*>")
_BATCH = 2000


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "sqlite":
        _check_fts5(bind)
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.add_column("item_sources", sa.Column("published_at", UTCDateTime))
    op.execute(
        "UPDATE item_sources SET published_at = "
        "(SELECT i.published_at FROM items i WHERE i.id = item_sources.item_id)"
    )
    with op.batch_alter_table("item_sources") as batch:
        batch.alter_column("published_at", existing_type=UTCDateTime,
                           nullable=False)  # fmt: skip
    op.create_index(
        "ix_item_sources_source_published",
        "item_sources",
        ["source_key", "published_at", "item_id"],
    )
    op.create_index("ix_items_kind_published", "items", ["kind", "published_at", "id"])
    op.execute(_latest_items_view(dialect))
    for statement in _search_ddl(dialect):
        op.execute(statement)
    _index_every_story(bind, dialect)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TABLE item_search")
    else:
        op.execute("DROP TRIGGER items_fts_delete")
        op.execute("DROP TABLE items_fts")
    op.drop_index("ix_items_kind_published", table_name="items")
    op.drop_index("ix_item_sources_source_published", table_name="item_sources")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): the view names item_sources
    op.execute("DROP VIEW IF EXISTS latest_items")
    op.drop_column("item_sources", "published_at")
    op.execute(_latest_items_view(dialect))


def _check_fts5(bind: sa.engine.Connection) -> None:
    options = {str(r[0]) for r in bind.exec_driver_sql("PRAGMA compile_options")}
    if "ENABLE_FTS5" not in options:
        version = bind.exec_driver_sql("SELECT sqlite_version()").scalar_one()
        raise RuntimeError(
            f"this Python's SQLite ({version}) was built without FTS5, which ingest's search "
            "needs: use a Python whose sqlite3 module has FTS5, or PostgreSQL"
        )


def _search_ddl(dialect: str) -> list[str]:
    # Written out here (as ingest.store.search.search_ddl has it at this revision).
    if dialect == "postgresql":
        return [
            "CREATE TABLE item_search (item_id BIGINT NOT NULL PRIMARY KEY "
            "REFERENCES items (id) ON DELETE CASCADE, published_at TIMESTAMP WITH TIME ZONE "
            "NOT NULL, document TSVECTOR NOT NULL)",
            "CREATE INDEX ix_item_search_document ON item_search USING gin (document)",
        ]
    return [
        "CREATE VIRTUAL TABLE items_fts USING fts5(title, body, "
        "tokenize = 'porter unicode61 remove_diacritics 2')",
        "CREATE TRIGGER items_fts_delete AFTER DELETE ON items "
        "BEGIN DELETE FROM items_fts WHERE rowid = OLD.id; END",
    ]


def _plain(fragment: str | None) -> str:
    if not fragment:
        return ""
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def _index_every_story(bind: sa.engine.Connection, dialect: str) -> None:
    if dialect == "postgresql":
        insert = sa.text(
            "INSERT INTO item_search (item_id, published_at, document) "
            "SELECT :id, published_at, setweight(to_tsvector('english', :title), 'A') || "
            "setweight(to_tsvector('english', :body), 'D') FROM items WHERE id = :id"
        )
    else:
        insert = sa.text("INSERT INTO items_fts (rowid, title, body) VALUES (:id, :title, :body)")
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, title, summary, content FROM items WHERE id > :last "
                "ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return
        params = []
        for item_id, title, summary, content in rows:
            body, more = _plain(summary), _plain(content)
            if more and more != body:
                body = f"{body} {more}" if body else more
            params.append({"id": item_id, "title": title, "body": body})
        bind.execute(insert, params)
        last = rows[-1][0]


def _latest_items_view(dialect: str) -> str:
    # Written out here (as in 0005, unchanged), so that this revision keeps creating the
    # view it creates when the view changes again later.
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
    return (
        "CREATE VIEW latest_items AS "
        "SELECT i.id, i.url, i.canonical_url, i.title, i.summary, i.author, i.image_url, "
        "i.published_at, i.date_source, i.first_seen_at, i.updated_at, i.section, "
        "i.source_key AS source, s.name AS source_name, "
        f"{sources} AS sources, i.kind, i.duration_seconds, i.media_url, i.is_short, i.content "
        "FROM items i JOIN sources s ON s.key = i.source_key "
        "ORDER BY i.published_at DESC, i.id DESC"
    )
