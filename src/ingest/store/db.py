"""Connecting to the database: URL resolution, engine set-up, migrations on first use.

SQLite gets WAL mode, a busy timeout and foreign keys on every connection;
PostgreSQL URLs are used as given.  `migrate` brings a database to the
revision the code expects under a lock (SQLite's write lock, PostgreSQL's
advisory lock), so two processes opening a new database at once cannot race.
Alembic is imported only when a migration actually has to run: a new, empty
database gets the current schema straight from `ingest.store.schema`
(tables, view, revision stamp), as Alembic's cookbook does with `create_all`
and `stamp`.  No queries
about sources or items live here.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ingest import errors
from ingest.store import schema
from ingest.store.schema import SCHEMA_REVISION

T = TypeVar("T")

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "IN_CHUNK",
    "READ_ONLY",
    "chunks",
    "create_schema",
    "current_revision",
    "make_engine",
    "make_read_engine",
    "migrate",
    "require_schema",
    "resolve_url",
]

DEFAULT_URL = "sqlite:///db/ingest.sqlite3"
ENV_VAR = "INGEST_DATABASE_URL"
_PG_LOCK_ID = 0x1A6E57  # advisory lock key for migrations
SQLITE_BUSY_MS = 30_000
READ_ONLY = "ingest_read"  # execution option: this connection only reads


IN_CHUNK = 500  # values per IN (...) list: well within SQLite's bound-parameter limit


def chunks(values: Sequence[T], n: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `n`, for IN lists every backend accepts."""
    for i in range(0, len(values), n):
        yield values[i : i + n]


def resolve_url(url: str | None = None) -> str:
    """`--db`, else $INGEST_DATABASE_URL, else the SQLite file under db/.

    `postgres://` and `postgresql://` (what hosting providers and libpq write)
    mean PostgreSQL through psycopg 3, the driver ingest installs.
    """
    chosen = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    for prefix in ("postgres://", "postgresql://"):
        if chosen.startswith(prefix):
            return "postgresql+psycopg://" + chosen[len(prefix) :]
    return chosen


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return path if path and path != ":memory:" else None


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An Engine for `url`, with SQLite tuned for one writer and many readers.

    With `create=False` a SQLite file that does not exist is an error (its
    directory is not made either): the read-only commands never create one.
    """
    path = sqlite_path(url)
    if path is not None and not create and not Path(path).is_file():
        raise errors.StoreError(
            f"no database at {path}: run `ingest run` first, or give --db (or ${ENV_VAR})"
        )
    try:
        if url.startswith("sqlite"):
            if path is not None:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_MS / 1000, "isolation_level": None},
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError, OSError) as e:
        raise errors.StoreError(f"cannot use database {_redact(url)}: {e}") from e
    return engine


def dialect_insert(conn: Connection, table: Any) -> Any:
    """The dialect's own INSERT for `table` (it has ON CONFLICT), imported only for the
    dialect in use."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def make_read_engine(engine: Engine) -> Engine:
    """The engine reads go through: `engine` itself on SQLite; on PostgreSQL one that
    answers a read in one round trip: autocommit (no BEGIN, no ROLLBACK) and no
    ping before each use (`Store` retries a read once on a connection the server
    dropped instead)."""
    if engine.dialect.name == "sqlite":
        return engine
    try:
        return create_engine(engine.url, isolation_level="AUTOCOMMIT")
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise errors.StoreError(f"cannot use database {_redact(str(engine.url))}: {e}") from e


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    _set_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _set_wal(cur: Any) -> None:
    """`PRAGMA journal_mode=WAL`, waiting while another process holds the new file.

    Switching a new file to WAL takes an exclusive lock, and SQLite answers
    "database is locked" at once, without its busy handler, when another
    connection is doing the same or creating the schema: two runs opening a
    new database together must wait here, not fail.
    """
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    pause = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _sqlite_on_begin(conn: Connection) -> None:
    # The driver runs in autocommit mode (isolation_level=None) so that we can
    # say BEGIN ourselves: a writer takes the lock up front with BEGIN IMMEDIATE
    # and waits on busy_timeout, instead of failing half-way with "database is
    # locked"; a connection marked `ingest_read` reads a snapshot and never
    # blocks a writer (WAL).
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


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
    where = _redact(engine.url.render_as_string(hide_password=False))
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
                from ingest.store import search

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
    from ingest.store import search  # imports this module

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
