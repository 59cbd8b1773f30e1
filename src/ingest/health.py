"""Is the service healthy? A pure judgement over the heartbeat and the sources' state.

`assess` takes the `services` row the scheduler keeps fresh and the
`sources` rows, and says what is wrong: the scheduler never ran, stopped, or
has not ticked for longer than allowed; or enabled sources have gone without
a successful poll for more than `stale` times their interval (after their
backoff).  `ingest health` prints the result and exits non-zero on any
problem, for cron, systemd or Kubernetes probes.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["CRON_INTERVAL", "Health", "assess"]

CRON_INTERVAL = 86400.0  # a cron source is expected to succeed at least daily


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    problems: tuple[str, ...]
    scheduler: str  # one line about the scheduler
    stale: tuple[str, ...] = ()  # keys of stale sources


def assess(
    service: Mapping[str, Any] | None,
    sources: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    max_silence: float = 60.0,
    stale: float = 3.0,
) -> Health:
    """Judge the service at `now`; `stale=0` skips the per-source check."""
    problems: list[str] = []
    if service is None:
        line = "no scheduler has ever run against this database"
        problems.append(line)
    elif service.get("stopped_at"):
        stopped = service["stopped_at"]
        line = f"the scheduler ({service['owner']}) stopped at {stopped:%Y-%m-%d %H:%M:%S} UTC"
        problems.append(line)
    else:
        silence = (now - service["last_tick_at"]).total_seconds()
        line = f"the scheduler ({service['owner']}) last ticked {silence:.0f}s ago"
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
    return Health(not problems, tuple(problems), line, tuple(stale_keys))
