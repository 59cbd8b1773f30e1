"""Tests of the loopback test server itself (tests/feedserver.py), over real HTTP with httpx.

One job: show each server behaviour works, so fetcher tests can rely on it. It does not
test the ingest package.
"""

from __future__ import annotations

import gzip
import threading
import time

import httpx
import pytest

from feedserver import FeedServer

RSS = '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>\n'


def test_etag_304_keepalive_and_recording(feed_server: FeedServer) -> None:
    res = feed_server.put("/feed.xml", RSS)
    with httpx.Client() as client:
        first = client.get(feed_server.url("/feed.xml"), headers={"X-Probe": "1"})
        assert first.status_code == 200
        assert first.text == RSS
        assert first.headers["etag"] == res.etag and res.etag is not None
        assert first.headers["cache-control"] == "max-age=300"
        assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"
        second = client.get(feed_server.url("feed.xml"), headers={"If-None-Match": res.etag})
        assert second.status_code == 304
        assert second.content == b""
        assert second.headers["etag"] == res.etag
        assert client.get(feed_server.url("/nope")).status_code == 404

    assert feed_server.wait_idle()
    records = feed_server.requests_for("/feed.xml")
    assert [(r.method, r.status, r.outcome) for r in records] == [
        ("GET", 200, "ok"),
        ("GET", 304, "ok"),
    ]
    assert records[0].header("X-PROBE") == "1"
    assert records[1].headers["if-none-match"] == res.etag
    assert records[0].connection_id == records[1].connection_id  # keep-alive reuse
    assert feed_server.count("/feed.xml") == 2 and feed_server.count() == 3
    assert feed_server.last().status == 404
    feed_server.clear()
    assert feed_server.count() == 0


def test_if_modified_since_and_last_modified_changes(feed_server: FeedServer) -> None:
    first = feed_server.put("/a", RSS)
    assert first.last_modified is not None
    assert feed_server.put("/a", RSS).last_modified == first.last_modified  # same body
    with httpx.Client() as client:
        r = client.get(feed_server.url("/a"), headers={"If-Modified-Since": first.last_modified})
        assert r.status_code == 304
        changed = feed_server.put("/a", RSS + "<!-- v2 -->")
        assert changed.last_modified != first.last_modified
        assert changed.etag != first.etag
        r = client.get(feed_server.url("/a"), headers={"If-Modified-Since": first.last_modified})
        assert r.status_code == 200 and r.headers["last-modified"] == changed.last_modified

        feed_server.put("/bare", RSS, etag=False, last_modified=False, cache_control=None)
        r = client.get(feed_server.url("/bare"))
        assert not {"etag", "last-modified", "cache-control"} & set(r.headers)

        feed_server.put("/stubborn", RSS, ignore_conditional=True)
        etag = client.get(feed_server.url("/stubborn")).headers["etag"]
        again = client.get(feed_server.url("/stubborn"), headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.text == RSS


def test_gzip_when_accepted(feed_server: FeedServer) -> None:
    body = RSS * 50
    feed_server.put("/g", body)
    with httpx.Client() as client:
        r = client.get(feed_server.url("/g"), headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
        assert r.text == body
        plain = client.get(feed_server.url("/g"), headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.text == body
        head = client.head(feed_server.url("/g"), headers={"Accept-Encoding": "gzip"})
        assert head.content == b""
    assert feed_server.wait_idle()
    sent = feed_server.requests_for("/g")
    assert sent[0].bytes_sent == len(gzip.compress(body.encode(), mtime=0))
    assert sent[1].bytes_sent == len(body) and sent[2].bytes_sent == 0
    assert int(head.headers["content-length"]) == sent[0].bytes_sent


def test_redirect_chain(feed_server: FeedServer) -> None:
    feed_server.redirect("/old", "/older", status=301)
    feed_server.redirect("/older", feed_server.url("/moved"), status=302)
    feed_server.put("/moved", RSS, redirect_to="/final", redirect_status=308)
    feed_server.put("/final", RSS)
    with httpx.Client(follow_redirects=True) as client:
        r = client.get(feed_server.url("/old"))
    assert r.status_code == 200 and r.text == RSS
    assert [h.status_code for h in r.history] == [301, 302, 308]
    assert str(r.url) == feed_server.url("/final")


def test_error_statuses_with_retry_after(feed_server: FeedServer) -> None:
    feed_server.error("/busy", 429, "slow down", retry_after=120)
    feed_server.put(
        "/down", "", status=503, headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"}
    )
    feed_server.put("/boom", "oops", status=500)
    with httpx.Client() as client:
        busy = client.get(feed_server.url("/busy"))
        assert (busy.status_code, busy.headers["retry-after"], busy.text) == (
            429,
            "120",
            "slow down",
        )
        down = client.get(feed_server.url("/down"))
        assert down.status_code == 503 and down.headers["retry-after"].startswith("Wed")
        assert client.get(feed_server.url("/boom")).status_code == 500


def test_delay_and_trickle(feed_server: FeedServer) -> None:
    feed_server.put("/slow", RSS, delay=0.2)
    feed_server.put("/drip", RSS, trickle=(0.2, 4), gzip=False)
    with httpx.Client() as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(feed_server.url("/slow"), timeout=0.05)
        t0 = time.monotonic()
        with client.stream("GET", feed_server.url("/drip")) as r:
            assert r.status_code == 200
            pieces = list(r.iter_raw())
        assert time.monotonic() - t0 >= 0.15
        assert b"".join(pieces) == RSS.encode()


def test_hang_times_out_and_stop_is_prompt() -> None:
    server = FeedServer().start()
    server.put("/hang", RSS, hang=True)
    with httpx.Client(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get(server.url("/hang"))
    assert server.in_flight == 1
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 1.0
    rec = server.last("/hang")
    assert rec.outcome == "hang" and rec.status is None


def test_reset_is_a_client_error(feed_server: FeedServer) -> None:
    feed_server.put("/reset", RSS, reset=True)
    with httpx.Client() as client, pytest.raises(httpx.TransportError):
        client.get(feed_server.url("/reset"))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_stops_when_client_stops_reading(feed_server: FeedServer, chunked: bool) -> None:
    feed_server.put("/huge", huge_mib=1024, chunked=chunked)
    got = 0
    with httpx.Client() as client, client.stream("GET", feed_server.url("/huge")) as r:
        assert ("content-length" in r.headers) is not chunked
        if not chunked:
            assert r.headers["content-length"] == str(1024 * 1024 * 1024)
        for piece in r.iter_raw():
            got += len(piece)
            if got >= 1024 * 1024:
                break
    assert feed_server.wait_idle(timeout=3)
    rec = feed_server.last("/huge")
    assert rec.outcome == "client_gone"
    assert got <= rec.bytes_sent < 64 * 1024 * 1024


def test_peak_concurrency(feed_server: FeedServer) -> None:
    feed_server.put("/a", RSS, delay=0.2)
    feed_server.put("/b", RSS, delay=0.2)

    def fetch(path: str) -> None:
        httpx.get(feed_server.url(path))

    threads = [threading.Thread(target=fetch, args=(p,)) for p in ["/a", "/a", "/a", "/b"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert feed_server.peak_in_flight == 4
    assert feed_server.peak_in_flight_for("/a") == 3
    assert feed_server.peak_in_flight_for("/b") == 1
