"""WebSub end to end: a feed that advertises a hub, the scheduler, `ingest serve`, a hub.

Everything is real and on loopback: the feed on a `FeedServer`, the hub written for
the tests (tests/websubhub.py: it verifies intent at the callback and signs what it
pushes), the `ingest serve` app under uvicorn, and the scheduler (`Service`) in a
thread with short timings.  Each test runs on SQLite and on PostgreSQL.  What is
checked: discovery recorded at the poll, the subscription verified and active (and
shown so by `ingest status` and `ingest serve`'s /status page), a signed push stored
and reported like a poll, a bad or missing signature refused with nothing stored, the
lease renewed before it ends, an unsubscribe when the source leaves sources.yaml (and
a push to it then answered 410), a callback the hub cannot reach (the subscription
fails, polling goes on), a hub that refuses, a hub the network guard refuses, and
`settings: websub_verify_timeout` deciding when a request the hub never verifies is
given up and sent again (the subscriber's clock is the test's there).  In distributed
mode (PostgreSQL only), the dispatcher's WebSub job subscribes to the hub an `ingest
worker` process found, and unsubscribes when the source leaves the file.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from feedlab_helpers import free_port, start_logged, stop_all, wait_for
from feedserver import FeedServer
from ingest.cli.format import print_status
from ingest.config import load_config
from ingest.model import Settings
from ingest.service.distributed.dispatcher import Dispatcher
from ingest.service.scheduler import Service, Timing
from ingest.service.subscriber import Subscriber
from ingest.stages.netguard import NetGuard
from ingest.stages.transport import make_client
from ingest.stages.websub import SubscriberTiming
from ingest.store import Store
from ingest.store.schema import fetches, item_sources
from ingest.web.app import create_app
from websubhub import Hub, WebApp

T = TypeVar("T")
PATIENCE = SubscriberTiming(retry=1.0, retry_max=2.0)
FAST = Timing(tick=0.2, reload=0.3, heartbeat=0.2, prune=60, grace=2, websub=0.2,
              subscriber=PATIENCE)  # fmt: skip
NOW = datetime.now(UTC).replace(microsecond=0)


def atom(hub: str, topic: str, entries: range) -> str:
    items = "".join(
        f"<entry><id>urn:story:{i}</id><title>Story {i}</title>"
        f'<link href="https://news.example/{i}"/>'
        f"<updated>{(NOW - timedelta(minutes=100 - i)).isoformat()}</updated>"
        f"<summary>Story {i}.</summary></entry>"
        for i in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>Pushed</title><link rel="hub" href="{hub}"/><link rel="self" href="{topic}"/>'
        f"<id>urn:feed</id><updated>{NOW.isoformat()}</updated>{items}</feed>"
    )


def sources_yaml(
    callback: str | None, url: str, *, keep: bool = True, verify: str | None = "2s"
) -> str:
    settings = "settings:\n  respect_max_age: false\n"
    if verify is not None:  # how long the hub has to verify a request (default 10 minutes)
        settings += f"  websub_verify_timeout: {verify}\n"
    if callback:
        settings += f"  websub_callback: {callback}\n"
    body = f"  - {{key: pushed, name: Pushed, url: '{url}', every: 30m}}\n" if keep else ""
    other = "  - {key: other, name: Other, url: 'https://news.example/none', enabled: false}\n"
    return settings + "sources:\n" + body + other


def wait_until(cond: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Running:
    """A scheduler or a dispatcher, run in a thread until `stop`."""

    def __init__(self, service: Service | Dispatcher) -> None:
        self.service = service
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self.service.run())
        except BaseException as e:
            self.error = e

    def stop(self) -> None:
        self.service.request_stop()
        self.thread.join(15)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


@contextmanager
def world(
    tmp_path: Path, db_url: str, *, lease: int = 3600, callback: str | None = "serve"
) -> Iterator[tuple[Store, FeedServer, Hub, WebApp, Path]]:
    """The feed, the hub, `ingest serve` and the store; the scheduler is started apart."""
    with Store.open(db_url) as store, FeedServer() as feeds, Hub(lease=lease) as hub:
        topic = feeds.url("/feed.xml")
        feeds.put("/feed.xml", atom(hub.url, topic, range(1, 3)), "application/atom+xml")
        with WebApp(create_app(store)) as web:
            path = tmp_path / "sources.yaml"
            base = web.url if callback == "serve" else callback
            path.write_text(sources_yaml(base, topic))
            yield store, feeds, hub, web, path


@contextmanager
def scheduler(path: Path, store: Store) -> Iterator[Running]:
    running = Running(Service(str(path), store, timing=FAST))
    try:
        yield running
    finally:
        running.stop()


def subs(store: Store) -> list[Any]:
    return store.subscriptions()


def active(store: Store) -> Any:
    found = [s for s in subs(store) if s.state == "active"]
    return found[0] if len(found) == 1 else None


def subscribed(store: Store, hub: Hub) -> Any:
    """The active subscription, once the hub has recorded its verification too (the hub
    notes it after the callback's answer, which follows the database's write)."""
    sub = wait_until(lambda: active(store), "an active subscription")
    wait_until(lambda: hub.verified(), "the hub's record of the verification")
    return sub


def stories(store: Store) -> set[str]:
    with store.engine.connect() as c:
        return {r[0].removeprefix("id:") for r in c.execute(select(item_sources.c.entry_key))}


def status_row(store: Store) -> dict[str, Any]:
    return next(r for r in store.status() if r["key"] == "pushed")


def status_card(web: WebApp) -> dict[str, str | None]:
    """The push lines of the source's card on `ingest serve`'s /status, by class."""
    page = httpx.get(f"{web.url}/status", timeout=10)
    assert page.status_code == 200
    card = BeautifulSoup(page.text, "html.parser").select_one("#source-pushed")
    assert card is not None
    found = {}
    for name in ("push", "push-lease", "push-last", "push-error", "next-due"):
        node = card.select_one(f".{name}")
        found[name] = None if node is None else " ".join(node.get_text().split())
    return found


def test_discovery_subscription_and_a_signed_push_stored(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with world(tmp_path, db_url) as (store, feeds, hub, web, path), scheduler(path, store):
        topic = feeds.url("/feed.xml")
        sub = subscribed(store, hub)
        # discovery recorded at the poll; the request as the Recommendation asks
        assert store.adverts()["pushed"].hub == hub.url
        (request,) = hub.of_mode("subscribe")
        assert request.topic == topic and request.callback == f"{web.url}/websub/{sub.id}"
        assert request.secret is not None and len(request.secret) == 64
        assert request.lease_seconds == str(10 * 86400)
        assert sub.lease_seconds == 3600 and sub.expires_at is not None
        assert hub.verified() and stories(store) == {"urn:story:1", "urn:story:2"}

        body = atom(hub.url, topic, range(1, 5)).encode()
        assert hub.publish(topic, body) == [202]
        wait_until(lambda: "urn:story:4" in stories(store), "the pushed stories")
        assert stories(store) == {f"urn:story:{i}" for i in range(1, 5)}
        with store.engine.connect() as c:
            log = c.execute(select(fetches.c.outcome, fetches.c.new).order_by(fetches.c.id)).all()
        assert ("push", 2) in [tuple(r) for r in log]
        row = status_row(store)
        assert row["push_state"] == "active" and row["pushes"] == 1 and row["push_refused"] == 0
        assert row["pushed"] and row["poll_interval_seconds"] == 6 * 3600  # the safety net
        print_status(store.status(), now=datetime.now(UTC))
        assert "(pushed)" in capsys.readouterr().out
        card = status_card(web)  # `ingest serve`'s /status says the same
        assert card["push"] == f"subscribed via {hub.url}" and card["push-error"] is None
        assert (card["push-last"] or "").endswith(" (1 push)")  # after an age
        assert (card["push-lease"] or "").startswith("ends ")
        assert (card["next-due"] or "").endswith("(pushed; polled only as a safety net)")

        # the other algorithms the spec names are accepted too
        more = atom(hub.url, topic, range(1, 6)).encode()
        assert hub.publish(topic, more, algorithm="sha1") == [202]
        wait_until(lambda: "urn:story:5" in stories(store), "a sha1-signed push")


def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(
    tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with world(tmp_path, db_url) as (store, feeds, hub, _web, path), scheduler(path, store):
        topic = feeds.url("/feed.xml")
        subscribed(store, hub)
        forged = atom(hub.url, topic, range(1, 9)).encode()
        caplog.set_level("WARNING", logger="ingest.websub")
        assert hub.publish(topic, forged, secret="not the secret") == [202]
        assert hub.publish(topic, forged, signed=False) == [202]
        assert hub.publish(topic, forged, algorithm="md5") == [202]  # not a spec algorithm
        wait_until(lambda: status_row(store)["push_refused"] == 3, "three refusals counted")
        assert stories(store) == {"urn:story:1", "urn:story:2"}
        assert status_row(store)["pushes"] == 0
        assert sum("refused a push" in r.getMessage() for r in caplog.records) == 3


def test_the_lease_is_renewed_before_it_ends(tmp_path: Path, db_url: str) -> None:
    with world(tmp_path, db_url, lease=4) as (store, _feeds, hub, _web, path):
        with scheduler(path, store):
            first = wait_until(lambda: active(store), "an active subscription")
            wait_until(lambda: len(hub.verified()) >= 2, "a renewal verified", timeout=15)
            renewed = wait_until(
                lambda: (s := active(store)) and s.expires_at > first.expires_at and s,
                "the new lease recorded",
            )
        requests = hub.of_mode("subscribe")
        assert len(requests) >= 2 and requests[1].callback == requests[0].callback
        assert renewed.id == first.id and renewed.secret == first.secret
        # renewed when half of a short lease was left, before it ended
        assert requests[1].at - requests[0].at < 4.0


def test_a_source_removed_from_the_file_is_unsubscribed(tmp_path: Path, db_url: str) -> None:
    with world(tmp_path, db_url) as (store, feeds, hub, web, path), scheduler(path, store):
        topic = feeds.url("/feed.xml")
        sub = wait_until(lambda: active(store), "an active subscription")
        path.write_text(sources_yaml(web.url, topic, keep=False))
        wait_until(lambda: hub.verified("unsubscribe"), "the unsubscribe verified")
        wait_until(lambda: not subs(store), "the subscription forgotten")
        (request,) = hub.of_mode("unsubscribe")
        assert request.topic == topic and request.callback.endswith(sub.id)
        gone = httpx.post(f"{web.url}/websub/{sub.id}", content=b"<feed/>", timeout=10)
        assert gone.status_code == 410


def test_an_unreachable_callback_fails_and_polling_goes_on(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with world(tmp_path, db_url, callback=closed) as (store, _feeds, hub, web, path):
        with scheduler(path, store):
            failed = wait_until(
                lambda: [s for s in subs(store) if s.state == "failed"], "the request failed"
            )
        assert hub.verifications and not hub.verified()
        assert "websub_callback" in (failed[0].last_error or "")
        row = status_row(store)
        assert row["push_state"] == "failed" and "reachable" in row["push_error"]
        print_status(store.status(), now=datetime.now(UTC), width=400)
        assert "push: the hub did not verify the subscription" in capsys.readouterr().out
        card = status_card(web)  # `ingest serve`'s /status says the same
        assert card["push"] == f"failed via {hub.url}"
        assert card["push-error"] == row["push_trouble"] == row["push_error"]
        assert "within 2s (websub_verify_timeout)" in (card["push-error"] or "")
        assert card["push-last"] == "never" and card["push-lease"] is None
        # not pushed: the next poll is at the source's own interval, not the safety net's
        assert store.fetch_states([_source(path)])["pushed"].pushed is False
        assert row["next_due_at"] < datetime.now(UTC) + timedelta(minutes=35)


def test_a_hub_that_refuses_is_recorded_and_tried_again(tmp_path: Path, db_url: str) -> None:
    with world(tmp_path, db_url) as (store, _feeds, hub, _web, path):
        hub.refuse = 400
        with scheduler(path, store):
            wait_until(lambda: len(hub.of_mode("subscribe")) >= 2, "a second try after backoff")
            # the hub counts a request when it comes; the subscriber records the answer after
            wait_until(lambda: subs(store)[0].state == "failed", "the second answer recorded")
        (sub,) = subs(store)
        assert sub.state == "failed" and "the hub answered HTTP 400" in (sub.last_error or "")
        assert sub.failures >= 1


@pytest.mark.parametrize(("verify", "seconds"), [("5m", 300), (None, 600)])
def test_websub_verify_timeout_decides_when_a_pending_subscription_is_retried(
    tmp_path: Path, db_url: str, verify: str | None, seconds: int
) -> None:
    """The hub never verifies (the callback is closed): the request stays pending until
    `websub_verify_timeout` (10 minutes when unset) has passed, is then failed, and is
    sent again after the backoff.  The subscriber's clock is the test's, so no step
    depends on how fast the machine is."""
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with world(tmp_path, db_url, callback=closed) as (store, feeds, hub, _web, path):
        topic = feeds.url("/feed.xml")
        path.write_text(sources_yaml(closed, topic, verify=verify))
        config = load_config(path)
        settings = config.settings
        assert settings.websub_verify_timeout == seconds  # read from sources.yaml
        start = NOW
        store.sync_sources(config.sources, start, settings)
        _advertise(store, hub.url, topic)
        clock = [start]
        backoff = SubscriberTiming(retry=60.0, retry_max=60.0)

        async def step_at(offset: float) -> list[str]:
            clock[0] = start + timedelta(seconds=offset)
            async with make_client(settings) as client:
                subscriber = Subscriber(store, client, _inline, timing=backoff,
                                        clock=lambda: clock[0])  # fmt: skip
                return [a.verb for a in await subscriber.step(settings)]

        assert asyncio.run(step_at(0)) == ["subscribe"]
        (pending,) = subs(store)
        assert pending.state == "requested" and len(hub.of_mode("subscribe")) == 1
        assert asyncio.run(step_at(seconds - 1)) == []  # still waiting for the hub
        assert subs(store)[0].state == "requested"
        assert asyncio.run(step_at(seconds)) == ["expire"]  # given up at the timeout
        (failed,) = subs(store)
        assert failed.state == "failed" and failed.id == pending.id
        assert f"did not verify the subscription within {seconds}s" in (failed.last_error or "")
        assert failed.retry_at == start + timedelta(seconds=seconds + 60)
        assert asyncio.run(step_at(seconds + 59)) == []  # the backoff
        assert asyncio.run(step_at(seconds + 60)) == ["subscribe"]  # asked again
        assert len(hub.of_mode("subscribe")) == 2
        (again,) = subs(store)
        assert again.state == "requested" and again.id == pending.id
        assert again.requested_at == start + timedelta(seconds=seconds + 60)


def test_the_hub_must_pass_the_network_guard(tmp_path: Path, db_url: str) -> None:
    with world(tmp_path, db_url) as (store, feeds, hub, web, _path):
        topic = feeds.url("/feed.xml")
        store.sync_sources([_source_at(topic)], datetime.now(UTC))
        _advertise(store, hub.url, topic)

        async def step() -> None:
            settings = Settings(websub_callback=web.url)
            async with make_client(settings, guard=NetGuard()) as client:  # loopback refused
                await Subscriber(store, client, _inline, timing=PATIENCE).step(settings)

        asyncio.run(step())
        (sub,) = subs(store)
        assert sub.state == "failed" and "refused" in (sub.last_error or "")
        assert not hub.requests  # nothing reached it


def test_verification_answers_404_to_what_was_not_asked(tmp_path: Path, db_url: str) -> None:
    with world(tmp_path, db_url) as (store, feeds, _hub, web, path), scheduler(path, store):
        topic = feeds.url("/feed.xml")
        sub = wait_until(lambda: active(store), "an active subscription")
        url = f"{web.url}/websub/{sub.id}"

        def ask(**params: str) -> httpx.Response:
            return httpx.get(url, params={f"hub.{k}": v for k, v in params.items()}, timeout=10)

        assert (
            ask(mode="subscribe", topic="https://elsewhere.example/", challenge="x").status_code
            == 404
        )
        assert ask(mode="unsubscribe", topic=topic, challenge="x").status_code == 404  # not asked
        assert ask(mode="subscribe", topic=topic).status_code == 404  # no challenge
        unknown = httpx.get(f"{web.url}/websub/nope", params={"hub.mode": "subscribe",
                            "hub.topic": topic, "hub.challenge": "x"}, timeout=10)  # fmt: skip
        assert unknown.status_code == 404
        ok = ask(mode="subscribe", topic=topic, challenge="abc", lease_seconds="7200")
        assert (ok.status_code, ok.text) == (200, "abc")
        assert active(store).lease_seconds == 7200


@pytest.mark.postgres
def test_the_dispatcher_subscribes_what_a_worker_discovers_and_unsubscribes(
    tmp_path: Path, pg_url: str
) -> None:
    """Distributed mode: an `ingest worker` process polls the feed (the queued job of
    the dispatcher) and records its hub; the dispatcher's WebSub job, every
    `websub_every`, subscribes; the hub verifies at `ingest serve`'s callback and the
    subscription is active; the source removed from sources.yaml, the dispatcher
    unsubscribes.  Every step waits on its outcome, with a minute to get there."""
    with world(tmp_path, pg_url) as (store, feeds, hub, web, path):
        topic = feeds.url("/feed.xml")
        path.write_text(sources_yaml(web.url, topic, verify=None))  # the default 10 minutes
        log = tmp_path / "worker.log"
        worker = start_logged(log, "worker", "--db", pg_url, "--heartbeat", "1s")
        dispatcher = Dispatcher(str(path), store, pg_url, interval=0.2, heartbeat_every=0.5,
                                websub_every=0.2)  # fmt: skip
        running = Running(dispatcher)
        try:

            def until(what: str, check: Callable[[], object]) -> None:
                wait_for(what, lambda: bool(check()), [log], 60.0)

            until("the worker's poll to record the hub", lambda: "pushed" in store.adverts())
            assert store.adverts()["pushed"].hub == hub.url
            until("an active subscription", lambda: active(store))
            until("the hub's record of the verification", hub.verified)
            sub = active(store)
            (request,) = hub.of_mode("subscribe")
            assert request.topic == topic and request.callback == f"{web.url}/websub/{sub.id}"
            assert request.secret is not None and request.secret == sub.secret
            assert sub.lease_seconds == 3600 and sub.expires_at is not None
            row = status_row(store)
            assert row["pushed"] and row["push_status"] == "subscribed"
            assert row["poll_interval_seconds"] == 6 * 3600  # the workers' safety net

            path.write_text(sources_yaml(web.url, topic, keep=False, verify=None))
            until("the unsubscribe verified", lambda: hub.verified("unsubscribe"))
            until("the subscription forgotten", lambda: not subs(store))
            (leaving,) = hub.of_mode("unsubscribe")
            assert leaving.topic == topic and leaving.callback == request.callback
        finally:
            try:
                running.stop()
            finally:
                stop_all([worker])


# -- helpers ------------------------------------------------------------------------


def _source(path: Path) -> Any:
    return load_config(path).sources[0]


def _source_at(url: str) -> Any:
    from ingest.model import Source

    return Source(key="pushed", name="Pushed", url=url)


def _advertise(store: Store, hub: str, topic: str) -> None:
    from sqlalchemy import update

    from ingest.store.schema import sources

    with store.engine.begin() as c:
        c.execute(update(sources).values(websub_hub=hub, websub_topic=topic))


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def test_a_subscription_that_lapsed_while_no_subscriber_ran_resumes_polling(
    tmp_path: Path, db_url: str
) -> None:
    """The lease ended while the scheduler was stopped: the first step of a new
    subscriber makes the source due now, instead of leaving it to its push safety net."""
    from sqlalchemy import select, update

    from ingest.stages.websub import Subscription
    from ingest.store.schema import sources

    with world(tmp_path, db_url, callback=None) as (store, feeds, hub, _web, _path):
        topic = feeds.url("/feed.xml")
        store.sync_sources([_source_at(topic)], NOW)
        _advertise(store, hub.url, topic)
        sub = Subscription(id="s1", source_key="pushed", hub=hub.url, topic=topic,
                           callback="https://ingest.example/websub/s1", secret="x" * 24,
                           state="requested")  # fmt: skip
        store.subscription_requested(sub, NOW - timedelta(hours=3))
        store.subscription_verified("s1", "subscribe", 3600, NOW - timedelta(hours=3))
        safety_net = NOW + timedelta(hours=6)
        with store.engine.begin() as c:  # as the last poll planned it, while pushed
            c.execute(update(sources).values(next_due_at=safety_net))

        async def first_step() -> None:
            async with make_client(Settings()) as client:
                await Subscriber(store, client, _inline, timing=PATIENCE,
                                 clock=lambda: NOW).step(Settings())  # fmt: skip

        asyncio.run(first_step())
        with store.engine.connect() as c:
            due = c.execute(select(sources.c.next_due_at)).scalar_one()
    assert due is not None and due.replace(tzinfo=UTC) <= NOW
