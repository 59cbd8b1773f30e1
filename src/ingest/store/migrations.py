"""The schema at the revision the code expects: checked, created or migrated on first use.

`migrate` brings a database to `SCHEMA_REVISION` under a lock (SQLite's
write lock, PostgreSQL's advisory lock), so two processes opening a new
database at once cannot race.  Alembic is imported only when a migration
actually has to run: a new, empty database gets the current schema straight
from `ingest.store.schema` (tables, view, search index, revision stamp), as
Alembic's cookbook does with `create_all` and `stamp`.  `require_schema` is
for the commands that only read: it creates and migrates nothing.  Engines
and URLs are `ingest.store.db`'s.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ingest import errors
from ingest.store import schema, search
from ingest.store.db import READ_ONLY
from ingest.store.schema import SCHEMA_REVISION

__all__ = ["create_schema", "current_revision", "migrate", "require_schema"]

_PG_LOCK_ID = 0x1A6E57  # advisory lock key for migrations


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at, or None for a new database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def require_schema(engine: Engine) -> None:
    """Raise StoreError unless the database has ingest's schema at SCHEMA_REVISION.

    For the commands that only read: they neither create nor migrate anything,
    so a database that is not ingest's, or not yet upgraded, is a clear error.
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            revision = current_revision(conn)
            ours = revision is not None or _has_our_tables(conn)
            conn.rollback()
    except SQLAlchemyError as e:
        detail = " ".join(str(getattr(e, "orig", None) or e).split())
        raise errors.StoreError(f"cannot open the database {where}: {detail}") from e
    if not ours:
        raise errors.StoreError(
            f"the database {where} has no ingest tables: run `ingest run --db URL` "
            "to create them, or check --db"
        )
    if revision != SCHEMA_REVISION:
        raise errors.StoreError(
            f"the database {where} is at schema revision {revision}, this ingest reads "
            f"{SCHEMA_REVISION}: run `ingest run` (or the scheduler) once to upgrade it"
        )


def migrate(engine: Engine) -> None:
    """Bring the database to SCHEMA_REVISION, running Alembic only if needed."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            if current_revision(conn) == SCHEMA_REVISION:
                conn.rollback()
                return
            conn.rollback()
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
            revision = current_revision(conn)
            if revision == SCHEMA_REVISION:
                return  # another process migrated while we waited for the lock
            if engine.dialect.name == "sqlite":
                search.check_sqlite_fts5(conn)  # the head revision's search needs it
            if revision is None and not _has_our_tables(conn):
                create_schema(conn)
            else:
                _run_alembic(conn)
    except SQLAlchemyError as e:
        raise errors.StoreError(f"cannot migrate the database: {e}") from e


def _has_our_tables(conn: Connection) -> bool:
    inspector = inspect(conn)
    present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    return bool(present & {*schema.metadata.tables, schema.LATEST_ITEMS_VIEW})


def create_schema(conn: Connection) -> None:
    """The current schema in an empty database, stamped with SCHEMA_REVISION (no Alembic)."""
    schema.metadata.create_all(conn)
    conn.exec_driver_sql(schema.latest_items_view(conn.dialect.name))
    for statement in search.search_ddl(conn.dialect.name):
        conn.exec_driver_sql(statement)
    conn.exec_driver_sql(  # the table Alembic keeps its revision in, as Alembic creates it
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": SCHEMA_REVISION}
    )


def _run_alembic(conn: Connection, revision: str = "head", *, down: bool = False) -> None:
    """Alembic's upgrade to `revision` (or downgrade, for tests of the migrations) on `conn`."""
    import ingest_migrations
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(ingest_migrations.__file__).parent))
    cfg.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(cfg, revision)
