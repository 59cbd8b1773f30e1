"""Connecting to the database: URL resolution, engine set-up, IN-list chunks.

SQLite gets WAL mode, a busy timeout and foreign keys on every connection;
PostgreSQL URLs are used as given; the read engine skips the pool's ping on
PostgreSQL and retries a dropped connection once.  Bringing the schema up to
date is `ingest.store.migrations`'s job.  No queries about sources or items
live here.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ingest import errors

T = TypeVar("T")

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "IN_CHUNK",
    "READ_ONLY",
    "chunks",
    "dialect_insert",
    "insert_for",
    "make_engine",
    "make_read_engine",
    "resolve_url",
    "sqlite_path",
]

DEFAULT_URL = "sqlite:///db/ingest.sqlite3"
ENV_VAR = "INGEST_DATABASE_URL"
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
        raise errors.StoreError(f"cannot use database {_redact_url(url)}: {e}") from e
    return engine


def dialect_insert(conn: Connection, table: Any) -> Any:
    """The dialect's own INSERT for `table` (it has ON CONFLICT), imported only for the
    dialect in use."""
    return insert_for(conn.dialect.name, table)


def insert_for(dialect: str, table: Any) -> Any:
    """`dialect_insert` by the dialect's name, for statements built once per dialect."""
    if dialect == "postgresql":
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
        raise errors.StoreError(
            f"cannot use database {engine.url.render_as_string(hide_password=True)}: {e}"
        ) from e


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


def _redact_url(url: str) -> str:
    """`url` with its password, if any, as `***` (for messages)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
