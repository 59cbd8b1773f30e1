"""policy.plan_next / base_interval: when a source is polled next (pure, table-driven).

Every case passes fixed datetimes and an injected ``random.Random(seed)``; with
``Settings(jitter=0)`` the expected waits are exact, with the default jitter they are
checked against the ±fraction bounds over many seeds.  Nothing here touches a clock,
a database or the network.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingest.model import NextPoll, Settings, Source, SourceReport
from ingest.stages.policy import MAX_RETRY_AFTER, base_interval, plan_next

NOW = datetime(2026, 6, 1, 8, 0, 30, tzinfo=UTC)  # a Monday, half a minute past the hour
SRC = Source(key="s", name="S", url="http://127.0.0.1:1/s.xml", every=1800.0)
FLAT = Settings(jitter=0.0)
DEFAULT = Settings()
SEEDS = range(200)
HOUR = 3600.0
DAY = 86400.0


def ok(**kw: object) -> SourceReport:
    return replace(SourceReport(source_key="s", ok=True, status=200), **kw)  # type: ignore[arg-type]


def fail(status: int | None = 500, **kw: object) -> SourceReport:
    base = SourceReport(source_key="s", ok=False, status=status, error=f"HTTP {status}")
    return replace(base, **kw)  # type: ignore[arg-type]


def plan(
    report: SourceReport,
    *,
    source: Source = SRC,
    failures: int = 0,
    settings: Settings = FLAT,
    seed: int = 0,
    now: datetime = NOW,
) -> NextPoll:
    return plan_next(
        source, report, now=now, failures=failures, settings=settings, rng=random.Random(seed)
    )


def wait(nxt: NextPoll, now: datetime = NOW) -> float:
    return (nxt.due_at - now).total_seconds()


# -- success: back to the interval ----------------------------------------------------


@pytest.mark.parametrize("every", [60.0, 1800.0, HOUR, DAY])
def test_success_without_jitter_is_exactly_the_interval(every: float) -> None:
    nxt = plan(ok(), source=replace(SRC, every=every))
    # no backoff, no retry, not disabled; the interval is reported (for the metrics)
    assert nxt == NextPoll(NOW + timedelta(seconds=every), interval=every)


@pytest.mark.parametrize(("every", "jitter"), [(1800.0, 0.1), (HOUR, 0.25), (600.0, 0.05)])
def test_success_with_jitter_stays_within_the_fraction_and_varies(
    every: float, jitter: float
) -> None:
    settings = Settings(jitter=jitter)
    waits = [wait(plan(ok(), source=replace(SRC, every=every), settings=settings, seed=s))
             for s in SEEDS]  # fmt: skip
    assert all(every * (1 - jitter) <= w <= every * (1 + jitter) for w in waits)
    # it really is jitter, both ways, not a constant offset
    assert min(waits) < every * (1 - jitter / 2) and max(waits) > every * (1 + jitter / 2)


def test_success_after_failures_returns_to_the_interval() -> None:
    failing = plan(fail(), failures=5)
    assert wait(failing) > SRC.every and failing.backoff > 0
    recovered = plan(ok(), failures=0)
    assert wait(recovered) == SRC.every and recovered.backoff == 0.0


def test_the_injected_rng_decides_the_jitter() -> None:
    a = plan(ok(), settings=DEFAULT, seed=42)
    b = plan(ok(), settings=DEFAULT, seed=42)
    c = plan(ok(), settings=DEFAULT, seed=43)
    assert a == b and a != c


# -- Cache-Control: max-age is a lower bound -------------------------------------------


@pytest.mark.parametrize(
    ("every", "max_age", "expected"),
    [
        (1800.0, 7200.0, 7200.0),  # longer than the interval: wins
        (1800.0, 600.0, 1800.0),  # shorter: the interval stays
        (1800.0, 1800.0, 1800.0),
        (1800.0, 0.0, 1800.0),
        (1800.0, None, 1800.0),
        (60.0, DAY, DAY),
    ],
)
def test_max_age_is_a_lower_bound_on_the_wait(
    every: float, max_age: float | None, expected: float
) -> None:
    nxt = plan(ok(max_age=max_age), source=replace(SRC, every=every))
    assert wait(nxt) == expected and nxt.backoff == 0.0


def test_max_age_is_ignored_when_settings_say_so() -> None:
    settings = Settings(jitter=0.0, respect_max_age=False)
    assert wait(plan(ok(max_age=7200.0), settings=settings)) == SRC.every


# -- failures: exponential backoff, capped --------------------------------------------------

BACKOFF_TABLE = [
    # (failures, wait) for every=600 and backoff_max=6h: 600 * 2**failures, capped at 21600
    (1, 1200.0),
    (2, 2400.0),
    (3, 4800.0),
    (4, 9600.0),
    (5, 19200.0),
    (6, 21600.0),
    (7, 21600.0),
    (40, 21600.0),
    (10_000, 21600.0),  # no overflow however long it has been failing
]


@pytest.mark.parametrize(("failures", "expected"), BACKOFF_TABLE)
def test_failures_double_the_wait_up_to_backoff_max(failures: int, expected: float) -> None:
    source = replace(SRC, every=600.0)
    nxt = plan(fail(), source=source, failures=failures, settings=Settings(jitter=0.0))
    assert wait(nxt) == expected
    assert nxt.backoff == expected - 600.0  # the wait beyond the interval
    assert nxt.disabled_reason is None and nxt.retry_after_until is None


def test_each_further_failure_doubles_the_wait_until_the_cap() -> None:
    source = replace(SRC, every=300.0)
    settings = Settings(jitter=0.0, backoff_max=4 * HOUR)
    waits = [wait(plan(fail(), source=source, failures=n, settings=settings)) for n in range(1, 12)]
    assert waits[0] > source.every
    for before, after in itertools.pairwise(waits):
        assert after == min(2 * before, settings.backoff_max)
    assert waits[-1] == settings.backoff_max


@pytest.mark.parametrize("failures", [1, 2, 3, 8, 30])
def test_backoff_never_waits_less_than_an_interval_longer_than_backoff_max(failures: int) -> None:
    source = replace(SRC, every=DAY)
    nxt = plan(fail(), source=source, failures=failures, settings=Settings(jitter=0.0,
               backoff_max=HOUR))  # fmt: skip
    assert wait(nxt) == DAY and nxt.backoff == 0.0


@pytest.mark.parametrize("failures", [1, 3, 6, 20])
def test_backoff_with_jitter_stays_near_the_doubled_wait(failures: int) -> None:
    source = replace(SRC, every=600.0)
    target = min(600.0 * 2**failures, DEFAULT.backoff_max)
    spread = 600.0 * DEFAULT.jitter
    for seed in SEEDS:
        nxt = plan(fail(), source=source, failures=failures, settings=DEFAULT, seed=seed)
        assert target - spread <= wait(nxt) <= target + spread
        assert nxt.backoff == pytest.approx(wait(nxt) - 600.0)


# -- Retry-After ------------------------------------------------------------------------------

RETRY_TABLE = [
    # (report, failures, due after NOW, retry_after_until after NOW or None)
    pytest.param(fail(503, retry_after=7200.0), 1, 7200.0, 7200.0, id="fail-longer-than-backoff"),
    pytest.param(fail(503, retry_after=60.0), 1, 3600.0, 60.0, id="fail-shorter-than-backoff"),
    pytest.param(
        fail(429, retry_after=30 * DAY),
        1,
        MAX_RETRY_AFTER,
        MAX_RETRY_AFTER,
        id="fail-capped-at-a-week",
    ),
    pytest.param(fail(503), 1, 3600.0, None, id="fail-without-retry-after"),
    pytest.param(ok(retry_after=7200.0), 0, 7200.0, 7200.0, id="ok-longer-than-interval"),
    pytest.param(ok(retry_after=60.0), 0, 1800.0, 60.0, id="ok-shorter-than-interval"),
    pytest.param(
        ok(retry_after=30 * DAY), 0, MAX_RETRY_AFTER, MAX_RETRY_AFTER, id="ok-capped-at-a-week"
    ),
    pytest.param(
        ok(retry_after=7200.0, max_age=3 * HOUR),
        0,
        3 * HOUR,
        7200.0,
        id="ok-max-age-longer-than-retry-after",
    ),
]


@pytest.mark.parametrize(("report", "failures", "due", "until"), RETRY_TABLE)
def test_retry_after_pushes_the_next_poll_and_is_remembered(
    report: SourceReport, failures: int, due: float, until: float | None
) -> None:
    nxt = plan(report, failures=failures)
    assert wait(nxt) == due
    expected_until = None if until is None else NOW + timedelta(seconds=until)
    assert nxt.retry_after_until == expected_until


@pytest.mark.parametrize("report", [fail(503, retry_after=4000.0), ok(retry_after=4000.0)])
def test_retry_after_holds_whatever_the_jitter(report: SourceReport) -> None:
    failures = 0 if report.ok else 1
    for seed in SEEDS:
        nxt = plan(report, failures=failures, settings=DEFAULT, seed=seed)
        assert nxt.retry_after_until == NOW + timedelta(seconds=4000.0)
        assert nxt.due_at >= nxt.retry_after_until


def test_max_retry_after_is_a_week() -> None:
    assert MAX_RETRY_AFTER == 7 * DAY


# -- 410 Gone disables ---------------------------------------------------------------------------


def test_410_disables_the_source_with_a_reason() -> None:
    nxt = plan(fail(410), failures=1)
    assert nxt.disabled_reason is not None and "410" in nxt.disabled_reason
    assert wait(nxt) > 365 * DAY  # not polled again in any sensible horizon


@pytest.mark.parametrize("status", [None, 403, 404, 429, 500, 502, 503])
def test_other_failures_do_not_disable(status: int | None) -> None:
    nxt = plan(fail(status), failures=2)
    assert nxt.disabled_reason is None and wait(nxt) == 4 * SRC.every


def test_success_never_disables() -> None:
    assert plan(ok(status=200)).disabled_reason is None


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A UTC time in June 2026 (the 1st is a Monday)."""
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


