"""Prometheus metrics of the long-running processes, and the `/metrics` server they open.

One job: what a scheduler, a dispatcher or a worker counts while it runs
(polls by source and outcome, their durations, stories stored, the lag of
each new story, leases held, per-source failures and last success, and, for
the two that tick, the tick's lag and the sources due but not yet polled),
kept in prometheus-client's own metric types and served in its own
exposition format by its own HTTP server (`serve_metrics`).  With
`PROMETHEUS_MULTIPROC_DIR` set, every process keeps its values in that
directory and each endpoint serves the sum over all of them
(prometheus-client's multiprocess mode, for several workers on one host).
What the *database* knows is web/metrics.py's (`ingest serve`'s `/metrics`).
It decides nothing and touches neither the network (beyond its own port)
nor the database.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ingest import errors

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ingest.model import SourceReport

__all__ = [
    "DURATION_BUCKETS",
    "LAG_BUCKETS",
    "MULTIPROC_ENV",
    "Metrics",
    "MetricsServer",
    "outcome",
    "running",
    "serve_metrics",
]

log = logging.getLogger("ingest.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# seconds from publication to first stored: a minute to a day
LAG_BUCKETS = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0,
               86400.0)  # fmt: skip
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)


def outcome(report: SourceReport) -> str:
    """One word for how a poll ended: ok, not_modified, unchanged, or the error's kind."""
    if not report.ok:
        return report.error_kind or "error"
    if report.not_modified:
        return "not_modified"
    if report.unchanged:
        return "unchanged"
    return "ok"


def _multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The metrics of one process; `role` is scheduler, dispatcher or worker (which
    has no tick metrics)."""

    def __init__(self, role: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.role = role
        # in multiprocess mode the values live in files and are served by a
        # MultiProcessCollector (serve_metrics); this registry only names them
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.polls = Counter(
            "ingest_polls", "Polls by source and outcome (ok, not_modified, unchanged, "
            "or the error kind: network, timeout, http, blocked, refused, parse, too_large, ...)",
            ["source", "outcome"], registry=reg,
        )  # fmt: skip
        self.poll_seconds = Histogram(
            "ingest_poll_duration_seconds", "How long a poll took, request to stored",
            buckets=DURATION_BUCKETS, registry=reg,
        )  # fmt: skip
        self.stories = Counter(
            "ingest_stories_stored", "Stories stored, by source and change (new, updated)",
            ["source", "change"], registry=reg,
        )  # fmt: skip
        self.lag = Histogram(
            "ingest_story_lag_seconds", "Seconds from a new story's publication (when its "
            "date is its own) to when ingest first stored it; a source's first poll is left out",
            buckets=LAG_BUCKETS, registry=reg,
        )  # fmt: skip
        self.leases = Gauge(
            "ingest_leases_held", "Sources this process holds the lease of (polls in flight)",
            registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.failures = Gauge(
            "ingest_source_consecutive_failures", "Failed polls in a row, per source",
            ["source"], registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.last_success = Gauge(
            "ingest_source_last_success_timestamp_seconds",
            "When the source was last polled successfully (Unix time)",
            ["source"], registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.interval = Gauge(
            "ingest_source_poll_interval_seconds", "The source's regular interval at its last "
            "poll: its every, the time to its next cron time, or what every: auto chose",
            ["source"], registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self._last_tick: float | None = None
        self._ticks: tuple[Gauge, Gauge, Gauge] | None = None
        if role == "worker":  # a worker runs the jobs it is given: it does not tick
            return
        last_tick = Gauge(
            "ingest_last_tick_timestamp_seconds", "When this process last ticked (Unix time)",
            registry=reg, multiprocess_mode="max",
        )  # fmt: skip
        tick_lag = Gauge(
            "ingest_tick_lag_seconds", "How much later than planned the last tick ran",
            registry=reg, multiprocess_mode="max",
        )  # fmt: skip
        due = Gauge(
            "ingest_sources_due", "Sources due at the last tick that were not polled then "
            "(no room, or leased elsewhere); for a dispatcher, due sources it queued",
            registry=reg, multiprocess_mode="max",
        )  # fmt: skip
        self._ticks = (last_tick, tick_lag, due)

    def observe_poll(
        self,
        report: SourceReport,
        *,
        failures: int,
        started: datetime,
        first: bool,
        interval: float | None = None,
    ) -> None:
        """Count one finished poll; `first` (a source never fetched before) skips its lags;
        `interval` is the source's regular interval as policy.py planned it."""
        if report.skipped:
            return
        key = report.source_key
        self.polls.labels(key, outcome(report)).inc()
        self.poll_seconds.observe(report.elapsed_ms / 1000.0)
        if report.new:
            self.stories.labels(key, "new").inc(report.new)
        if report.updated:
            self.stories.labels(key, "updated").inc(report.updated)
        if not first:
            for lag in report.lags:
                self.lag.observe(lag)
        self.failures.labels(key).set(failures)
        if interval:
            self.interval.labels(key).set(interval)
        if report.ok:
            self.last_success.labels(key).set(started.timestamp())

    def ticked(self, every: float, *, due: int | None = None) -> None:
        """A tick (meant to come `every` seconds after the last) has run; `due` left waiting."""
        if self._ticks is None:
            return
        last_tick, tick_lag, waiting = self._ticks
        now = time.monotonic()
        if self._last_tick is not None:
            tick_lag.set(max(0.0, now - self._last_tick - every))
        self._last_tick = now
        last_tick.set_to_current_time()
        if due is not None:
            waiting.set(due)


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint; `close` stops it (and, in multiprocess mode, marks
    this process dead so that its live gauges leave the sums)."""

    host: str
    port: int
    _stop: Callable[[], None]

    def close(self) -> None:
        self._stop()


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve `metrics` at http://host:port/metrics (prometheus-client's server, a thread)."""
    from prometheus_client import start_http_server

    registry: CollectorRegistry = metrics.registry
    shared = _multiproc_dir()
    if shared is not None:
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise errors.IngestError(f"cannot serve metrics on {host}:{port}: {e}") from e
    bound = int(server.server_address[1])
    log.info("metrics at http://%s:%d/metrics%s", host, bound,
             f" (all processes sharing {shared})" if shared else "")  # fmt: skip

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        if shared is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), path=shared)  # type: ignore[no-untyped-call]

    return MetricsServer(host, bound, stop)


@contextmanager
def running(role: str, port: int | None, host: str = "127.0.0.1") -> Iterator[Metrics | None]:
    """The process's metrics while it runs, served on `port` when one is given.

    None when there is no port and no multiprocess directory: nothing is
    counted.  With `PROMETHEUS_MULTIPROC_DIR` a process counts even without a
    port (another process on the host serves the sums), and is marked dead
    in the directory when it ends.
    """
    shared = _multiproc_dir()
    if port is None and shared is None:
        yield None
        return
    metrics = Metrics(role)
    server = serve_metrics(metrics, port, host) if port is not None else None
    try:
        yield metrics
    finally:
        if server is not None:
            server.close()
        elif shared is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), path=shared)  # type: ignore[no-untyped-call]
