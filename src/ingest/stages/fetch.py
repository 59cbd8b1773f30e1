"""Source + FetchState -> Fetched: the only module that talks to the network.

One injected `httpx.AsyncClient` does every request.  This module adds what a
polite, bounded poller needs on top of it: conditional GET (ETag and
Last-Modified), redirects followed by hand (bounded, loop-checked, a first-hop
301/308 reported), one deadline for the whole poll, a body cap counted after
decompression while streaming (the decoding is `decoding.py`'s, in bounded
steps, at most two codings), global and per-host concurrency limits,
`Retry-After` and `Cache-Control: max-age` read off the answer, and byte-
identical bodies recognised by hash so they are not parsed again.

Every connection passes the network guard (`netguard.py`): the client that
`make_client` builds refuses private, loopback, link-local and other
non-public addresses unless the operator allowed them, after DNS and on
every redirect hop, and connects to the very address it checked.  A refusal
is a `RefusedError` (kind `refused`).

Polls of one host start at least `settings: per_host_delay` (or its
`host_delays` entry) apart (`politeness.delay_for`): in this process by
itself, and across processes through the `slots` it is given (the
pipeline's, which the database hands out); after a 429 from a host the
polls of it queued here are not sent (`CooldownError`; other processes
learn it from the database).

A source's `headers:` (filled in from the environment, `envrefs.py`) go with
its requests, the User-Agent on every hop and the others only to the source's
own host; its `proxy:` is named to the client's `ProxyRouter` (transport.py).
A 403, 429 or 503 whose page is a bot-protection challenge, or such a page
served as 200, is a `BlockedError` (kind `blocked`, `challenge.py`).

The client itself (aiohttp's pool, the guard, proxies) is built by
transport.py.  It does not parse, decide schedules, or touch the database.
httpx errors are translated here into the `FetchError` family.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import re
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from urllib.parse import urlsplit

# httpx's package imports its command-line tool (click, rich, pygments: ~0.09 s of
# every start) whenever those happen to be installed; ingest never calls it, and
# without it httpx.main is a stub that says how to get it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402

from ingest import errors  # noqa: E402
from ingest.model import Fetched, FetchState, Settings, Source  # noqa: E402
from ingest.stages.challenge import SNIFF_BYTES, challenge_of  # noqa: E402
from ingest.stages.decoding import BodyDecoder  # noqa: E402
from ingest.stages.envrefs import redact  # noqa: E402
from ingest.stages.fetch_request import SourceRequest  # noqa: E402
from ingest.stages.netguard import Refused, cause_in  # noqa: E402
from ingest.stages.politeness import cooldown_seconds, delay_for, host_of  # noqa: E402
from ingest.stages.transport import PollingClient  # noqa: E402
from ingest.stages.urls import absolute_http_url  # noqa: E402

if TYPE_CHECKING:
    from ingest.stages.lane import LaneAnswer

__all__ = ["Fetcher", "Slots", "parse_retry_after"]

# (host, delay) -> seconds until this request's slot among every process's requests
Slots = Callable[[str, float], Awaitable[float]]
Reply: TypeAlias = (
    "httpx.Response | LaneAnswer"  # an answer, from httpx or from the client's direct lane
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_CHALLENGE_STATUSES = frozenset({403, 429, 503})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now_ts = time.time() if now is None else now
    return max(0.0, when.timestamp() - now_ts)


def _max_age(value: str | None) -> float | None:
    if not value:
        return None
    m = _MAX_AGE.search(value)
    return float(m.group(1)) if m else None


class Fetcher:
    """Polls sources through one shared client, within the concurrency limits."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        slots: Slots | None = None,
    ) -> None:
        self.client = client
        self._lane = client.lane if isinstance(client, PollingClient) else None
        self.settings = settings or Settings()
        self._clock = clock
        self._sleep = sleep  # waits out `per_host_delay` (tests pass one that moves `clock`)
        self._slots = slots  # shares `per_host_delay` with other processes; None: this one only
        self._global = asyncio.Semaphore(self.settings.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._spacing: dict[str, asyncio.Lock] = {}  # per host, for `per_host_delay`
        self._last_start: dict[str, float] = {}  # per host: when its last poll's request began
        self._cooling: dict[str, tuple[float, str]] = {}  # per host: (until, why), this process

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self.settings.per_host)
        return sem

    async def fetch(self, source: Source, state: FetchState | None = None) -> Fetched:
        """One poll of `source`; raises a `FetchError` subclass when it fails.

        The source's `headers:` and `proxy:` are filled in from the
        environment here (`envrefs`); every message of a failure has the
        values that came from it replaced by `***`.
        """
        state = state or FetchState()
        request = SourceRequest.of(source)
        # the server, as politeness counts it (cool-downs, spacing, the per-host limit)
        host = host_of(source.url)
        await self._space(host)
        started = self._clock()
        try:
            async with self._host_limit(host), self._global:
                # a 429 may have come since the pipeline asked the database (while this poll
                # waited for its turn, or before another's answer was recorded): not sent
                self._check_cooling(host)
                try:
                    async with asyncio.timeout(source.timeout):
                        fetched = await self._follow(source, state, request)
                except TimeoutError as e:
                    raise errors.FetchTimeoutError(
                        f"no complete answer within {source.timeout:g}s", url=source.url
                    ) from e
                except errors.HTTPStatusError as e:  # noted before the next poll takes the slot
                    self._note_cooling(host, source.key, e)
                    raise
        except errors.FetchError as e:
            if request.secrets:
                e.args = (redact(str(e), request.secrets),)
            raise
        elapsed = int((self._clock() - started) * 1000)
        return replace(fetched, elapsed_ms=elapsed)

    def _note_cooling(self, host: str, key: str, e: errors.HTTPStatusError) -> None:
        """Remember a 429 (or 503 with Retry-After): this process's polls of that host that
        are queued behind it are not sent (the database shares it with the others)."""
        seconds = cooldown_seconds(e.status, e.retry_after)
        if seconds is not None:
            until = self._clock() + seconds
            if until > self._cooling.get(host, (0.0, ""))[0]:
                self._cooling[host] = (until, f"HTTP {e.status} from {key}")

    def _check_cooling(self, host: str) -> None:
        if host not in self._cooling:
            return
        until, reason = self._cooling[host]
        left = until - self._clock()
        if left > 0:
            raise errors.CooldownError(
                f"not polled: {host} is cooling down for {left:.0f}s more ({reason})",
                host=host,
                seconds=left,
                reason=reason,
            )

    async def _space(self, host: str) -> None:
        """Wait until this process's last poll of `host` started at least its
        `per_host_delay` (or `host_delays` entry) ago, then for the host's slot among
        every process's requests (`slots`); this process's polls of one host queue in
        turn, so it holds one slot per host at a time."""
        delay = delay_for(self.settings, host)
        if delay <= 0:
            return
        lock = self._spacing.setdefault(host, asyncio.Lock())
        async with lock:
            last = self._last_start.get(host)
            wait = 0.0 if last is None else last + delay - self._clock()
            if wait > 0:
                await self._sleep(wait)
            if self._slots is not None:
                wait = await self._slots(host, delay)
                if wait > 0:
                    await self._sleep(wait)
            self._last_start[host] = self._clock()

    async def _follow(self, source: Source, state: FetchState, request: SourceRequest) -> Fetched:
        url = source.url
        seen = {url}
        moved_to: str | None = None
        home = (urlsplit(url).hostname or "").lower()
        for hop in range(self.settings.max_redirects + 1):
            headers = request.headers_for(url, home)
            if hop == 0 or moved_to is not None:
                # validators belong to the URL they came from; a permanent move keeps them
                if state.etag:
                    headers["If-None-Match"] = _validator(state.etag)
                if state.last_modified:
                    headers["If-Modified-Since"] = _validator(state.last_modified)
            try:
                async with self._send(url, headers, request.extensions) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("location")
                        if not location:
                            raise errors.HTTPStatusError(
                                f"HTTP {resp.status_code} without a Location header",
                                status=resp.status_code,
                                url=url,
                            )
                        target = absolute_http_url(location, url)
                        if target is None:
                            raise errors.FetchError(
                                f"redirect to a non-HTTP URL refused: {location.strip()}", url=url
                            )
                        if target in seen:
                            raise errors.HTTPStatusError(
                                f"redirect loop at {target}", status=resp.status_code, url=url
                            )
                        if hop == 0 and resp.status_code in _PERMANENT:
                            moved_to = target
                        seen.add(target)
                        url = target
                        continue
                    return await self._answer(source, state, url, resp, moved_to)
            except Refused as e:
                raise errors.RefusedError(str(e), url=url) from e
            except httpx.TransportError as e:  # TimeoutException included
                refusal = cause_in(e, lambda c: isinstance(c, Refused))
                if refusal is not None:
                    raise errors.RefusedError(str(refusal), url=url) from e
                if isinstance(e, httpx.TimeoutException) and _timed_out(e):
                    raise errors.FetchTimeoutError(
                        f"timed out talking to {_host(url)}: {e or type(e).__name__}", url=url
                    ) from e
                message = _network_message(url, e)
                if request.extensions:  # the proxy may be what failed: say it was in the way
                    message += " (through this source's proxy)"
                raise errors.NetworkError(message, url=url) from e
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise errors.FetchError(f"{type(e).__name__}: {e}", url=url) from e
        raise errors.HTTPStatusError(
            f"more than {self.settings.max_redirects} redirects", status=0, url=source.url
        )

    def _send(
        self, url: str, headers: dict[str, str | bytes], extensions: dict[str, Any]
    ) -> AbstractAsyncContextManager[Reply]:
        """One hop's GET: on the client's direct lane when it has one and the hop has no
        proxy (lane.py: the same request without httpx's objects), else through httpx."""
        lane = self._lane
        if lane is not None and not extensions:
            exchange = lane.get(url, headers)
            if exchange is not None:
                return exchange
        # httpx takes a bytes value under a str name (a validator that is not ASCII), though
        # its annotations name only all-str or all-bytes mappings
        sent = cast("dict[str, str]", headers)
        return self.client.stream("GET", _parsed(url), headers=sent, extensions=extensions)

    async def _answer(
        self,
        source: Source,
        state: FetchState,
        url: str,
        resp: Reply,
        moved_to: str | None,
    ) -> Fetched:
        status = resp.status_code
        h = resp.headers
        retry_after = parse_retry_after(h.get("retry-after"))
        common = {
            "source_key": source.key,
            "url": source.url,
            "final_url": url,
            "status": status,
            "moved_to": moved_to,
            "retry_after": retry_after,
            "max_age": _max_age(h.get("cache-control")),
            "link": ", ".join(h.get_list("link")) or None,  # a WebSub hub may be named here
        }
        if status == 304:
            return Fetched(
                **common,  # type: ignore[arg-type]
                not_modified=True,
                etag=h.get("etag") or state.etag,
                last_modified=h.get("last-modified") or state.last_modified,
                body_hash=state.body_hash,
            )
        if status >= 400 or status < 200:
            reason = resp.reason_phrase or ""
            if status in _CHALLENGE_STATUSES:
                vendor = challenge_of(status, h, await _body_start(resp, source.max_body, url))
                if vendor is not None:
                    raise _blocked(vendor, status, url, retry_after)
            raise errors.HTTPStatusError(
                f"HTTP {status} {reason}".strip(), status=status, url=url, retry_after=retry_after
            )
        declared = h.get("content-length")
        if (
            declared
            and declared.isdigit()
            and not h.get("content-encoding")
            and int(declared) > source.max_body
        ):
            raise errors.TooLargeError(
                f"body of {int(declared)} bytes is over the {source.max_body}-byte cap", url=url
            )
        body = await _read_body(resp, source.max_body, url)
        if _is_html(h.get("content-type"), body):
            vendor = challenge_of(status, h, body)
            if vendor is not None:
                raise _blocked(vendor, status, url, retry_after)
        digest = hashlib.sha256(body).hexdigest()
        unchanged = digest == state.body_hash
        return Fetched(
            **common,  # type: ignore[arg-type]
            content=b"" if unchanged else body,
            content_type=h.get("content-type"),
            etag=h.get("etag"),
            last_modified=h.get("last-modified"),
            body_hash=digest,
            unchanged=unchanged,
        )


