"""Run a SELECT, or a write once per row, through the driver's own cursor, compiled once.

A list request's statement takes PostgreSQL a quarter of a millisecond, and
SQLAlchemy's execution around it (the execution context, the result's
metadata built anew from the cursor's description, a Row and a RowMapping
per row) took longer than that.  `dicts` does once per statement what
SQLAlchemy does per call: it compiles the statement for the connection's
dialect and finds each parameter's and each column's conversion, then runs
it on the DBAPI cursor of the connection it is given and returns one dict a
row.  A driver error is translated as SQLAlchemy translates it
(`DBAPIError`, the connection invalidated when the server dropped it), so a
caller handles the errors of both ways alike.

`executemany` does the same for a write (an INSERT or UPDATE of one shape,
run once per row of parameters): the service records every poll that way,
and SQLAlchemy's per-row parameter handling cost more than the writes.  Only
statements whose values are all given (or written in the statement) go this
way: a column default computed in Python would be skipped (store/schema.py
has only server defaults).

It does not build statements, open or commit transactions (the caller's
`Connection` is in one), or run the search statements (their blocks are read
row by row: store/reads.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["dicts", "executemany", "insert_returning"]

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a cache key
class _Compiled:
    sql: str
    named: bool  # the driver's parameters by name (psycopg), else by position (SQLite)
    # what is sent, in order: the placeholder's name, the caller's parameter it takes
    # (None: the statement's own value, the third), and the dialect's conversion
    binds: tuple[tuple[str, str | None, Any, Convert | None], ...]
    keys: tuple[str, ...]  # the columns' names, in order
    types: tuple[Any, ...]  # the columns' SQLAlchemy types, in order


def dicts(conn: Connection, statement: Select[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of `statement` with `params`, as dicts keyed by the selected columns'
    names, each value converted as SQLAlchemy converts it.

    `statement` must be one reused object (store/reads.py caches them), since it keys
    the cache of compiled forms; a parameter bound with `literal_execute` is written
    into the SQL, so the cache holds one form per value of it (`page`, the LIMIT).
    """
    dialect = conn.dialect
    literal = tuple(sorted((k, params[k]) for k in _literal_names(statement, dialect)))
    c = _compile(statement, dialect, literal, tuple(sorted(params)))
    args = _args(c, params)
    with _cursor(conn, c.sql, args) as cursor:
        cursor.execute(c.sql, args)
        description = cursor.description
        rows = cursor.fetchall()
    keys = c.keys
    return [dict(zip(keys, row, strict=True)) for row in _converted(c, dialect, description, rows)]


def executemany(conn: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]) -> None:
    """`statement` (an INSERT or UPDATE, or a `text` one) once per dict of `rows`, in one
    driver call.

    Every dict has the same keys: for an INSERT without `values`, the columns;
    for a statement of `bindparam`s (or a `text` one), their names; a key the
    statement does not name is not sent.  `statement` must be one
    reused object (a module constant or a cached builder), as for `dicts`.
    """
    if not rows:
        return
    dialect = conn.dialect
    c = _compile_write(statement, dialect, tuple(sorted(rows[0])))
    batch = [_args(c, row) for row in rows]
    with _cursor(conn, c.sql, batch) as cursor:
        cursor.executemany(c.sql, batch)


def _args(c: _Compiled, params: dict[str, Any]) -> Any:
    """What the driver is sent for `params`: by name or by position, each value converted."""
    sent = []
    for _, key, own, convert in c.binds:
        value = own if key is None else params[key]
        sent.append(value if convert is None else convert(value))
    return {b[0]: v for b, v in zip(c.binds, sent, strict=True)} if c.named else sent


