"""policy.adaptive_interval and `every: auto` in plan_next: properties over random histories.

Hypothesis draws arrival histories (ages in seconds before a fixed `NOW`) and
bounds; the properties are the issue's: never outside [min_every, max_every],
never faster after a quiet period, quick to speed up when a source wakes up,
and Retry-After, Cache-Control and backoff applied on top as for a fixed
interval.  Pure: no clock, database or network.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.model import Arrivals, Settings, Source, SourceReport
from ingest.stages.policy import (
    HALF_LIVES,
    WINDOW,
    adaptive_interval,
    arrivals_after_poll,
    cadence_window,
    plan_next,
)

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
AUTO = Source(key="s", name="S", url="http://127.0.0.1:1/s.xml", auto=True)
FLAT = Settings(jitter=0.0)

# histories: up to 300 arrivals within 60 days, bounds from a minute to a week
ages = st.lists(st.floats(0, 60 * DAY, allow_nan=False), max_size=300)
lows = st.sampled_from([60.0, 300.0, 600.0, 1800.0, HOUR])
highs = st.sampled_from([2 * HOUR, 12 * HOUR, DAY, 3 * DAY, 7 * DAY])


def history(
    seconds_ago: list[float], *, now: datetime = NOW, watched: float | None = None
) -> Arrivals:
    times = tuple(sorted(now - timedelta(seconds=a) for a in seconds_ago))
    since = (
        now - timedelta(seconds=watched) if watched is not None else (times[0] if times else None)
    )
    return Arrivals(times, since)


def interval(
    arrivals: Arrivals, now: datetime = NOW, low: float = 600.0, high: float = DAY
) -> float:
    return adaptive_interval(arrivals, now, min_every=low, max_every=high)


@given(ages, lows, highs)
def test_never_outside_the_bounds(seconds_ago: list[float], low: float, high: float) -> None:
    got = interval(history(seconds_ago), low=low, high=high)
    assert low <= got <= high


@given(ages, st.floats(0, 30 * DAY), lows, highs)
def test_never_faster_after_a_quiet_period(
    seconds_ago: list[float], quiet: float, low: float, high: float
) -> None:
    arrivals = history(seconds_ago)
    before = interval(arrivals, NOW, low, high)
    after = interval(arrivals, NOW + timedelta(seconds=quiet), low, high)
    assert after >= before


@given(ages, st.floats(0, DAY), lows, highs)
def test_a_new_arrival_never_slows_it_down(
    seconds_ago: list[float], new: float, low: float, high: float
) -> None:
    watched = max([*seconds_ago, new, 1.0])
    before = interval(history(seconds_ago, watched=watched), low=low, high=high)
    after = interval(history([*seconds_ago, new], watched=watched), low=low, high=high)
    assert after <= before


@given(
    st.lists(st.floats(2 * DAY, 60 * DAY), max_size=10),  # a quiet source: a few old stories
    st.integers(1, 12),  # then it wakes up: n stories ...
    st.floats(0, 1.0),  # ... within this share of the shortest half-life
    lows,
    highs,
)
def test_quick_to_speed_up_when_a_source_wakes_up(
    old: list[float], n: int, spread: float, low: float, high: float
) -> None:
    shortest = HALF_LIVES[0] * high
    woke = [spread * shortest * i / n for i in range(n)]
    watched = max([*old, *woke, 1.0])
    asleep = interval(history(old, watched=watched), low=low, high=high)
    awake = interval(history([*old, *woke], watched=watched), low=low, high=high)
    # n arrivals within one short half-life: at least half their weight is left, and the
    # decayed time watched is at most half-life / ln 2, so the rate read is >= n ln2 / 2h
    assert awake <= max(low, 2.9 * shortest / n)
    assert awake <= asleep


def test_nothing_arrived_polls_at_max_every() -> None:
    assert interval(Arrivals()) == DAY
    assert interval(history([(WINDOW + 1) * DAY])) == DAY  # older than the window


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        (30 * MINUTE, 30 * MINUTE),  # a steady story every 30 minutes: polled every 30 minutes
        (4 * HOUR, 4 * HOUR),
        (2 * MINUTE, 10 * MINUTE),  # faster than min_every: min_every
        (15 * DAY, DAY),  # the journal of twice a month: once a day
    ],
)
def test_a_steady_cadence_gives_about_one_story_per_poll(every: float, expected: float) -> None:
    steady = [every * i for i in range(1, int(WINDOW * DAY / every))]
    assert interval(history(steady, watched=WINDOW * DAY)) == pytest.approx(expected, rel=0.05)


def test_a_lone_story_just_arrived_does_not_read_as_a_torrent() -> None:
    # one story, ten minutes old, on a source first seen then: about 45 minutes, not 10
    assert interval(history([10 * MINUTE])) > 40 * MINUTE


def test_cadence_window_scales_with_max_every() -> None:
    assert cadence_window(AUTO) == WINDOW * DAY
    assert cadence_window(replace(AUTO, max_every=HOUR)) == WINDOW * HOUR


# -- arrivals_after_poll ------------------------------------------------------------


def test_the_first_poll_counts_the_back_catalogue_at_its_dates() -> None:
    dates = [NOW - timedelta(hours=h) for h in (30, 20, 10)]
    got = arrivals_after_poll(Arrivals(), dates, NOW, WINDOW * DAY)
    assert got.times == tuple(sorted(dates))
    assert got.since == dates[0]


def test_later_polls_count_only_entries_newer_than_the_newest_known() -> None:
    before = history([10 * HOUR, 5 * HOUR])
    shown = [NOW - timedelta(hours=h) for h in (10, 5, 7, 1)]  # 7h ago: older, not new
    got = arrivals_after_poll(before, shown, NOW, WINDOW * DAY)
    assert got.times == (*before.times, NOW - timedelta(hours=1))
    assert got.since == before.since


def test_a_date_in_the_future_arrives_now_and_old_ones_leave_the_window() -> None:
    before = history([40 * DAY, 2 * DAY])
    got = arrivals_after_poll(before, [NOW + timedelta(days=3)], NOW, 28 * DAY)
    assert got.times == (NOW - timedelta(days=2), NOW)
    assert got.since == NOW - timedelta(days=40)


# -- plan_next with every: auto ------------------------------------------------------


def ok(**kw: object) -> SourceReport:
    return replace(SourceReport(source_key="s", ok=True, status=200), **kw)  # type: ignore[arg-type]


def test_plan_next_uses_the_cadence_and_reports_the_interval() -> None:
    arrivals = history([HOUR * i for i in range(1, 200)], watched=20 * DAY)
    nxt = plan_next(AUTO, ok(), now=NOW, failures=0, settings=FLAT, arrivals=arrivals)
    assert nxt.interval == pytest.approx(HOUR, rel=0.05)
    assert (nxt.due_at - NOW).total_seconds() == pytest.approx(nxt.interval)


def test_plan_next_of_an_auto_source_without_arrivals_waits_max_every() -> None:
    nxt = plan_next(AUTO, ok(), now=NOW, failures=0, settings=FLAT)
    assert nxt.interval == DAY
    assert nxt.due_at == NOW + timedelta(days=1)


@given(ages, st.integers(0, 12), st.integers(0, 1000))
def test_auto_keeps_retry_after_cache_control_and_backoff(
    seconds_ago: list[float], failures: int, seed: int
) -> None:
    arrivals = history(seconds_ago)
    rng = random.Random(seed)
    base = interval(arrivals)
    # Cache-Control: max-age longer than the cadence is a floor
    nxt = plan_next(
        AUTO, ok(max_age=2 * DAY), now=NOW, failures=0, settings=FLAT, arrivals=arrivals
    )
    assert nxt.due_at == NOW + timedelta(days=2)
    # Retry-After is obeyed
    later = plan_next(
        AUTO,
        ok(retry_after=3 * DAY),
        now=NOW,
        failures=0,
        settings=FLAT,
        arrivals=arrivals,
        rng=rng,
    )
    assert later.due_at >= NOW + timedelta(days=3)
    # a failing source backs off from its cadence's interval, doubling, up to the cap
    failed = SourceReport(source_key="s", ok=False, status=500, error="HTTP 500")
    if failures:
        nxt = plan_next(AUTO, failed, now=NOW, failures=failures, settings=FLAT, arrivals=arrivals)
        cap = max(FLAT.backoff_max, base)
        assert (nxt.due_at - NOW).total_seconds() == pytest.approx(
            min(base * 2.0**failures, cap), rel=1e-9
        )