# -- cron sources ----------------------------------------------------------------------------


CRON_TABLE = [
    # (cron, now, next fire time)
    ("0 * * * *", NOW, at(1, 9)),
    ("*/15 * * * *", at(1, 8, 7), at(1, 8, 15)),
    ("30 6 * * *", NOW, at(2, 6, 30)),
    ("0 9 * * 1", NOW, at(1, 9)),  # Mondays, and NOW is one
    ("0 9 * * 2", NOW, at(2, 9)),
    # polled exactly on a fire time: the next one is the *following* fire time
    ("0 * * * *", at(1, 8), at(1, 9)),
    ("*/5 * * * *", at(1, 8, 5), at(1, 8, 10)),
    # crontab weekdays: 0 and 7 are Sunday, 1-5 Monday to Friday (docs/sources.md's example)
    ("0 7 * * 1-5", at(5, 8), at(8, 7)),
    ("0 7 * * 1-5", at(5, 6), at(5, 7)),
    ("0 7 * * 1-5", at(6, 8), at(8, 7)),
    ("0 9 * * 0", NOW, at(7, 9)),
    ("0 9 * * 6,0", NOW, at(6, 9)),
    ("0 9 * * 5-6", NOW, at(5, 9)),
    ("0 9 * * */2", NOW, at(2, 9)),  # Sun, Tue, Thu, Sat
    ("0 9 * * sun", NOW, at(7, 9)),
    ("0 9 * * mon-fri", at(6, 8), at(8, 9)),
]


