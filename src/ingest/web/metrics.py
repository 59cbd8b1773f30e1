"""What the database knows, as Prometheus metrics: `ingest serve`'s `/metrics`.

One job: a prometheus-client `Collector` that, at each scrape, reads the
`sources`, `items` and `services` tables (and procrastinate's job counts in
distributed mode) through a Store and turns them into metric families:
each source's consecutive failures, last success, failing-since and
stories; the sources
due but not polled and the leases held; the freshness of stored stories as
a gauge histogram; and each long-running process's last heartbeat and
whether it is stale (the scheduler, the dispatcher, each worker).  These
hold whichever process does the polling, and still answer when it is down.
The polling processes' own counters are metrics.py's.  It writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ingest.runtime.metrics import LAG_BUCKETS
from ingest.service.health import process_states

if TYPE_CHECKING:
    from ingest.store import Store

__all__ = ["DatabaseCollector", "lag_buckets", "registry_for", "waiting"]


def lag_buckets(lags: Sequence[float]) -> list[tuple[str, float]]:
    """Cumulative `le` buckets of `lags` over `LAG_BUCKETS` (and +Inf)."""
    ordered = sorted(lags)
    out, i = [], 0
    for bound in LAG_BUCKETS:
        while i < len(ordered) and ordered[i] <= bound:
            i += 1
        out.append((f"{bound:g}", float(i)))
    out.append(("+Inf", float(len(ordered))))
    return out


def waiting(rows: Sequence[Mapping[str, Any]], now: datetime) -> tuple[int, int]:
    """(sources due at `now` and not leased, live leases) among the `sources` rows."""
    due = leased = 0
    for r in rows:
        live = r.get("lease_owner") is not None and (r.get("lease_until") or now) > now
        leased += live
        pollable = r["enabled"] and r["in_config"] and not r.get("disabled_reason")
        ready = (r.get("next_due_at") or now) <= now and (r.get("retry_after_until") or now) <= now
        due += bool(pollable and ready and not live)
    return due, leased


class DatabaseCollector(Collector):
    """Reads the store at every scrape; `max_silence` is when a heartbeat is stale."""

    def __init__(
        self,
        store: Store,
        *,
        max_silence: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.max_silence = max_silence
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        rows = self.store.status()
        failures = GaugeMetricFamily(
            "ingest_source_consecutive_failures", "Failed polls in a row, per source",
            labels=["source"],
        )  # fmt: skip
        success = GaugeMetricFamily(
            "ingest_source_last_success_timestamp_seconds",
            "When the source was last polled successfully (Unix time; absent: never)",
            labels=["source"],
        )
        since = GaugeMetricFamily(
            "ingest_source_failing_since_timestamp_seconds",
            "When a failing source's first failed poll since its last success was (Unix time; "
            "absent: not failing)", labels=["source"],
        )  # fmt: skip
        stories = GaugeMetricFamily(
            "ingest_source_stories", "Stories the source has carried (still stored)",
            labels=["source"],
        )  # fmt: skip
        enabled = GaugeMetricFamily(
            "ingest_source_enabled", "1 when the source is polled (enabled, in the file, "
            "not disabled by ingest)", labels=["source"],
        )  # fmt: skip
        for r in rows:
            key = [r["key"]]
            failures.add_metric(key, float(r["consecutive_failures"] or 0))
            if r["last_success_at"] is not None:
                success.add_metric(key, r["last_success_at"].timestamp())
            if r["consecutive_failures"] and r.get("failing_since") is not None:
                since.add_metric(key, r["failing_since"].timestamp())
            stories.add_metric(key, float(r["items"]))
            on = r["enabled"] and r["in_config"] and not r["disabled_reason"]
            enabled.add_metric(key, 1.0 if on else 0.0)
        yield from (failures, success, since, stories, enabled)
        due, leased = waiting(rows, now)
        yield GaugeMetricFamily(
            "ingest_sources_due", "Sources due now that no process is polling", value=due
        )
        yield GaugeMetricFamily("ingest_leases_held", "Sources being polled now", value=leased)
        lags = [lag for r in rows for lag in r["story_lags"]]  # read once, with the rows
        yield GaugeHistogramMetricFamily(
            "ingest_stored_story_lag_seconds",
            "Stored stories by seconds from publication to first stored (dates of their own, "
            "published after their source was added)",
            buckets=lag_buckets(lags), gsum_value=sum(lags),
        )  # fmt: skip
        yield from self._processes(now)

    def _processes(self, now: datetime) -> Iterator[Metric]:
        tick = GaugeMetricFamily(
            "ingest_service_last_tick_timestamp_seconds",
            "Each long-running process's last heartbeat (Unix time)",
            labels=["service", "role"],
        )
        stale = GaugeMetricFamily(
            "ingest_service_stale", "1 when the process has stopped beating without stopping "
            "cleanly (silent for longer than allowed)", labels=["service", "role"],
        )  # fmt: skip
        stopped = GaugeMetricFamily(
            "ingest_service_stopped", "1 when the process stopped cleanly",
            labels=["service", "role"],
        )  # fmt: skip
        for p in process_states(self.store.services(), now, self.max_silence):
            labels = [p.name, p.role]
            tick.add_metric(labels, p.last_tick_at.timestamp())
            stale.add_metric(labels, 1.0 if p.state == "stale" else 0.0)
            stopped.add_metric(labels, 1.0 if p.state == "stopped" else 0.0)
        yield from (tick, stale, stopped)
        jobs = self.store.queue_counts()
        if jobs is not None:
            queue = GaugeMetricFamily(
                "ingest_queue_jobs", "Distributed mode: poll jobs by status", labels=["status"]
            )
            for status, n in jobs.items():
                queue.add_metric([status], float(n))
            yield queue


def registry_for(store: Store, *, max_silence: float = 60.0) -> CollectorRegistry:
    """A registry holding only the database's metrics (not this process's own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, max_silence=max_silence))
    return registry
