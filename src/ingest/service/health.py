"""Is the service healthy? A pure judgement over the heartbeat and the sources' state.

`assess` takes the `services` row the scheduler (or, in distributed mode,
the dispatcher) keeps fresh and the `sources` rows, and says what is wrong:
no such service ever ran, it stopped, or it has not ticked for longer than
allowed; or enabled sources have gone without a successful poll for more
than `stale` times their interval (after their backoff).  `pick_service`
says which heartbeat to judge when both kinds exist: the freshest.
In distributed mode the workers are judged too (each leaves its own
heartbeat row, `worker@host:pid:...`): a worker silent for longer than
allowed is named as stale, and a dispatcher with no live worker is a
problem (its jobs wait).  `process_states` says, for every heartbeat row,
whether it is alive, stale or stopped (for `/metrics` as for health).
`ingest health` prints the result and exits non-zero on any problem, for
cron, systemd or Kubernetes probes.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "CRON_INTERVAL",
    "WORKER_FORGET",
    "WORKER_PREFIX",
    "Health",
    "ProcessState",
    "assess",
    "gone_workers",
    "pick_service",
    "process_states",
]

CRON_INTERVAL = 86400.0  # a cron source is expected to succeed at least daily
WORKER_FORGET = 86400.0  # a worker silent this long is gone for good: forgotten, not judged
WORKER_PREFIX = "worker@"  # a worker's heartbeat row is named by its owner id (leases.make_owner)


@dataclass(frozen=True, slots=True)
class ProcessState:
    """One heartbeat row judged: `state` is alive, stale or stopped."""

    name: str  # scheduler, dispatcher, or worker@host:pid:...
    role: str  # scheduler, dispatcher, worker
    state: str
    silence: float  # seconds since its last beat
    last_tick_at: datetime


def process_states(
    rows: Sequence[Mapping[str, Any]], now: datetime, max_silence: float
) -> list[ProcessState]:
    """Every heartbeat row (but workers silent past `WORKER_FORGET`), judged at `now`."""
    out = []
    for row in rows:
        name = str(row["name"])
        role = "worker" if name.startswith(WORKER_PREFIX) else name
        silence = (now - row["last_tick_at"]).total_seconds()
        if role == "worker" and silence > WORKER_FORGET:
            continue
        if row.get("stopped_at"):
            state = "stopped"
        elif silence > max_silence:
            state = "stale"
        else:
            state = "alive"
        out.append(ProcessState(name, role, state, silence, row["last_tick_at"]))
    return out


def gone_workers(
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    silent: float,
    is_dead: Callable[[str], bool] | None = None,
) -> list[str]:
    """The names of the workers' heartbeat rows silent for `silent` seconds at `now`, and,
    with `is_dead` (`leases.owner_is_dead`), of any whose process it says is gone."""
    cutoff = now - timedelta(seconds=silent)
    return [
        str(r["name"]) for r in rows
        if str(r["name"]).startswith(WORKER_PREFIX)
        and (r["last_tick_at"] < cutoff or (is_dead is not None and is_dead(str(r["name"]))))
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    problems: tuple[str, ...]
    scheduler: str  # one line about the service (the scheduler or the dispatcher)
    stale: tuple[str, ...] = ()  # keys of stale sources
    service: str = "scheduler"  # which heartbeat was judged
    stale_processes: tuple[str, ...] = ()  # the judged service and workers that went silent
    workers: tuple[ProcessState, ...] = ()  # distributed mode: each worker, judged


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
    workers: Sequence[Mapping[str, Any]] | None = None,
) -> Health:
    """Judge the service `name` at `now`; `stale=0` skips the per-source check.

    With the dispatcher judged and `workers` given (their heartbeat rows, maybe
    none), the workers are judged too: each stale one, and none alive, is a problem.
    """
    problems: list[str] = []
    stale_processes: list[str] = []
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
            stale_processes.append(name)
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
            interval = (
                row.get("poll_interval_seconds") or row.get("every_seconds") or CRON_INTERVAL
            )  # every: auto: the interval its cadence gives now
            allowed = stale * interval + (row.get("backoff_seconds") or 0.0) + max_silence
            since = row.get("last_success_at") or row["created_at"]
            waited = (now - since).total_seconds()
            if waited > allowed:
                stale_keys.append(row["key"])
                problems.append(
                    f"source {row['key']} has had no successful poll for {waited / 60:.0f} min "
                    f"(allowed {allowed / 60:.0f}); last error: {row.get('last_error') or 'none'}"
                )
    distributed = name == "dispatcher" and workers is not None
    judged = process_states(workers or (), now, max_silence) if distributed else []
    if distributed and service is not None and not service.get("stopped_at"):
        for w in judged:
            if w.state == "stale":
                stale_processes.append(w.name)
                problems.append(
                    f"the worker {w.name} last beat {w.silence:.0f}s ago, more than the "
                    f"{max_silence:g}s allowed (its jobs are retried elsewhere)"
                )
        if not any(w.state == "alive" for w in judged):
            problems.append(
                f"no worker has left a heartbeat in the last {max_silence:g}s: "
                "the dispatcher's jobs are waiting (start `ingest worker`)"
            )
    return Health(
        not problems, tuple(problems), line, tuple(stale_keys), name, tuple(stale_processes),
        tuple(judged),
    )  # fmt: skip