@pytest.mark.parametrize(("cron", "now", "fire"), CRON_TABLE)
def test_cron_next_due_is_the_next_fire_time(cron: str, now: datetime, fire: datetime) -> None:
    source = replace(SRC, cron=cron, every=1800.0)  # `every` is ignored when cron is set
    assert base_interval(source, now) == (fire - now).total_seconds()
    nxt = plan(ok(), source=source, now=now)
    assert nxt.due_at == fire and nxt.backoff == 0.0


@pytest.mark.parametrize(("cron", "now", "fire"), CRON_TABLE)
def test_cron_jitter_is_late_only_and_at_most_a_minute(
    cron: str, now: datetime, fire: datetime
) -> None:
    source = replace(SRC, cron=cron)
    lates = [(plan(ok(), source=source, now=now, settings=DEFAULT, seed=s).due_at - fire)
             .total_seconds() for s in SEEDS]  # fmt: skip
    assert all(0.0 <= late <= 60.0 for late in lates)
    assert len({round(late, 3) for late in lates}) > 100  # spread, not one fixed delay


def test_base_interval_of_an_every_source_is_every() -> None:
    assert base_interval(replace(SRC, every=900.0), NOW) == 900.0
    assert base_interval(replace(SRC, every=DAY), NOW + timedelta(seconds=17)) == DAY


# -- many sources with one interval spread out -----------------------------------------------


@pytest.mark.parametrize(("every", "min_distinct"), [(1800.0, 300), (6 * HOUR, 500)])
def test_a_thousand_sources_with_one_interval_spread_out(every: float, min_distinct: int) -> None:
    rng = random.Random(2026)
    source = replace(SRC, every=every)
    dues = [
        plan_next(replace(source, key=f"s{i}"), ok(), now=NOW, failures=0, settings=DEFAULT,
                  rng=rng).due_at
        for i in range(1000)
    ]  # fmt: skip
    waits = [(d - NOW).total_seconds() for d in dues]
    spread = every * DEFAULT.jitter
    assert all(every - spread <= w <= every + spread for w in waits)
    assert len({int(d.timestamp()) for d in dues}) >= min_distinct
    assert max(waits) - min(waits) >= 1.8 * spread  # the whole window is used
    assert abs(sum(waits) / len(waits) - every) < spread / 5  # centred on the interval
