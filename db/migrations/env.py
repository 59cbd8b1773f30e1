"""Alembic environment: runs the revisions on the connection ingest hands over.

ingest.store.migrations calls Alembic with `config.attributes["connection"]` set, inside
its own migration lock; this file only wires that connection and the metadata
in.  It never creates an engine of its own.
"""

from __future__ import annotations

from alembic import context

from ingest.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a bare `alembic` call
    raise SystemExit("run migrations through `ingest` (ingest.store.migrations), not bare alembic")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