def _validator(value: str) -> str | bytes:
    """A validator as it goes back to the server: as it came, or, when it is not ASCII (an
    ETag may hold any byte), its UTF-8 bytes, which httpx read it from (httpx would refuse
    the text; one read as Latin-1 then simply does not match, and the answer is a 200)."""
    return value if value.isascii() else value.encode("utf-8")


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """`url` parsed once for all its polls: httpx parses a URL given as text on every request
    (a tenth of an unchanged poll's CPU), and an `httpx.URL` is immutable.  An invalid URL
    raises `httpx.InvalidURL` every time, as httpx would (exceptions are not remembered)."""
    return httpx.URL(url)


def _blocked(vendor: str, status: int, url: str, retry_after: float | None) -> errors.BlockedError:
    who = vendor if vendor.startswith("a ") else f"{vendor} bot protection"
    return errors.BlockedError(
        f"blocked by {who}: HTTP {status} with a challenge page instead of the feed; the "
        "site does not let this poller through. Ask the publisher to allow it, or give the "
        "source headers: (User-Agent, Cookie) or a proxy: (docs/sources.md)",
        status=status,
        url=url,
        retry_after=retry_after,
    )


def _is_html(content_type: str | None, body: bytes) -> bool:
    if content_type and "html" in content_type.lower():
        return True
    start = body[:256].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


