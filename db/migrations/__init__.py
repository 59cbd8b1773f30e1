"""Alembic migrations of the ingest database (env.py and versions/).

Shipped as the package `ingest_migrations` so that an installed ingest can
migrate a database on first use; it holds schema history only, no logic.
"""
