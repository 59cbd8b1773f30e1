"""Failed polls in a row cool their whole host down, counted in the database.

One job: show, over loopback HTTP on SQLite and PostgreSQL, that when
`settings: host_failures` polls of one host's sources fail in a row on the
server's side (a server answering 500 for all its paths), every source of that
host waits (error kind `cooldown`, shown in `ingest status`) while another host
is polled as usual; that the count is shared by the processes on one database
(two stores, each its own connection pool); that a cool-down that follows
another with no success between lasts twice as long; and that a success resets
the count and the doubling.  Time moves by the pipeline's injected clock, so no
test waits for a cool-down to end.  The rule itself (which outcomes count) is
checked as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import FailureRule, NextPoll, PollRecord, Settings, Source, SourceReport
from ingest.stages.politeness import failure_cooldown, host_of, host_outcome

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Story</title><link>http://other.example/1</link></item></channel></rss>"
)
SETTINGS = Settings(host_failures=3, host_failure_cooldown=60.0)


@pytest.mark.parametrize(
    ("kind", "status", "ok", "counts"),
    [
        (None, 200, True, False),  # a feed: the host answers
        (None, 304, True, False),
        ("http", 404, False, False),  # one source's page is gone; the host answers
        ("parse", 200, False, False),
        ("http", 500, False, True),
        ("http", 503, False, True),
        ("timeout", None, False, True),
        ("network", None, False, True),
        ("blocked", 403, False, True),
        ("http", 429, False, None),  # cools the host by itself
        ("cooldown", None, False, None),  # no request was made
        ("refused", None, False, None),
        ("store", None, False, None),
        ("internal", None, False, None),
    ],
)
def test_which_polls_count_against_their_host(
    kind: str | None, status: int | None, ok: bool, counts: bool | None
) -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    source = Source(key="s", name="S", url="https://feeds.example/rss")
    report = SourceReport("s", ok=ok, status=status, error_kind=kind)
    assert host_outcome(PollRecord(source, report, None, t0, NextPoll(t0))) is counts
    curated = Source(key="c", name="C", url="https://feeds.example/", kind="curated")
    assert host_outcome(PollRecord(curated, report, None, t0, NextPoll(t0))) is None


def test_failure_cooldowns_double_up_to_an_hour() -> None:
    rule = FailureRule(after=5, cooldown=60.0)
    assert failure_cooldown(rule, 4, 0) is None
    assert [failure_cooldown(rule, 5, n) for n in range(8)] == [
        60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0,
    ]  # fmt: skip
    assert failure_cooldown(FailureRule(after=0), 100, 0) is None  # host_failures: 0 turns it off
    assert failure_cooldown(FailureRule(after=1, cooldown=3600.0), 1, 40) == 3600.0


def test_settings_for_failure_cooldowns_are_checked() -> None:
    from ingest.errors import ConfigError

    source = "sources:\n  - {key: a, name: A, url: 'https://bmj.com/rss'}\n"
    cfg = parse_config(
        "settings:\n  host_failures: 3\n  host_failure_cooldown: 2m\n" + source, "sources.yaml"
    )
    assert (cfg.settings.host_failures, cfg.settings.host_failure_cooldown) == (3, 120.0)
    assert parse_config(source, "sources.yaml").settings.host_failures == 5
    with pytest.raises(ConfigError) as info:
        parse_config(
            "settings:\n  host_failures: many\n  host_failure_cooldown: 2d\n" + source,
            "sources.yaml",
        )
    shown = str(info.value)
    assert "host_failures must be a whole number from 0 to 1000, not 'many'" in shown
    assert "host_failure_cooldown" in shown


def _sources(down: FeedServer, calm: FeedServer) -> tuple[Source, ...]:
    text = "sources:\n" + "".join(
        f"  - {{key: {k}, name: {k}, url: '{server.url(f'/{k}.xml')}'}}\n"
        for k, server in (("a", down), ("b", down), ("c", down), ("calm", calm))
    )
    return parse_config(text, "sources.yaml").sources


def test_failures_in_a_row_cool_the_host_down_for_every_source(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main
    from ingest.runtime.pipeline import run
    from ingest.store import Store

    t0 = datetime.now(UTC).replace(microsecond=0)

    def poll(store: Store, sources: Sequence[Source], at: datetime) -> dict[str, SourceReport]:
        reports = run(sources, store, SETTINGS, clock=lambda: at)
        return {r.source_key: r for r in reports}

    with FeedServer() as down, FeedServer() as calm:
        for k in "abc":
            down.error(f"/{k}.xml", 500, "Internal Server Error")
        calm.put("/calm.xml", RSS)
        a, b, c, quiet = _sources(down, calm)
        host = host_of(a.url)
        # two stores on one database, as two processes have: the count is the database's
        with Store.open(db_url) as one, Store.open(db_url) as two:
            assert poll(one, [a], t0)["a"].status == 500
            assert poll(two, [b], t0)["b"].status == 500
            assert one.host_cooldowns(t0) == []  # two failures: not yet
            assert poll(one, [c, quiet], t0)["c"].status == 500  # the third in a row
            cooling = one.host_cooldowns(t0)
            assert [(r["host"], r["until"]) for r in cooling] == [
                (host, t0 + timedelta(seconds=60))
            ]
            assert cooling[0]["reason"] == "3 failed polls in a row, the last HTTP 500 from c"
            assert len(down.requests) == 3

            later = t0 + timedelta(seconds=30)
            held = poll(two, [a, b, c, quiet], later)
            assert len(down.requests) == 3  # nobody asked the host again
            for key in "abc":
                assert held[key].error_kind == "cooldown", held[key]
                assert f"not polled: {host} is cooling down until" in (held[key].error or "")
                assert "(3 failed polls in a row, the last HTTP 500 from c)" in (
                    held[key].error or ""
                )
            assert held["calm"].ok and len(calm.requests) == 2  # another host: as usual
            rows = {r["key"]: r for r in two.status()}
            assert rows["a"]["consecutive_failures"] == 1  # a poll not made is no failure

            assert main(["status", "--db", db_url]) == 0
            out = capsys.readouterr().out
            assert f"cooling down: {host} until " in out
            assert "(3 failed polls in a row, the last HTTP 500 from c)" in out

            # the cool-down over and the host still failing: the next one lasts twice as long
            after = t0 + timedelta(seconds=61)
            poll(one, [a, b, c], after)
            assert len(down.requests) == 6
            assert [r["until"] for r in one.host_cooldowns(after)] == [
                after + timedelta(seconds=120)
            ]

            # then the host answers: a success sets the count and the doubling back
            mended = after + timedelta(seconds=121)
            down.put("/a.xml", RSS)
            assert poll(two, [a], mended)["a"].ok
            assert poll(one, [b, c], mended)["b"].status == 500
            assert one.host_cooldowns(mended) == []  # two failures since the success
            poll(two, [b], mended)
            assert [r["until"] for r in two.host_cooldowns(mended)] == [
                mended + timedelta(seconds=60)  # the first cool-down's length again
            ]
            assert len(down.requests) == 10


def test_host_failures_zero_never_cools_a_host(sqlite_url: str) -> None:
    from ingest.runtime.pipeline import run
    from ingest.store import Store

    with FeedServer() as down, FeedServer() as calm:
        for k in "abc":
            down.error(f"/{k}.xml", 503, "down")
        sources = _sources(down, calm)[:3]
        with Store.open(sqlite_url) as store:
            for _ in range(3):
                run(sources, store, Settings(host_failures=0))
            assert store.host_cooldowns(datetime.now(UTC)) == []
        assert len(down.requests) == 9
