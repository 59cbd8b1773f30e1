"""The distributed-mode subcommands of `ingest`: `dispatch` and `worker` (docs/scaling.md).

One job: their arguments in, exit codes out, kept apart so main.py stays
small.  `dispatch` runs dispatch.Dispatcher, `worker` runs
poll_worker.run_worker; both need a PostgreSQL `--db`.  No polling or
queueing logic lives here.
"""

from __future__ import annotations

import argparse
from typing import Any

from ingest import errors

__all__ = ["add_parsers", "dispatch", "worker"]


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser], seconds: Any) -> None:
    """Add `dispatch` and `worker` to the subcommand parsers `sub` (`parents`: the common
    options and the metrics ones)."""
    d = sub.add_parser(
        "dispatch", parents=parents, help="distributed mode: queue a poll job per due source"
    )
    d.add_argument("--once", action="store_true", help="sync and queue what is due, then exit")
    d.add_argument("--log-format", choices=("text", "json"), default="text")
    d.add_argument(
        "--interval", type=seconds, default=1.0, metavar="DURATION",
        help="time between passes (default 1s)",
    )  # fmt: skip
    d.add_argument(
        "--stalled-after", type=seconds, default=30.0, metavar="DURATION",
        help="retry the jobs of a worker silent this long (default 30s)",
    )  # fmt: skip
    w = sub.add_parser("worker", parents=parents, help="distributed mode: run queued poll jobs")
    w.add_argument("--concurrency", type=int, default=16, help="jobs at once (default 16)")
    w.add_argument("--log-format", choices=("text", "json"), default="text")
    w.add_argument(
        "--heartbeat", type=seconds, default=10.0, metavar="DURATION",
        help="how often the worker says it is alive (default 10s)",
    )  # fmt: skip
    w.add_argument(
        "--grace", type=seconds, default=20.0, metavar="DURATION",
        help="on SIGTERM, how long jobs in flight may finish (default 20s)",
    )  # fmt: skip


def _url(args: argparse.Namespace) -> str:
    from ingest.store import db

    url = db.resolve_url(args.db)
    if not url.startswith("postgresql"):
        raise errors.StoreError(f"distributed mode needs a PostgreSQL --db, not {url}")
    return url


def dispatch(args: argparse.Namespace) -> int:
    from ingest.runtime import eventloop, metrics
    from ingest.service.distributed.dispatcher import DISPATCHER_NAME, Dispatcher
    from ingest.store import Store

    url = _url(args)
    with (
        Store.open(url) as store,
        metrics.running(DISPATCHER_NAME, args.metrics_port, args.metrics_host) as counted,
    ):
        dispatcher = Dispatcher(
            args.sources, store, url, interval=args.interval, stalled_after=args.stalled_after,
            metrics=counted,
        )  # fmt: skip
        return eventloop.run(dispatcher.run(once=args.once))


def worker(args: argparse.Namespace) -> int:
    from ingest.runtime import eventloop
    from ingest.service.distributed.worker import run_worker
    from ingest.store import Store

    if args.concurrency < 1:
        raise errors.IngestError("--concurrency must be at least 1")
    url = _url(args)
    from ingest.runtime import metrics

    # parse workers, if a document needs them, are the pipeline's: started when the first
    # such document comes, from a forkserver, and they die with this process
    with (
        Store.open(url) as store,
        metrics.running("worker", args.metrics_port, args.metrics_host) as counted,
    ):
        return eventloop.run(
            run_worker(
                store, url, concurrency=args.concurrency, heartbeat=args.heartbeat,
                grace=args.grace, metrics=counted,
            )
        )  # fmt: skip
