"""When to poll a source next, given how its last poll went (pure).

The rules of an unattended, polite poller: a source is polled at its `every`
interval or `cron` times, each wait stretched or shrunk by a little random
jitter so that many sources with one interval spread out; a server's
`Cache-Control: max-age` is a lower bound on the wait; a failing source
backs off exponentially (doubling per consecutive failure, capped at
`Settings.backoff_max`) and returns to its interval on the first success;
`Retry-After` is obeyed; `410 Gone` disables the source.  It takes values
and a random source and returns a `NextPoll`; it never reads a clock,
a database or the network.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from ingest.model import NextPoll, Settings, Source, SourceReport

__all__ = ["MAX_RETRY_AFTER", "base_interval", "plan_next"]

MAX_RETRY_AFTER = 7 * 86400.0  # a Retry-After longer than a week is read as a week
_CRON_JITTER_MAX = 60.0  # cron times are meant to be kept: at most a minute late


def base_interval(source: Source, after: datetime) -> float:
    """Seconds from `after` to the source's next regular poll (every or cron)."""
    if source.cron:
        from apscheduler.triggers.cron import CronTrigger

        fire = CronTrigger.from_crontab(source.cron, timezone=UTC).get_next_fire_time(None, after)
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
        wait = max(interval, report.max_age or 0.0) + jitter
        return NextPoll(now + timedelta(seconds=max(1.0, wait)), retry_until)

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