def insert_returning(
    conn: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows an INSERT ... RETURNING gives for `rows` (those it inserted), each value
    converted as SQLAlchemy converts it; in no particular order.

    On SQLite one statement per row on the driver's cursor (sqlite3's `execute` is
    cheap, SQLAlchemy's many-rows INSERT machinery around it was not); elsewhere
    SQLAlchemy's own batched INSERT, a server round trip being dearer than the rest.
    `statement` must be one reused object, as for `executemany`.
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        return [tuple(r) for r in conn.execute(cast(Executable, statement), list(rows))]
    c = _compile_write(statement, conn.dialect, tuple(sorted(rows[0])))
    out: list[tuple[Any, ...]] = []
    description = None
    with _cursor(conn, c.sql, rows) as cursor:
        for row in rows:
            cursor.execute(c.sql, _args(c, row))
            out.extend(cursor.fetchall())
            description = description or cursor.description
    if not out or description is None:
        return out
    return [tuple(row) for row in _converted(c, conn.dialect, description, out)]


def _converted(
    c: _Compiled, dialect: Dialect, description: Sequence[Any], rows: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    """`rows` (of `c`'s columns, as the driver described them) with each value the
    dialect converts converted, as SQLAlchemy converts it; as they are when none is."""
    converters = _columns(c, dialect, tuple(d[1] for d in description))
    if not converters:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        out.append(values)
    return out


@contextmanager
def _cursor(conn: Connection, sql: str, args: Any) -> Iterator[Any]:
    """The driver's cursor on `conn`'s connection; a driver error raised in the block
    comes out as SQLAlchemy's `DBAPIError`, the connection invalidated if it dropped."""
    dialect = conn.dialect
    raw = conn.connection.dbapi_connection
    if raw is None:  # pragma: no cover - a Connection always has one once asked
        raise RuntimeError("the connection has no driver connection")
    cursor = raw.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as e:
        dropped = dialect.is_disconnect(e, raw, cursor)
        if dropped:
            conn.invalidate(e)
        raise DBAPIError.instance(
            sql, args, e, dialect.loaded_dbapi.Error, connection_invalidated=dropped
        ) from e
    finally:
        cursor.close()


@lru_cache(maxsize=512)
def _literal_names(statement: Select[Any], dialect: Dialect) -> frozenset[str]:
    """The parameters of `statement` written into its SQL rather than sent."""
    compiled = statement.compile(dialect=dialect)
    return frozenset(b.key for b in compiled.literal_execute_params | compiled.post_compile_params)


@lru_cache(maxsize=2048)
def _compile(
    statement: Select[Any],
    dialect: Dialect,
    literal: tuple[tuple[str, Any], ...],
    names: tuple[str, ...],
) -> _Compiled:
    # every parameter needs a value to write the literal ones in: the values given
    # now are not kept, only the SQL with the others as placeholders
    filler = dict.fromkeys(names)
    filler.update(literal)
    compiled = statement.params(**filler).compile(
        dialect=dialect, compile_kwargs={"render_postcompile": True}
    )
    columns = statement.selected_columns
    return _Compiled(
        sql=compiled.string,
        named=not compiled.positional,
        binds=_binds(compiled, dialect, names),
        keys=tuple(col.name for col in columns),
        types=tuple(col.type for col in columns),
    )


@lru_cache(maxsize=256)
def _compile_write(statement: ClauseElement, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
    """`statement` compiled for rows with the keys `names` (an INSERT's columns)."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(names)))
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("executemany takes no expanding or literal-execute parameters")
    binds = _binds(compiled, dialect, names)
    returned = list(getattr(statement, "exported_columns", ()))  # what a RETURNING gives
    return _Compiled(
        sql=compiled.string,
        named=not compiled.positional,
        binds=binds,
        keys=tuple(col.name for col in returned),
        types=tuple(col.type for col in returned),
    )


def _binds(
    compiled: SQLCompiler, dialect: Dialect, names: tuple[str, ...]
) -> tuple[tuple[str, str | None, Any, Convert | None], ...]:
    """What `compiled` sends, in order (`_Compiled.binds`): the placeholder, the caller's
    parameter of `names` it takes (else the statement's own value), the conversion."""
    given = set(names)
    binds = []
    if compiled.positional:
        placeholders: Iterable[str] = compiled.positiontup or ()
    else:
        placeholders = compiled.bind_names.values()
    for name in placeholders:
        bind = compiled.binds[name]
        if bind.literal_execute:  # written into the SQL
            continue
        key = bind.key if bind.key in given else None
        if key is None and bind.callable is not None:  # pragma: no cover - a Python default
            raise ValueError(f"cannot compute {bind.key!r} on the driver's cursor")
        own = None if key is not None else bind.effective_value
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        binds.append((name, key, own, convert))
    return tuple(binds)


@lru_cache(maxsize=2048)
def _columns(
    c: _Compiled, dialect: Dialect, type_codes: Sequence[Any]
) -> tuple[tuple[int, Convert], ...]:
    """The columns the dialect converts (by position), for the driver's type codes of
    this result."""
    out = []
    for i, (type_, code) in enumerate(zip(c.types, type_codes, strict=True)):
        convert = type_.dialect_impl(dialect).result_processor(dialect, code)
        if convert is not None:
            out.append((i, convert))
    return tuple(out)
