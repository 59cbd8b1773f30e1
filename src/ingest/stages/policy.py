"""When to poll a source next, given how its last poll went (pure).

The rules of an unattended, polite poller: a source is polled at its `every`
interval or `cron` times, each wait stretched or shrunk by a little random
jitter so that many sources with one interval spread out; a server's
`Cache-Control: max-age` is a lower bound on the wait; a failing source
backs off exponentially (doubling per consecutive failure, capped at
`Settings.backoff_max`) and returns to its interval on the first success
(`Settings.respect_max_age` false turns the max-age floor off);
`Retry-After` is obeyed; `410 Gone` disables the source.  A source with
`every: auto` gets its interval from the cadence of its entries
(`adaptive_interval`, from the `Arrivals` the caller read), and every rule
above applies to that interval as to a fixed one.  A source a WebSub hub
pushes is polled only as a safety net, every `push_every` (6 hours by
default) unless its own interval is longer.  It takes values and a
random source and returns a `NextPoll`; it never reads a clock, a database
or the network.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.model import Arrivals, NextPoll, Settings, Source, SourceReport

__all__ = [
    "HALF_LIVES",
    "MAX_RETRY_AFTER",
    "WINDOW",
    "adaptive_interval",
    "arrivals_after_poll",
    "base_interval",
    "cadence_window",
    "cron_trigger",
    "plan_next",
    "polled_every",
]

MAX_RETRY_AFTER = 7 * 86400.0  # a Retry-After longer than a week is read as a week
_CRON_JITTER_MAX = 60.0  # cron times are meant to be kept: at most a minute late


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as names, which APScheduler 3 reads as crontab does.

    APScheduler 3 numbers weekdays from 0 = Monday, crontab from 0 (or 7) = Sunday,
    so "1-5" (weekdays in crontab) would be Tuesday to Saturday there.  A field
    this cannot read is passed on unchanged.
    """
    if field == "*":
        return field

    def day(token: str) -> int:
        return int(token) if token.isdigit() else _WEEKDAYS.index(token[:3])

    days: set[int] = set()
    try:
        for part in field.lower().split(","):
            span, _, step = part.partition("/")
            first, _, last = span.partition("-")
            if span == "*":
                lo, hi = 0, 6
            else:
                lo = day(first)
                hi = day(last) if last else (7 if step else lo)
            if not 0 <= lo <= hi <= 7:
                return field
            days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    except ValueError:
        return field
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def cron_trigger(expression: str) -> Any:
    """An APScheduler CronTrigger (UTC) for a five-field crontab expression.

    Raises ValueError for an expression that is not five valid fields.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields, not {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month,
        day_of_week=_crontab_weekdays(weekday), timezone=UTC,
    )  # fmt: skip


# -- every: auto ----------------------------------------------------------------------
#
# The rate of new entries is estimated with exponentially decaying weights at
# several half-lives, each a multiple of the source's `max_every` (with the
# default of a day: an hour, six hours, a day and a week), over a window of
# WINDOW times `max_every` (four weeks).  The estimate at each half-life is
# the decayed count of arrivals divided by the decayed time the source was
# watched (at least one half-life, so that one story does not read as a
# torrent); the fastest of them wins, so a source that wakes up is polled
# faster within hours while a long quiet stretch slows it down only as the
# evidence of the weeks before fades.  The interval is one expected entry per
# poll (Miniflux's rule), within [min_every, max_every].  Scaling with
# `max_every` keeps the rule the same at any time scale (the freshness
# benchmark runs it sixty times faster).

HALF_LIVES = (1 / 24, 1 / 4, 1.0, 7.0)  # times max_every
WINDOW = 28.0  # times max_every: arrivals older than this are forgotten


def cadence_window(source: Source) -> float:
    """Seconds of arrivals `adaptive_interval` reads for `source` (older ones weigh nothing)."""
    return WINDOW * source.max_every


def adaptive_interval(
    arrivals: Arrivals, now: datetime, *, min_every: float, max_every: float
) -> float:
    """Seconds between polls of an `every: auto` source, from when its entries arrived.

    Never below `min_every` nor above `max_every`; `max_every` when nothing has
    arrived in the window.  As `now` advances with no new arrival the result
    never decreases, and a new arrival never increases it.
    """
    window = WINDOW * max_every
    known = [max(0.0, (now - t).total_seconds()) for t in arrivals.times]
    ages = [a for a in known if a <= window]
    if not ages:
        return max_every
    if arrivals.since is not None:
        known.append((now - arrivals.since).total_seconds())
    watched = min(max(known), window)  # how long the source has been watched
    rate = 0.0  # new entries per second
    for share in HALF_LIVES:
        half_life = share * max_every
        k = math.log(2) / half_life
        count = math.fsum(math.exp(-k * a) for a in ages)
        exposure = -math.expm1(-k * max(watched, half_life)) / k  # the decayed time watched
        rate = max(rate, count / exposure)
    return min(max(1.0 / rate, min_every), max_every)


def arrivals_after_poll(
    before: Arrivals, published: Iterable[datetime], now: datetime, window: float
) -> Arrivals:
    """`before` (read before a poll) plus the entries of the poll at `now` that are new.

    An entry counts as new when its arrival (its date, or `now` for a date in
    the future) is later than the newest arrival known before; on a source's
    first poll every entry counts, so its back catalogue gives the cadence at
    once.  Arrivals older than `window` seconds are dropped.
    """
    last = before.times[-1] if before.times else before.since
    fresh = sorted(min(t, now) for t in published if last is None or min(t, now) > last)
    start = now - timedelta(seconds=window)
    times = tuple(t for t in (*before.times, *fresh) if t >= start)
    candidates = [t for t in (before.since, *fresh[:1]) if t is not None]
    return Arrivals(times, min(candidates) if candidates else None)


def base_interval(source: Source, after: datetime, arrivals: Arrivals | None = None) -> float:
    """Seconds from `after` to the source's next regular poll (auto, every or cron)."""
    if source.auto:
        return adaptive_interval(
            arrivals or Arrivals(), after, min_every=source.min_every, max_every=source.max_every
        )
    if source.cron:
        trigger = cron_trigger(source.cron)
        # strictly after `after`: a poll made on a fire time is due at the next one
        fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        if fire is not None:
            return max(1.0, float((fire - after).total_seconds()))
    return source.every


