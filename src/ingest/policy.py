"""When to poll a source next, given how its last poll went (pure).

The rules of an unattended, polite poller: a source is polled at its `every`
interval or `cron` times, each wait stretched or shrunk by a little random
jitter so that many sources with one interval spread out; a server's
`Cache-Control: max-age` is a lower bound on the wait; a failing source
backs off exponentially (doubling per consecutive failure, capped at
`Settings.backoff_max`) and returns to its interval on the first success
(`Settings.respect_max_age` false turns the max-age floor off);
`Retry-After` is obeyed; `410 Gone` disables the source.  It takes values
and a random source and returns a `NextPoll`; it never reads a clock,
a database or the network.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.model import NextPoll, Settings, Source, SourceReport

__all__ = ["MAX_RETRY_AFTER", "base_interval", "cron_trigger", "plan_next"]

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


def base_interval(source: Source, after: datetime) -> float:
    """Seconds from `after` to the source's next regular poll (every or cron)."""
    if source.cron:
        trigger = cron_trigger(source.cron)
        # strictly after `after`: a poll made on a fire time is due at the next one
        fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        if fire is not None:
            return max(1.0, float((fire - after).total_seconds()))
    return source.every


def plan_next(
    source: Source,
    report: SourceReport,
    *,
    now: datetime,
    failures: int,
    settings: Settings,
    rng: random.Random | None = None,
) -> NextPoll:
    """The next poll of `source` after `report`, at `now`.

    `failures` counts consecutive failures including this poll (0 after a
    success).
    """
    rng = rng or random.Random()
    interval = base_interval(source, now)
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
        return NextPoll(due, retry_until)

    if report.status == 410:
        reason = f"gone: the server answered HTTP 410 at {now:%Y-%m-%d %H:%M} UTC"
        return NextPoll(now + timedelta(days=3650), retry_until, disabled_reason=reason)

    cap = max(settings.backoff_max, interval)
    wait = min(interval * 2.0 ** min(failures, 30), cap)
    due = now + timedelta(seconds=max(1.0, wait + jitter))
    if retry_until is not None and retry_until > due:
        due = retry_until
    backoff = max(0.0, (due - now).total_seconds() - interval)
    return NextPoll(due, retry_until, backoff=backoff)
