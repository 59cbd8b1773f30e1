"""procrastinate glue for distributed mode: the app, the poll task's name, its schema, stalls.

One job: what `ingest dispatch` and `ingest worker` share about the queue.
`make_app` builds a procrastinate `App` over the database URL (the same
PostgreSQL that holds the stories); `ensure_schema` applies procrastinate's
schema once, under an advisory lock, when its tables are missing (so any
number of dispatchers may start at once); `defer_poll` queues one
`ingest.poll_source(key)` job with `lock` and `queueing_lock` on the key;
`retry_stalled` hands the jobs of workers that stopped heartbeating back to
the queue.  It does not poll (worker.py) or decide what is due
(dispatch.py, store/).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import procrastinate

__all__ = [
    "TASK",
    "defer_poll",
    "ensure_schema",
    "job_owner",
    "libpq_url",
    "make_app",
    "retry_stalled",
]

log = logging.getLogger("ingest.queue")

TASK = "ingest.poll_source"
_SCHEMA_LOCK = 0x1E57_0007  # advisory lock key: one dispatcher applies the schema


def job_owner(job_id: int | None) -> str:
    """The lease owner of a poll job: the job, not the worker, so that its retry owns it too."""
    return f"job:{job_id}"


def libpq_url(url: str) -> str:
    """`postgresql+psycopg://u@h/db` (SQLAlchemy) -> `postgresql://u@h/db` (libpq)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise ValueError(f"distributed mode needs PostgreSQL, not {parsed.drivername}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(url: str, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate App on the database at `url` (open it with `app.open_async()`)."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(url), min_size=1, max_size=max(2, pool_size)
    )
    return procrastinate.App(connector=connector)


def ensure_schema(url: str) -> bool:
    """Apply procrastinate's schema if its tables are missing; returns whether it did."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(libpq_url(url), autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is not None and row[0] is not None:
            return False
        conn.execute(SchemaManager.get_schema())
    log.info("applied procrastinate's schema")
    return True


async def defer_poll(app: procrastinate.App, key: str) -> bool:
    """Queue a poll of `key`; False when one is already waiting (its queueing lock)."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        await app.configure_task(TASK, lock=key, queueing_lock=key).defer_async(key=key)
    except AlreadyEnqueued:
        return False
    return True


async def retry_stalled(
    app: procrastinate.App,
    seconds_since_heartbeat: float,
    free_lease: Callable[[str, str], Awaitable[None]],
) -> int:
    """Put back in the queue the poll jobs of workers silent for that long (killed, hung).

    The dead job's lease is freed first (`free_lease(key, owner)`), so the
    retry, or another job already queued for the source, can take it at
    once rather than after the lease's expiry.  When another job for the
    source is already waiting (its queueing lock), the stalled one is
    deleted instead: that one polls.  Returns the jobs handled.
    """
    from procrastinate.exceptions import UniqueViolation
    from procrastinate.jobs import Status

    stalled = await app.job_manager.get_stalled_jobs(
        task_name=TASK, seconds_since_heartbeat=seconds_since_heartbeat
    )
    n = 0
    for job in stalled:
        key = str(job.task_kwargs.get("key", ""))
        log.warning("job %s (poll of %s) belonged to a stalled worker: retrying it", job.id, key)
        await free_lease(key, job_owner(job.id))
        try:
            await app.job_manager.retry_job(job)
        except UniqueViolation:  # a poll of this source is already queued: it will do
            await app.job_manager.finish_job(job, Status.FAILED, delete_job=True)
        n += 1
    return n
