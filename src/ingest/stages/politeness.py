"""Host-wide politeness rules: which answers cool a whole host down, and the spacing per host.

Pure.  `host_of` names the server a URL talks to (lower-case host, and a
port other than the default): the unit that cool-downs and spacing apply
to.  `cooldown_of` says whether a finished poll starts a host-wide
cool-down (HTTP 429, with its Retry-After or a minute; a 503 with
Retry-After) and until when.  `host_outcome` says what a poll tells of its
host's health (a server-side or transport failure, an answer, or nothing),
and `failure_cooldown` how long a host whose polls failed that many times
in a row cools down (`settings: host_failures`, `host_failure_cooldown`,
doubling with each cool-down in a row, at most an hour).  `cooled_report`
and `cooled_next` are the report and the next poll of a source that was
not polled because its host is cooling down (error kind `cooldown`, due
when the cool-down ends, its failure count untouched).  `delay_for` is the
least time between two requests to one host (`settings: per_host_delay`
and `host_delays`), and `slot_after` where the next request to a host may
go once one has been given a slot.  It does no I/O: the store keeps the
cool-downs, the failure counts and the request slots (`store/hosts.py`),
the pipeline consults them, fetch.py waits out the spacing.
"""

from __future__ import annotations

import functools
import random
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from ingest.model import FailureRule, NextPoll, PollRecord, Settings, SourceReport

__all__ = [
    "DEFAULT_COOLDOWN",
    "MAX_FAILURE_COOLDOWN",
    "cooldown_of",
    "cooldown_seconds",
    "cooled_next",
    "cooled_report",
    "delay_for",
    "failure_cooldown",
    "failure_reason",
    "failure_rule",
    "host_of",
    "host_outcome",
    "record_host",
    "slot_after",
]

DEFAULT_COOLDOWN: Final = 60.0  # seconds a 429 without Retry-After cools its host
_MAX_COOLDOWN: Final = 86400.0  # a day at most, whatever Retry-After says
MAX_FAILURE_COOLDOWN: Final = 3600.0  # failed polls cool a host for an hour at most
_TRANSPORT_FAILURES: Final = frozenset({"timeout", "network", "blocked"})
_ANSWERED: Final = frozenset({"http", "parse", "too_large"})  # the server did answer
_SPREAD: Final = 5.0  # seconds over which a cooled host's sources come back


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=4096)  # a pure function, asked several times per poll of a URL
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
    host = record_host(record)
    if not host:
        return None
    until = record.started_at + timedelta(seconds=seconds)
    return host, until, f"HTTP {report.status} from {record.source.key}"


def record_host(record: PollRecord) -> str:
    """The server `record`'s poll asked (its `host`, else its source URL's)."""
    return record.host or host_of(record.source.url)


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


def failure_rule(settings: Settings) -> FailureRule:
    """The rule by which failed polls cool a host down, from `settings`."""
    return FailureRule(settings.host_failures, settings.host_failure_cooldown)


def host_outcome(record: PollRecord) -> bool | None:
    """What this poll says of its host: True, a failure on the server's side or on the
    way (a 5xx, a timeout, a connection that failed, a bot challenge: `blocked`); False,
    the server answered (a feed, a 304, a 404, a page that is not a feed), which ends a
    run of failures; None, nothing (no request was made: a curated source, a poll held
    back by a cool-down, an address the guard refused; a 429, which cools the host by
    itself; a fault of ingest's own)."""
    report = record.report
    if record.source.kind == "curated":
        return None
    if report.ok:
        return False
    kind = report.error_kind
    if kind in _TRANSPORT_FAILURES:
        return True
    if kind not in _ANSWERED or report.status == 429:
        return None
    return report.status is not None and report.status >= 500


def failure_reason(record: PollRecord, failures: int) -> str:
    """Why a host cools down after `failures` failed polls in a row, the last `record`."""
    report = record.report
    what = f"HTTP {report.status}" if report.status else (report.error_kind or "failure")
    return f"{failures} failed polls in a row, the last {what} from {record.source.key}"


def failure_cooldown(rule: FailureRule, failures: int, strikes: int) -> float | None:
    """Seconds a host cools down when `failures` polls in a row have failed (None: not
    yet, or `rule.after` is 0): `rule.cooldown`, doubled for each of the `strikes`
    cool-downs that came before it with no success between, at most an hour."""
    if rule.after <= 0 or failures < rule.after:
        return None
    return min(rule.cooldown * 2.0 ** min(strikes, 32), max(MAX_FAILURE_COOLDOWN, rule.cooldown))


def slot_after(taken: datetime | None, now: datetime, delay: float) -> tuple[datetime, datetime]:
    """(when this request may go, when the one after it may): the host's slot `taken` by
    the last request given one, or now if that has passed, and `delay` after it."""
    slot = now if taken is None or taken < now else taken
    return slot, slot + timedelta(seconds=delay)