def polled_every(interval: float, pushed: bool, push_every: float) -> float:
    """The interval a source is polled at: its own, or for a source a WebSub hub pushes
    the safety net's, `push_every` (or its own, if longer)."""
    return max(interval, push_every) if pushed else interval


def plan_next(
    source: Source,
    report: SourceReport,
    *,
    now: datetime,
    failures: int,
    settings: Settings,
    rng: random.Random | None = None,
    arrivals: Arrivals | None = None,
    pushed: bool = False,
) -> NextPoll:
    """The next poll of `source` after `report`, at `now`.

    `failures` counts consecutive failures including this poll (0 after a
    success); `arrivals` (for `every: auto`) includes this poll's new entries;
    `pushed`: a WebSub hub pushes the source, which is then polled only as a
    safety net, every `settings.push_every` (or its own interval, if longer).
    """
    rng = rng or random.Random()
    interval = polled_every(base_interval(source, now, arrivals), pushed, settings.push_every)
    if source.cron:
        jitter = rng.uniform(0, min(_CRON_JITTER_MAX, interval * settings.jitter))
    else:
        jitter = interval * rng.uniform(-settings.jitter, settings.jitter)
    retry_until = None
    if report.retry_after:
        retry_until = now + timedelta(seconds=min(report.retry_after, MAX_RETRY_AFTER))

    if report.ok:
        floor = (report.max_age or 0.0) if settings.respect_max_age else 0.0
        wait = max(interval, floor) + jitter
        due = now + timedelta(seconds=max(1.0, wait))
        if retry_until is not None and retry_until > due:
            due = retry_until  # Retry-After is obeyed on a success too
        return NextPoll(due, retry_until, interval=interval)

    if report.status == 410:
        reason = f"gone: the server answered HTTP 410 at {now:%Y-%m-%d %H:%M} UTC"
        return NextPoll(
            now + timedelta(days=3650), retry_until, disabled_reason=reason, interval=interval
        )

    cap = max(settings.backoff_max, interval)
    wait = min(interval * 2.0 ** min(failures, 30), cap)
    due = now + timedelta(seconds=max(1.0, wait + jitter))
    if retry_until is not None and retry_until > due:
        due = retry_until
    backoff = max(0.0, (due - now).total_seconds() - interval)
    return NextPoll(due, retry_until, backoff=backoff, interval=interval)
