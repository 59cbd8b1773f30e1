"""Shared pytest fixtures: loopback feed servers and database URLs (SQLite, PostgreSQL).

One job: hand tests the real things they run against — ``feed_server`` (a started
``FeedServer``, see tests/feedserver.py), ``lab`` (a feedlab corpus and server, see
tests/feedlab_helpers.py; skipped where feedlab is missing), ``sqlite_url``,
``postgres_url``, ``pg_url`` (a throw-away PostgreSQL database) and ``db_url`` (each store
test once on SQLite and once on PostgreSQL). It does not create schemas or tables (the
store's migrations do), does not write sources.yaml files, and never mocks anything. It
sets ``INGEST_ALLOW_NETWORKS`` to loopback for the session, so the network guard lets the
fetcher (and ``ingest`` subprocesses) reach the loopback test servers.

PostgreSQL comes from ``INGEST_TEST_POSTGRES_URL`` (SQLAlchemy form, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); without it, the local server at
that example address is used when it answers; otherwise, or when the server given is
unreachable, PostgreSQL tests are skipped with the reason. ``-m "not postgres"`` deselects
the PostgreSQL half of ``db_url``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.service.distributed.queue import libpq_url

# tests/ on sys.path whatever the import mode, so `from feedserver import FeedServer` works.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
# The shared helper modules assert on the tests' behalf: let pytest explain their failures.
pytest.register_assert_rewrite("cli_helpers", "expected", "feedlab_helpers")

from feedlab_helpers import FEEDLAB_MISSING, Lab, feedlab_available, free_port  # noqa: E402
from feedserver import FeedServer  # noqa: E402

PG_ENV = "INGEST_TEST_POSTGRES_URL"
PG_EXAMPLE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The network guard refuses loopback unless allowed; every test server is on 127.0.0.0/8.
LOOPBACK_ALLOWED = "127.0.0.0/8,::1/128"


def pytest_configure(config: pytest.Config) -> None:
    """Let the fetcher reach the loopback test servers, here and in `ingest` subprocesses."""
    allowed = os.environ.get("INGEST_ALLOW_NETWORKS", "").strip()
    if LOOPBACK_ALLOWED not in allowed:
        os.environ["INGEST_ALLOW_NETWORKS"] = ",".join(filter(None, (allowed, LOOPBACK_ALLOWED)))


def _sqlalchemy_pg_url(url: str, database: str | None = None) -> str:
    """The URL with the psycopg 3 driver named (and optionally another database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql+psycopg")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer on 127.0.0.1:<ephemeral>, stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """An empty feedlab corpus folder and a free port (``lab.gen`` fills it, ``lab.serve``
    starts serve.py over it); the server is stopped after the test.  Skips, saying so,
    where ../shared/feedlab (or ``INGEST_FEEDLAB``) is missing."""
    if not feedlab_available():
        pytest.skip(FEEDLAB_MISSING)
    lab = Lab(tmp_path / "corpus", free_port())
    lab.root.mkdir()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL (``postgresql+psycopg://...``) of the test server; skips if none.

    Checked once per session. Tests must not write to this database directly: use
    ``pg_url`` for a private one.
    """
    import psycopg

    url = os.environ.get(PG_ENV, "").strip()
    if not url:  # none given: the local server every development machine runs, if it answers
        try:
            with psycopg.connect(libpq_url(PG_EXAMPLE), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception:  # nothing there: say which variable to set
            pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. {PG_EXAMPLE})")
        return _sqlalchemy_pg_url(PG_EXAMPLE)
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "can't use it": skip with the reason
        why = " ".join(str(exc).split())  # libpq messages span lines
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable: {type(exc).__name__}: {why}")
    return _sqlalchemy_pg_url(url)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database ``ingest_test_<hex>`` on the test server (SQLAlchemy URL,
    psycopg 3 driver); dropped with ``WITH (FORCE)`` afterwards, so leftover connections
    don't block the drop."""
    import psycopg
    from psycopg import sql

    name = f"ingest_test_{secrets.token_hex(6)}"
    admin = libpq_url(postgres_url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _sqlalchemy_pg_url(postgres_url, database=name)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:///<tmp_path>/ingest.sqlite3`` (file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'ingest.sqlite3'}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test twice: on a fresh SQLite file and on a fresh PostgreSQL database
    (that half skips like ``postgres_url`` when PostgreSQL is not available)."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`ingest.cli.main` points the root logger at the (captured) stderr; undo that
    (modules that run the command in-process use it for every test: `pytestmark`)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
