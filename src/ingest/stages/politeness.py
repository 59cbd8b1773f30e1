"""Host-wide politeness rules: which answers cool a whole host down, and the spacing per host.

Pure.  `host_of` names the server a URL talks to (lower-case host, and a
port other than the default): the unit that cool-downs and spacing apply
to.  `cooldown_of` says whether a finished poll starts a host-wide
cool-down (HTTP 429, with its Retry-After or a minute; a 503 with
Retry-After) and until when; `cooled_report` and `cooled_next` are the
report and the next poll of a source that was not polled because its host
is cooling down (error kind `cooldown`, due when the cool-down ends, its
failure count untouched).  `delay_for` is the least time between two
requests to one host (`settings: per_host_delay` and `host_delays`).  It
does no I/O: the store keeps the cool-downs (`store/hosts.py`), the
pipeline consults them, fetch.py waits out the spacing.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from ingest.model import NextPoll, PollRecord, Settings, SourceReport

__all__ = [
    "DEFAULT_COOLDOWN",
    "cooldown_of",
    "cooldown_seconds",
    "cooled_next",
    "cooled_report",
    "delay_for",
    "host_of",
]

DEFAULT_COOLDOWN: Final = 60.0  # seconds a 429 without Retry-After cools its host
_MAX_COOLDOWN: Final = 86400.0  # a day at most, whatever Retry-After says
_SPREAD: Final = 5.0  # seconds over which a cooled host's sources come back


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The server `url` talks to: its host name, lower-case without a trailing dot, with
    `:port` when the URL names a port other than its scheme's default (as aiohttp's
    per-host connection limit counts servers)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def cooldown_of(record: PollRecord) -> tuple[str, datetime, str] | None:
    """(host, until, reason) when this poll's answer cools its whole host down, else None.

    A 429 (Too Many Requests, also a bot challenge sent with 429) cools the
    host for its Retry-After, else for `DEFAULT_COOLDOWN`; a 503 only when
    it says Retry-After (a plain 503 is one source's outage).  At most a day.
    """
    report = record.report
    seconds = None if report.ok else cooldown_seconds(report.status, report.retry_after)
    if seconds is None:
        return None
    host = host_of(record.fetched.url if record.fetched is not None else record.source.url)
    if not host:
        return None
    until = record.started_at + timedelta(seconds=seconds)
    return host, until, f"HTTP {report.status} from {record.source.key}"


def cooldown_seconds(status: int | None, retry_after: float | None) -> float | None:
    """How long an answer of `status` (with its Retry-After) cools its host, or None."""
    if status == 429 or (status == 503 and retry_after):
        return min(retry_after or DEFAULT_COOLDOWN, _MAX_COOLDOWN)
    return None


def cooled_report(
    source_key: str, host: str, until: datetime, reason: str, now: datetime
) -> SourceReport:
    """The report of a poll not made: its host is cooling down until `until`."""
    return SourceReport(
        source_key=source_key,
        ok=False,
        error=f"not polled: {host} is cooling down until {until:%Y-%m-%d %H:%M:%S} UTC ({reason})",
        error_kind="cooldown",
        retry_after=max(0.0, (until - now).total_seconds()),
    )


def cooled_next(until: datetime, rng: random.Random) -> NextPoll:
    """Due just after the cool-down ends, spread over a few seconds so that a host's
    sources do not all come back at once (its failure count is left as it was)."""
    due = until + timedelta(seconds=rng.uniform(0.0, _SPREAD))
    return NextPoll(due, until)


def delay_for(settings: Settings, host: str) -> float:
    """Least seconds between two requests to `host`: its own `host_delays` entry (the host
    or a parent domain, the longest match), else `per_host_delay`."""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # the name, not the port
    best: tuple[int, float] | None = None
    for name, seconds in settings.host_delays:
        matches = host == name or host.endswith("." + name)
        if matches and (best is None or len(name) > best[0]):
            best = (len(name), seconds)
    return settings.per_host_delay if best is None else best[1]
