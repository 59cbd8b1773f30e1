"""Host-wide politeness: a 429 cools down every source of its host; spacing between polls.

One job: show, over loopback HTTP on SQLite and PostgreSQL, that a host answering 429
for all its paths is left alone by every source on it (not just the one that was told),
by `ingest run` and by two pipelines on one database as two `ingest worker`s are, with
the cool-down shown in `ingest status`, while other hosts are polled as usual; and that
`settings: per_host_delay` / `host_delays` space one process's polls of a host (an
injected clock and sleep, so no assertion depends on how fast the machine is).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from feedserver import FeedServer
from ingest.config import parse_config
from ingest.model import PollRecord, Settings, Source, SourceReport
from ingest.stages.fetch import Fetcher
from ingest.stages.politeness import cooldown_of, cooled_next, delay_for, host_of
from ingest.stages.transport import make_client

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Story</title><link>http://other.example/1</link></item></channel></rss>"
)


def test_host_of_and_delay_for() -> None:
    assert host_of("https://WWW.BMJ.com./rss?x=1") == "www.bmj.com"
    assert host_of("https://bmj.com:443/a") == "bmj.com"
    assert host_of("http://127.0.0.1:8080/a") == "127.0.0.1:8080"
    settings = Settings(per_host_delay=1.0, host_delays=(("bmj.com", 5.0), ("feeds.bmj.com", 9.0)))
    assert delay_for(settings, "bmj.com") == 5.0
    assert delay_for(settings, "journals.bmj.com") == 5.0  # a domain covers its subdomains
    assert delay_for(settings, "feeds.bmj.com:8443") == 9.0  # the longest match, port aside
    assert delay_for(settings, "notbmj.com") == 1.0
    assert delay_for(Settings(), "bmj.com") == 0.0


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [(429, 120.0, 120.0), (429, None, 60.0), (503, 300.0, 300.0), (503, None, None),
     (500, 60.0, None), (429, 10 * 86400.0, 86400.0)],
)  # fmt: skip
def test_which_answers_cool_a_host(
    status: int, retry_after: float | None, seconds: float | None
) -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    source = Source(key="bmj", name="B", url="https://feeds.bmj.com/rss")
    report = SourceReport("bmj", ok=False, status=status, retry_after=retry_after)
    nxt = cooled_next(t0, random.Random(1))
    found = cooldown_of(PollRecord(source, report, None, t0, nxt))
    if seconds is None:
        assert found is None
    else:
        assert found == (
            "feeds.bmj.com",
            t0 + timedelta(seconds=seconds),
            f"HTTP {status} from bmj",
        )
    assert t0 <= nxt.due_at <= t0 + timedelta(seconds=5) and nxt.retry_after_until == t0


def _sources(busy: FeedServer, calm: FeedServer) -> tuple[Source, ...]:
    text = "sources:\n" + "".join(
        f"  - {{key: {k}, name: {k}, url: '{server.url(f'/{k}.xml')}'}}\n"
        for k, server in (("a", busy), ("b", busy), ("c", busy), ("calm", calm))
    )
    return parse_config(text, "sources.yaml").sources


def test_a_host_answering_429_is_left_alone_by_every_source(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.cli.main import main
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    with FeedServer() as busy, FeedServer() as calm:
        for k in "abc":
            busy.error(f"/{k}.xml", 429, "slow down", retry_after=600)
        calm.put("/calm.xml", RSS)
        a, b, c, quiet = _sources(busy, calm)
        with Store.open(db_url) as store:
            (first,) = run_pipeline([a], store, Settings())
            assert first.status == 429 and len(busy.requests) == 1
            reports = {r.source_key: r for r in run_pipeline([a, b, c, quiet], store, Settings())}
            rows = {r["key"]: r for r in store.status()}
        assert len(busy.requests) == 1  # nobody asked the host again
        assert len(calm.requests) == 1 and reports["calm"].ok and reports["calm"].new == 1
    host = host_of(a.url)
    for key in "abc":
        assert reports[key].error_kind == "cooldown", reports[key]
        assert f"not polled: {host} is cooling down until" in (reports[key].error or "")
        assert "(HTTP 429 from a)" in (reports[key].error or "")
        assert rows[key]["next_due_at"] > datetime.now(UTC) + timedelta(seconds=500)
    assert rows["b"]["consecutive_failures"] == 0  # a poll not made is no failure of b
    assert rows["a"]["consecutive_failures"] == 1  # a's own 429
    assert main(["status", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert f"cooling down: {host} until " in out and "(HTTP 429 from a)" in out


def test_polls_queued_behind_the_429_in_one_run_are_not_sent(sqlite_url: str) -> None:
    """`per_host: 1`: the polls of the host wait for their turn in one `ingest run`; the
    first to go gets the 429, and those queued behind it are not sent at all."""
    from ingest.runtime.pipeline import run as run_pipeline
    from ingest.store import Store

    with FeedServer() as busy, FeedServer() as calm:
        for k in "abc":
            busy.error(f"/{k}.xml", 429, "slow down", retry_after=600)
        calm.put("/calm.xml", RSS)
        with Store.open(sqlite_url) as store:
            reports = run_pipeline(_sources(busy, calm), store, Settings(per_host=1))
            rows = {r["key"]: r for r in store.status()}
        assert len(busy.requests) == 1 and len(calm.requests) == 1
    kinds = {r.source_key: r.error_kind for r in reports}
    assert kinds["calm"] is None
    first = next(k for k in "abc" if kinds[k] == "http")  # whichever went first
    assert sorted(kinds[k] for k in "abc") == ["cooldown", "cooldown", "http"]
    for k in set("abc") - {first}:
        assert rows[k]["consecutive_failures"] == 0
        assert rows[k]["next_due_at"] > datetime.now(UTC) + timedelta(seconds=500)


def test_two_workers_on_one_database_share_the_cool_down(pg_url: str) -> None:
    """Two pipelines, each with its own database connection, owner and HTTP client, as two
    `ingest worker` processes have: what one learned about the host, the other obeys."""
    from ingest.runtime.pipeline import Pipeline
    from ingest.store import Store

    async def poll(store: Store, source: Source, owner: str) -> SourceReport:
        async with (
            make_client(Settings()) as client,
            Pipeline(store, client, Settings(), owner=owner) as pipeline,
        ):
            now = datetime.now(UTC)
            await pipeline.recorder.call(store.sync_sources, [source], now)
            assert await pipeline.recorder.call(
                store.acquire_leases, [source.key], owner, now, 60.0
            ) == {source.key}
            states = await pipeline.recorder.call(store.fetch_states, [source])
            return await pipeline.poll(source, states[source.key])

    with FeedServer() as busy, FeedServer() as calm:
        for k in "abc":
            busy.error(f"/{k}.xml", 429, "slow down", retry_after=600)
        a, b, _, _ = _sources(busy, calm)
        with Store.open(pg_url) as one, Store.open(pg_url) as two:
            first = asyncio.run(poll(one, a, "job:1"))
            second = asyncio.run(poll(two, b, "job:2"))
        assert first.status == 429 and second.error_kind == "cooldown"
        assert [r.path for r in busy.requests] == ["/a.xml"]


def test_per_host_delay_spaces_the_polls_of_a_host() -> None:
    now = [1000.0]
    asked: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        await asyncio.sleep(0)

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append((request.url.host, now[0]))
        return httpx.Response(200, content=RSS.encode())

    settings = Settings(per_host_delay=2.0, host_delays=(("slow.example", 30.0),))

    async def go() -> None:
        async with make_client(settings, transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, settings, clock=lambda: now[0], sleep=sleep)
            urls = [f"https://{h}/{i}" for h in ("a.example", "slow.example") for i in range(3)]
            await asyncio.gather(*(fetcher.fetch(Source(key=u, name=u, url=u)) for u in urls))

    asyncio.run(go())
    times: dict[str, list[float]] = {}
    for host, at in asked:
        times.setdefault(host, []).append(at)
    for host, gap in (("a.example", 2.0), ("slow.example", 30.0)):
        starts = times[host]
        assert len(starts) == 3
        assert all(b - a >= gap for a, b in itertools.pairwise(starts)), (host, starts)


def test_settings_for_spacing_are_checked() -> None:
    cfg = parse_config(
        "settings:\n  per_host_delay: 2s\n  host_delays:\n    BMJ.com: 10s\n    nhs.uk: 1m\n"
        "sources:\n  - {key: a, name: A, url: 'https://bmj.com/rss'}\n",
        "sources.yaml",
    )
    assert cfg.settings.per_host_delay == 2.0
    assert cfg.settings.host_delays == (("bmj.com", 10.0), ("nhs.uk", 60.0))
    from ingest.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(
            "settings:\n  host_delays:\n    'bad host!': 1s\n    ok.example: forever\n"
            "sources:\n  - {key: a, name: A, url: 'https://bmj.com/rss'}\n",
            "sources.yaml",
        )
    shown = str(info.value)
    assert "sources.yaml:3: settings: host_delays: 'bad host!' is not a host name" in shown