async def _body_start(resp: Reply, cap: int, url: str) -> bytes:
    """Up to `SNIFF_BYTES` of an error answer's body; nothing when it cannot be read."""
    if resp.is_stream_consumed:
        return resp.content[:SNIFF_BYTES]
    chunks: list[bytes] = []
    size = 0
    try:
        async with contextlib.aclosing(_decoded(resp, cap, url)) as pieces:
            async for piece in pieces:
                chunks.append(piece)
                size += len(piece)
                if size >= SNIFF_BYTES:
                    break
    except (errors.FetchError, httpx.HTTPError):
        pass  # the status says enough; a broken error page is no reason to say more
    return b"".join(chunks)[:SNIFF_BYTES]


async def _read_body(resp: Reply, cap: int, url: str) -> bytes:
    """The decoded body, in bounded steps with a turn of the event loop between them."""
    if resp.is_stream_consumed:  # built from bytes (httpx.MockTransport): read and decoded
        if len(resp.content) > cap:
            raise errors.TooLargeError(f"body passed the {cap}-byte cap", url=url)
        return resp.content
    return b"".join([piece async for piece in _decoded(resp, cap, url)])


async def _decoded(resp: Reply, cap: int, url: str) -> AsyncGenerator[bytes, None]:
    """The body's decoded pieces (`BodyDecoder`: bounded, capped at `cap`), with a turn of
    the event loop after each, which lets the poll's deadline fire inside a bomb."""
    decoder = BodyDecoder(resp.headers.get("content-encoding"), cap, url)
    async for raw in resp.aiter_raw():
        for piece in decoder.feed(raw):
            if piece:
                yield piece
            await asyncio.sleep(0)
    for piece in decoder.finish():
        yield piece
        await asyncio.sleep(0)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _timed_out(e: httpx.TimeoutException) -> bool:
    """False for the aiohttp connection errors (refused, reset, disconnected) that
    httpx-aiohttp reports as `httpx.ConnectTimeout`; aiohttp's real timeouts are
    `TimeoutError`s."""
    cause = e.__cause__
    return (
        cause is None
        or isinstance(cause, TimeoutError)
        or not type(cause).__module__.startswith("aiohttp")
    )


def _network_message(url: str, e: httpx.TransportError) -> str:
    text = str(e) or type(e).__name__
    lowered = text.lower()
    host = urlsplit(url).hostname or _host(url)
    reason = text[text.rindex("[") + 1 : text.rindex("]")] if "[" in text and "]" in text else text
    if any(s in lowered for s in _DNS_FAILURES):
        return f"cannot resolve {host} ({reason}); is this machine offline?"
    if "refused" in lowered or cause_in(e, lambda c: isinstance(c, ConnectionRefusedError)):
        return f"connection refused by {_host(url)}"
    # aiohttp's message for this is the repr of a half-read response
    if cause_in(e, lambda c: type(c).__name__ == "ServerDisconnectedError"):
        return f"{_host(url)} closed the connection before a complete answer"
    return f"cannot talk to {_host(url)}: {text}"


_DNS_FAILURES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated",
    "getaddrinfo",
)
