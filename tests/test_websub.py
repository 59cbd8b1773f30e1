"""The pure parts of WebSub: discovery (file-driven), signatures, renewal timing, the plan.

Discovery cases are tests/data/websub/<case>.xml (or .json) with <case>.expected.json
(`url` the feed was fetched from, the `link` header it came with, the `advert`
expected or null).  The rest is websub.py's rules on values, and policy.py's
safety-net interval for a pushed source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.model import Advert, Fetched, Settings, Source, SourceReport
from ingest.stages.parse import hubs as hubs_module
from ingest.stages.parse.hubs import HEAD_BYTES, advert_of, header_links
from ingest.stages.policy import plan_next
from ingest.stages.websub import (
    SubscriberTiming,
    Subscription,
    callback_url,
    new_secret,
    plan,
    push_status,
    push_trouble,
    pushed,
    renew_at,
    retry_after,
    signature_ok,
    verification,
)

DATA = Path(__file__).parent / "data" / "websub"
CASES = sorted(p for p in DATA.iterdir() if not p.name.endswith(".expected.json"))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMING = SubscriberTiming(retry=3600, retry_max=86400)
VERIFY = Settings().websub_verify_timeout  # 10 minutes unless sources.yaml says
CALLBACK = "https://news.example/ingest"
HUB = Advert("https://hub.example/", "https://blog.example/feed")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_discovery(path: Path) -> None:
    expected = json.loads(path.with_suffix(".expected.json").read_text())
    fetched = Fetched("s", expected["url"], expected["url"], 200, content=path.read_bytes(),
                      link=expected["link"])  # fmt: skip
    advert = advert_of(fetched)
    want = expected["advert"]
    assert advert == (None if want is None else Advert(want["hub"], want["topic"]))


def test_links_past_the_head_are_not_read() -> None:
    padding = b"<!--" + b"x" * HEAD_BYTES + b"-->"
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>' + padding
        + b'<link rel="hub" href="https://hub.example/"/></feed>'
    )  # fmt: skip
    assert advert_of(Fetched("s", "https://a.example/", "https://a.example/", 200, body)) is None
    assert advert_of(Fetched("s", "https://a.example/", "https://a.example/", 200, b"")) is None


def test_link_header_parsing() -> None:
    hubs, selves = header_links(
        '<https://h1.example/>; rel="hub", <https://h2.example/>;rel=hub;title="x", '
        '</f>; rel="self alternate", <https://n.example/>; rel="next", <bad',
        "https://a.example/x",
    )
    assert hubs == ["https://h1.example/", "https://h2.example/"]
    assert selves == ["https://a.example/f"]
    assert header_links(None, "https://a.example/") == ([], [])


# -- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_each_algorithm_of_the_spec_is_checked(method: str) -> None:
    body = b"<feed>pushed</feed>"
    digest = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert signature_ok("s3cret", body, f"{method}={digest}")
    assert signature_ok("s3cret", body, f" {method.upper()}={digest.upper()} ")
    assert not signature_ok("other", body, f"{method}={digest}")
    assert not signature_ok("s3cret", body + b" ", f"{method}={digest}")


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256", "sha256=", "md5=" + hashlib.md5(b"x").hexdigest(), "sha256=zz\u00e9",
     "=abc", "sha256=" + "0" * 64],
)  # fmt: skip
def test_bad_signatures(header: str | None) -> None:
    assert not signature_ok("s3cret", b"x", header)


# -- timing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "before_end"),
    [(10 * 86400, 86400), (86400, 8640), (7200, 3600), (3600, 1800), (4, 2)],
)
def test_renewal_comes_before_the_lease_ends(lease: int, before_end: float) -> None:
    end = NOW + timedelta(seconds=lease)
    when = renew_at(end, lease)
    assert end - when == timedelta(seconds=before_end)
    assert NOW < when < end


def test_retries_back_off_and_are_capped() -> None:
    waits = [retry_after(n, TIMING) for n in range(1, 8)]
    assert waits[:3] == [3600, 7200, 14400]
    assert waits == sorted(waits) and max(waits) == 86400


def test_callback_and_secret() -> None:
    assert callback_url("https://n.example/x/", "abc") == "https://n.example/x/websub/abc"
    assert callback_url("https://n.example", "abc") == "https://n.example/websub/abc"
    one, two = new_secret(), new_secret()
    assert one != two and len(one) == 64 and len(one.encode()) <= 200


def test_a_pushed_source_is_polled_only_as_a_safety_net() -> None:
    ok = SourceReport(source_key="s", ok=True)
    settings = Settings(jitter=0.0)
    source = Source(key="s", name="s", url="https://a.example/", every=1800)
    rng = random.Random(1)
    normal = plan_next(source, ok, now=NOW, failures=0, settings=settings, rng=rng)
    safety = plan_next(source, ok, now=NOW, failures=0, settings=settings, rng=rng, pushed=True)
    assert normal.due_at == NOW + timedelta(seconds=1800)
    assert safety.due_at == NOW + timedelta(hours=6) and safety.interval == 6 * 3600
    slow = Source(key="s", name="s", url="https://a.example/", every=86400)
    longer = plan_next(slow, ok, now=NOW, failures=0, settings=settings, rng=rng, pushed=True)
    assert longer.interval == 86400  # its own interval, when longer, stands
    own = plan_next(source, ok, now=NOW, failures=0, settings=Settings(jitter=0.0, push_every=600),
                    rng=rng, pushed=True)  # fmt: skip
    assert own.interval == 1800  # push_every never makes a source polled more often


# -- what a subscription comes to, for `ingest status` and /status ------------------------


def test_push_status_and_trouble() -> None:
    later = NOW + timedelta(days=1)
    assert push_status("active", later, NOW) == "subscribed"
    assert push_status("active", NOW, NOW) == "lapsed"  # the lease has just ended
    assert push_status("active", None, NOW) == "lapsed"
    assert push_status("requested", None, NOW) == "pending"
    assert push_status("requested", later, NOW) == "pending"
    assert [push_status(s, None, NOW) for s in ("failed", "denied", "unsubscribing")] == [
        "failed", "denied", "unsubscribing"
    ]  # fmt: skip
    assert push_status("active", later, NOW) == "subscribed" and pushed(sub(), NOW)
    assert push_trouble("failed", "the hub answered HTTP 400", 0) == "the hub answered HTTP 400"
    assert push_trouble("denied", "no", 2) == "no; 2 pushes refused (bad signature)"
    assert push_trouble("active", "an old renewal error", 1) == "1 push refused (bad signature)"
    assert push_trouble("requested", None, 0) is None


# -- the plan ------------------------------------------------------------------------------


def sub(state: str = "active", **kw: object) -> Subscription:
    values: dict[str, object] = {
        "id": "abc", "source_key": "s", "hub": HUB.hub, "topic": HUB.topic,
        "callback": callback_url(CALLBACK, "abc"), "secret": "x", "state": state,
        "requested_at": NOW - timedelta(days=2), "verified_at": NOW - timedelta(days=2),
        "lease_seconds": 10 * 86400, "expires_at": NOW + timedelta(days=8),
    }  # fmt: skip
    values.update(kw)
    return Subscription(**values)  # type: ignore[arg-type]


def verbs(wanted: dict[str, Advert], subs: list[Subscription], callback: str | None = CALLBACK,
          now: datetime = NOW) -> list[tuple[str, str]]:  # fmt: skip
    return [(a.verb, a.source_key) for a in plan(wanted, subs, callback, now, VERIFY)]


def test_plan_subscribes_new_sources_only_with_a_callback() -> None:
    assert verbs({"s": HUB}, []) == [("subscribe", "s")]
    assert verbs({"s": HUB}, [], callback=None) == []
    assert verbs({"s": HUB}, [sub()]) == []  # active, far from its end


def test_plan_renews_near_the_end_and_waits_for_a_renewal_in_flight() -> None:
    late = NOW + timedelta(days=8) - timedelta(hours=23)
    assert verbs({"s": HUB}, [sub()], now=late) == [("renew", "s")]
    asked = sub(requested_at=late - timedelta(seconds=5))
    assert verbs({"s": HUB}, [asked], now=late) == []  # asked 5 s ago: wait for the hub
    stale = sub(requested_at=late - timedelta(seconds=601))
    assert verbs({"s": HUB}, [stale], now=late) == [("renew", "s")]
    after = NOW + timedelta(days=9)  # the lease ran out: still renewed (pushes stopped)
    assert verbs({"s": HUB}, [sub()], now=after) == [("renew", "s")]
    assert not pushed(sub(), after) and pushed(sub(), NOW)


def test_plan_unsubscribes_what_is_no_longer_wanted() -> None:
    assert verbs({}, [sub()]) == [("unsubscribe", "s")]  # removed from the file
    moved = Advert("https://other-hub.example/", HUB.topic)
    assert verbs({"s": moved}, [sub()]) == [("unsubscribe", "s"), ("subscribe", "s")]
    assert verbs({"s": HUB}, [sub()], callback=None) == [("unsubscribe", "s")]
    assert verbs({"s": HUB}, [sub()], callback="https://new.example/") == [
        ("unsubscribe", "s"), ("subscribe", "s"),
    ]  # fmt: skip
    assert verbs({}, [sub("failed")]) == [("drop", "s")]  # nothing at the hub to undo


def test_plan_expires_unverified_requests_and_retries_failed_ones() -> None:
    asked = sub("requested", requested_at=NOW - timedelta(seconds=30), verified_at=None)
    assert verbs({"s": HUB}, [asked]) == []
    old = sub("requested", requested_at=NOW - timedelta(seconds=601), verified_at=None)
    (action,) = plan({"s": HUB}, [old], CALLBACK, NOW, VERIFY)
    assert action.verb == "expire" and "websub_callback" in action.reason
    waiting = sub("failed", retry_at=NOW + timedelta(minutes=5))
    assert verbs({"s": HUB}, [waiting]) == []
    assert verbs({"s": HUB}, [sub("failed", retry_at=NOW)]) == [("subscribe", "s")]
    assert verbs({"s": HUB}, [sub("denied", retry_at=NOW)]) == [("subscribe", "s")]
    leaving = sub("unsubscribing", requested_at=NOW - timedelta(seconds=601))
    assert verbs({}, [leaving]) == [("drop", "s")]
    assert verbs({}, [sub("unsubscribing", requested_at=NOW)]) == []


def test_plan_waits_for_a_verification_as_long_as_websub_verify_timeout() -> None:
    asked = sub("requested", requested_at=NOW - timedelta(seconds=90), verified_at=None)
    assert verbs({"s": HUB}, [asked]) == []  # the default: 10 minutes
    (action,) = plan({"s": HUB}, [asked], CALLBACK, NOW, 60.0)
    assert action.verb == "expire" and "within 60s (websub_verify_timeout)" in action.reason
    assert plan({"s": HUB}, [asked], CALLBACK, NOW, 120.0) == []
    late = NOW + timedelta(days=8) - timedelta(hours=23)  # a renewal is due
    renewing = sub(requested_at=late - timedelta(seconds=90))  # asked, not verified yet
    assert [a.verb for a in plan({"s": HUB}, [renewing], CALLBACK, late, 60.0)] == ["renew"]
    assert plan({"s": HUB}, [renewing], CALLBACK, late, 120.0) == []
    leaving = sub("unsubscribing", requested_at=NOW - timedelta(seconds=90))
    assert [a.verb for a in plan({}, [leaving], CALLBACK, NOW, 60.0)] == ["drop"]
    assert plan({}, [leaving], CALLBACK, NOW, 120.0) == []


def test_verification_of_intent() -> None:
    assert verification(sub("requested"), "subscribe", HUB.topic, "c1") == "c1"
    assert verification(sub("active"), "subscribe", HUB.topic, "c2") == "c2"  # a renewal
    assert verification(sub("unsubscribing"), "unsubscribe", HUB.topic, "c3") == "c3"
    assert verification(sub("active"), "unsubscribe", HUB.topic, "c") is None  # not asked
    assert verification(sub("unsubscribing"), "subscribe", HUB.topic, "c") is None
    assert verification(sub("requested"), "subscribe", "https://other.example/", "c") is None
    assert verification(sub("requested"), "subscribe", HUB.topic, "") is None
    assert verification(sub("failed"), "subscribe", HUB.topic, "c") is None
    assert verification(None, "subscribe", HUB.topic, "c") is None


@pytest.mark.parametrize("at", [0, 65533, 65534, 65535, 65536, 131070, 199997])
@pytest.mark.parametrize("word", [b"hub", b"HUB", b"hUb"])
def test_hub_is_found_in_any_case_anywhere_even_across_pieces(at: int, word: bytes) -> None:
    body = bytearray(b"x" * 200_000)
    body[at : at + 3] = word
    assert hubs_module._mentions_hub(bytes(body))
    assert not hubs_module._mentions_hub(b"x" * 200_000)
    assert not hubs_module._mentions_hub(bytes(body[:at] + b"hu" + body[at + 3 :]))
