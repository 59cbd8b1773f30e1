"""No value that `ingest check` accepts can crash a run (issue 14, item 3).

Hypothesis writes sources files with generated durations (any number, any unit, in every
duration field) and generated text (any character but surrogates, in names, words, the
User-Agent and curated text).  A file is either refused -- every problem at a line of the
file, with no raw control character in its message -- or accepted, and then everything a
run does with those values is done for real: the next poll planned after a success and
after 1 to 31 failures, a pending WebSub subscription given up after the configured
verification timeout, the sources and settings written to the database (and read back)
with their leases taken, released and pruned by the configured horizons (on SQLite and
PostgreSQL), and each source tried (`ingest try`'s `try_source`) against a loopback server
with the configured User-Agent, deadline and filters.  One test runs a parse in a worker at
the largest budgets accepted.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from feedserver import FeedServer
from ingest.config import Config, parse_config
from ingest.config.values import MAX_DURATION, MAX_MEMORY, MAX_TIMEOUT
from ingest.errors import ConfigError
from ingest.model import Advert, Fetched, Settings, SourceReport
from ingest.runtime.leases import lease_ttl
from ingest.runtime.parsing import jobs as workers
from ingest.runtime.trial import try_source
from ingest.stages.bounds import ParseLimits
from ingest.stages.policy import plan_next
from ingest.stages.websub import Subscription, callback_url, plan
from ingest.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

UNITS = ["", "s", "m", "h", "d", "sec", "min", "mins", "hours", "days", " d", "x", "y"]
NUMBERS = st.one_of(
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{0,3})?", fullmatch=True),
    st.from_regex(r"[0-9]{5,40}", fullmatch=True),  # far past any bound
    st.sampled_from(["0", "0.0", ".5", "3650", "3651", "315360000", "315360001", "1e9"]),
)
DURATIONS = st.one_of(
    st.builds(lambda n, u: n + u, NUMBERS, st.sampled_from(UNITS)),
    st.builds(lambda a, b: f"{a}h{b}m", NUMBERS, NUMBERS),
)
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12),
    st.from_regex(r"[ -~]{1,20}", fullmatch=True),  # printable ASCII
)


def quoted(value: str) -> str:
    """A YAML double-quoted scalar for any text (JSON's escapes are YAML's too)."""
    return json.dumps(value)


@pytest.fixture(scope="module")
def feed() -> Iterator[FeedServer]:
    with FeedServer() as server:
        when = NOW.strftime("%a, %d %b %Y %H:%M:%S +0000")
        server.put(
            "/feed.xml",
            '<rss version="2.0"><channel><title>t</title><item><title>Hello world</title>'
            f"<link>https://a.example/1</link><pubDate>{when}</pubDate></item></channel></rss>",
        )
        yield server


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def refused_well(text: str, e: ConfigError) -> None:
    lines = text.count("\n") + 1
    for problem in e.problems:
        assert 1 <= problem.line <= lines, problem
        assert not CONTROL.search(problem.message), problem


def run_with(config: Config, store: Store, feed: FeedServer) -> None:
    """What a run, the scheduler and `ingest try` do with the configured values."""
    s = config.settings
    for source in config.sources:
        ok = SourceReport(source.key, ok=True, status=200, max_age=86400.0)
        plan_next(source, ok, now=NOW, failures=0, settings=s)
        failed = SourceReport(source.key, ok=False, status=500, error="HTTP 500")
        for failures in (1, 2, 10, 31):
            plan_next(source, failed, now=NOW, failures=failures, settings=s)
    store.sync_sources(config.sources, NOW, s)
    assert store.settings() == s  # as the workers and `ingest serve` read them back
    pending = Subscription(
        id="x", source_key="a", hub="https://hub.example/", topic="https://a.example/",
        callback=callback_url("https://cb.example", "x"), secret="s", state="requested",
        requested_at=NOW,
    )  # fmt: skip
    wanted = {"a": Advert(pending.hub, pending.topic)}
    assert plan(wanted, [pending], "https://cb.example", NOW, s.websub_verify_timeout) == []
    given_up = NOW + timedelta(seconds=s.websub_verify_timeout)
    (expire,) = plan(wanted, [pending], "https://cb.example", given_up, s.websub_verify_timeout)
    assert expire.verb == "expire"
    keys = [src.key for src in config.sources]
    ttl = max(lease_ttl(src) for src in config.sources)
    taken = store.acquire_leases(keys, "bounds-test", NOW, ttl)
    assert taken == set(keys)
    store.release_leases(keys, "bounds-test")
    store.prune_batch(NOW, retention=s.retention, history=s.history, batch=10)
    for source in config.sources:
        if source.kind == "curated":
            continue
        trial = asyncio.run(try_source(replace(source, url=feed.url("/feed.xml")), s))
        assert trial.ok, trial.error


DURATION_FIELDS = (
    "defaults.timeout", "settings.backoff_max", "settings.retention", "settings.history",
    "settings.parse_cpu", "settings.websub_verify_timeout", "source.every", "source.timeout",
    "source.max_age",
)  # fmt: skip
SANE_DURATION = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 59), st.sampled_from("sm"))


def sources_file(values: dict[str, str | None]) -> str:
    """A sources file with `values` ("section.field": text) written as YAML strings;
    None leaves the field out."""
    blocks: dict[str, list[str]] = {"defaults": [], "settings": [], "source": []}
    for name, value in values.items():
        if value is not None:
            block, field = name.split(".")
            blocks[block].append(f"{field}: {quoted(value)}")
    text = "".join(
        f"{block}:\n" + "".join(f"  {line}\n" for line in lines)
        for block, lines in blocks.items()
        if lines and block != "source"
    )
    own = "".join(f"    {line}\n" for line in blocks["source"])
    return (
        text + "sources:\n  - key: a\n    name: A\n    url: https://a.example/\n" + own
        + "  - key: b\n    name: B\n    url: https://a.example/b\n"
    )  # fmt: skip


@PROPERTY
@given(
    field=st.sampled_from(DURATION_FIELDS),
    value=DURATIONS,
    others=st.fixed_dictionaries({f: st.one_of(st.none(), SANE_DURATION) for f in DURATION_FIELDS}),
)
def test_no_accepted_duration_crashes_a_run(
    store: Store, feed: FeedServer, field: str, value: str, others: dict[str, str | None]
) -> None:
    text = sources_file({**others, field: value})
    try:
        config = parse_config(text)
    except ConfigError as e:
        refused_well(text, e)
        event("refused")
        return
    event("accepted")
    s, a, b = config.settings, config.sources[0], config.sources[1]
    for seconds in (a.every, s.backoff_max, s.retention, s.history):
        assert 0 < seconds <= MAX_DURATION
    assert a.max_age is None or 0 < a.max_age <= MAX_DURATION
    for seconds in (a.timeout, b.timeout, s.parse_cpu, s.websub_verify_timeout):
        assert 0 < seconds <= MAX_TIMEOUT
    run_with(config, store, feed)


TEXT_FIELDS = (
    "settings.user_agent", "source.name", "source.include", "source.exclude",
    "source.section", "item.title", "item.summary",
)  # fmt: skip
SANE_TEXT = st.from_regex(r"[a-z]{1,8}", fullmatch=True)


@PROPERTY
@given(
    field=st.sampled_from(TEXT_FIELDS),
    value=TEXT,
    others=st.fixed_dictionaries({f: SANE_TEXT for f in TEXT_FIELDS}),
)
def test_no_accepted_text_crashes_a_run(
    store: Store, feed: FeedServer, field: str, value: str, others: dict[str, str]
) -> None:
    v = {**others, field: value}
    text = (
        f"settings:\n  user_agent: {quoted(v['settings.user_agent'])}\n"
        "sources:\n"
        f"  - key: a\n    name: {quoted(v['source.name'])}\n    url: https://a.example/\n"
        f"    include: [{quoted(v['source.include'])}, Hello]\n"
        f"    exclude: {quoted(v['source.exclude'])}\n"
        f"    section: {quoted(v['source.section'])}\n"
        f"  - key: b\n    name: B\n    kind: curated\n    items:\n"
        f"      - title: {quoted(v['item.title'])}\n        url: https://a.example/c\n"
        f"        summary: {quoted(v['item.summary'])}\n"
    )
    try:
        config = parse_config(text)
    except ConfigError as e:
        refused_well(text, e)
        event("refused")
        return
    event("accepted")
    a, b = config.sources
    for value in (a.name, *a.include, *a.exclude, a.section, b.items[0].title):
        assert not CONTROL.search(value)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", b.items[0].summary or "")
    assert config.settings.user_agent.isascii() and config.settings.user_agent.isprintable()
    assert all(unicodedata.category(c) != "Cc" for c in a.name)
    run_with(config, store, feed)


def test_the_largest_parse_budgets_accepted_work_in_a_worker() -> None:
    config = parse_config(
        "settings:\n  parse_cpu: 1h\n  parse_memory: 1024GiB\n"
        "sources:\n  - {key: a, name: A, url: 'https://a.example/'}\n"
    )
    assert config.settings.parse_memory == MAX_MEMORY
    source = config.sources[0]
    doc = b'<rss version="2.0"><channel><item><title>x</title></item></channel></rss>'
    fetched = Fetched(source.key, source.url, source.url, 200, content=doc)
    pool = workers.start_forkserver_pool(1)
    try:
        limits = ParseLimits.of(config.settings)
        kind, items = pool.submit(workers.parse_job, source, fetched, NOW, None, limits).result(60)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    assert kind == "ok" and [i.title for i in items] == ["x"]


def test_settings_defaults_are_within_the_bounds() -> None:
    s = Settings()
    assert max(s.backoff_max, s.retention, s.history) <= MAX_DURATION
    assert s.parse_cpu <= MAX_TIMEOUT and s.parse_memory <= MAX_MEMORY
    assert s.websub_verify_timeout <= MAX_TIMEOUT


def test_a_big_file_of_bad_values_is_reported_not_raised(tmp_path: Path) -> None:
    """The issue's own values, through `ingest check`'s loader: exit code 2 is in
    tests/test_hostile_run.py; here, every value is named at its line."""
    text = (
        'settings:\n  user_agent: "ua\\r\\nX: 1"\n'
        'sources:\n  - key: a\n    name: "A\\0"\n    url: https://a.example/\n'
        "    every: 99999999999d\n    timeout: 100000000000d\n    max_age: 99999999999d\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [p.line for p in info.value.problems] == [2, 5, 7, 8, 9]
