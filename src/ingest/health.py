"""Is the service healthy? A pure judgement over the heartbeat and the sources' state.

`assess` takes the `services` row the scheduler (or, in distributed mode,
the dispatcher) keeps fresh and the `sources` rows, and says what is wrong:
no such service ever ran, it stopped, or it has not ticked for longer than
allowed; or enabled sources have gone without a successful poll for more
than `stale` times their interval (after their backoff).  `pick_service`
says which heartbeat to judge when both kinds exist: the freshest.
`ingest health` prints the result and exits non-zero on any problem, for
cron, systemd or Kubernetes probes.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["CRON_INTERVAL", "Health", "assess", "pick_service"]

CRON_INTERVAL = 86400.0  # a cron source is expected to succeed at least daily


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    problems: tuple[str, ...]
    scheduler: str  # one line about the service (the scheduler or the dispatcher)
    stale: tuple[str, ...] = ()  # keys of stale sources
    service: str = "scheduler"  # which heartbeat was judged


def pick_service(
    rows: Mapping[str, Mapping[str, Any] | None],
) -> tuple[str, Mapping[str, Any] | None]:
    """The heartbeat to judge among `rows` (name -> `services` row or None): the freshest.

    A database is kept current by the scheduler or, in distributed mode, by
    dispatchers and workers; whichever ticked last is the one in charge.
    With none, the first name is returned with None.
    """
    present = [(name, row) for name, row in rows.items() if row is not None]
    if not present:
        return next(iter(rows)), None
    return max(present, key=lambda item: item[1]["last_tick_at"])


def assess(
    service: Mapping[str, Any] | None,
    sources: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    max_silence: float = 60.0,
    stale: float = 3.0,
    name: str = "scheduler",
) -> Health:
    """Judge the service `name` at `now`; `stale=0` skips the per-source check."""
    problems: list[str] = []
    if service is None:
        line = "no scheduler (nor dispatcher) has ever run against this database"
        problems.append(line)
    elif service.get("stopped_at"):
        stopped = service["stopped_at"]
        line = f"the {name} ({service['owner']}) stopped at {stopped:%Y-%m-%d %H:%M:%S} UTC"
        problems.append(line)
    else:
        silence = (now - service["last_tick_at"]).total_seconds()
        line = f"the {name} ({service['owner']}) last ticked {silence:.0f}s ago"
        if silence > max_silence:
            problems.append(f"{line}, more than the {max_silence:g}s allowed")
        if service.get("config_error"):
            first = str(service["config_error"]).splitlines()[0]
            problems.append(
                f"sources.yaml was edited and refused (running the last good one): {first}"
            )
    stale_keys: list[str] = []
    if stale > 0:
        for row in sources:
            if not row["enabled"] or not row["in_config"] or row.get("disabled_reason"):
                continue
            interval = row.get("every_seconds") or CRON_INTERVAL
            allowed = stale * interval + (row.get("backoff_seconds") or 0.0) + max_silence
            since = row.get("last_success_at") or row["created_at"]
            waited = (now - since).total_seconds()
            if waited > allowed:
                stale_keys.append(row["key"])
                problems.append(
                    f"source {row['key']} has had no successful poll for {waited / 60:.0f} min "
                    f"(allowed {allowed / 60:.0f}); last error: {row.get('last_error') or 'none'}"
                )
    return Health(not problems, tuple(problems), line, tuple(stale_keys), name)
