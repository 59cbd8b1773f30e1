"""The direct lane: a poll's plain GET sent straight to aiohttp's pool, without httpx's objects.

One job: send one hop of a poll (a GET with no proxy) on the aiohttp session
under the client that `transport.make_client` builds, exactly as httpx's
client over the `httpx-aiohttp` transport sends it, and hand back the answer
with the few attributes fetch.py reads (`LaneAnswer`):

- the same request: the client's headers merged with the hop's as httpx
  merges them (lower-case names, `host` first, then the client's, then the
  hop's, a `cookie` from the client's jar last), the URL as httpx normalises
  it, the same aiohttp call (no redirects, no decompression, no timeouts of
  aiohttp's own: the poll's deadline is fetch.py's);
- the same guard: `NetGuard.check_url` before the request, as
  `transport.GuardedTransport` runs it (names are resolved through the
  guarded resolver of the session itself);
- the same answer: status, reason phrase, headers (a repeated header's values
  joined by ", ", decoded as httpx decodes them), the raw body in the same
  16 KiB pieces, cookies set by the answer kept in the client's jar;
- the same errors: aiohttp's exceptions become httpx's with the transport's
  own mapping (`map_aiohttp_exceptions`), so fetch.py translates them once.

Why: building httpx's `Request` and `Response` around each aiohttp request
(header merging, cookie merging, the transport chain, the stream wrappers)
was more than half of an unchanged poll's CPU in the event loop
(docs/performance.md).  A hop whose headers are not all ASCII goes through
httpx as before (`LaneAnswer` is not made; httpx decides what it accepts).
tests/test_lane.py sends the same polls both ways and compares what the
server received and what the poll came to.  This module follows no redirect,
reads no body into memory and translates no error into ingest's own
(fetch.py does all three); it opens no session of its own (aiosession.py's
`SharedSession` holds the one the transport uses too).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final

import aiohttp
import httpx
import yarl
from httpx_aiohttp.transport import map_aiohttp_exceptions

from ingest.stages.netguard import NetGuard

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

    from ingest.stages.aiosession import SharedSession

__all__ = ["CHUNK", "DirectLane", "LaneAnswer"]

CHUNK: Final = 16 * 1024  # the raw body's pieces, as httpx-aiohttp reads them
# what httpx-aiohttp passes for a client without timeouts (the poll's deadline is fetch.py's)
_NO_TIMEOUT: Final = aiohttp.ClientTimeout(sock_connect=None, sock_read=None, connect=None)


class _Headers:
    """An answer's headers as `httpx.Headers` reads them: by any case, a repeated header's
    values joined by ", ".  All-ASCII headers (nearly every answer) are read from aiohttp's
    own multidict; any other byte makes it `httpx.Headers` itself, whose decoding (ASCII,
    else UTF-8, else Latin-1 for the whole set) differs from aiohttp's."""

    __slots__ = ("_h",)

    def __init__(self, h: CIMultiDictProxy[str]) -> None:
        self._h = h

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self._h.getall(key, None)
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def get_list(self, key: str) -> list[str]:
        return list(self._h.getall(key, ()))

    def __contains__(self, key: object) -> bool:
        return key in self._h


class LaneAnswer:
    """The answer to a hop sent by the lane: what fetch.py reads of an `httpx.Response`."""

    __slots__ = ("_response", "headers", "reason_phrase", "status_code")
    is_stream_consumed: Final = False  # the body is always streamed here

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status_code = response.status
        reason = response.reason
        self.reason_phrase = (
            reason.encode().decode("ascii", errors="ignore")
            if reason
            else httpx.codes.get_reason_phrase(response.status)
        )
        raw = response.raw_headers
        if all(name.isascii() and value.isascii() for name, value in raw):
            self.headers: _Headers | httpx.Headers = _Headers(response.headers)
        else:
            self.headers = httpx.Headers(list(raw))

    @property
    def content(self) -> bytes:  # fetch.py reads it only of a consumed stream: never here
        raise httpx.ResponseNotRead()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it came off the wire (still encoded), in pieces of at most `CHUNK`."""
        with map_aiohttp_exceptions():
            async for piece in self._response.content.iter_chunked(CHUNK):
                yield piece


class _Exchange:
    """`async with lane.get(...) as answer`: the request on entry, the response closed on exit
    (as httpx's `client.stream` closes it, through the transport's mapping)."""

    __slots__ = ("_headers", "_lane", "_response", "_target")

    def __init__(self, lane: DirectLane, target: _Target, headers: dict[str, str]) -> None:
        self._lane = lane
        self._target = target
        self._headers = headers
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> LaneAnswer:
        lane, target = self._lane, self._target
        lane.guard.check_url(target.text)
        session = lane.session.get(tls=target.tls)
        with map_aiohttp_exceptions():
            response = await session.request(
                "GET",
                target.aiohttp_url,
                headers=self._headers,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=_NO_TIMEOUT,
            )
        try:
            if "set-cookie" in response.headers or "set-cookie2" in response.headers:
                lane.keep_cookies(target, self._headers, response)
            answer = LaneAnswer(response)
        except BaseException:  # no `async with` body, so no __aexit__: let the connection go
            response.release()
            raise
        self._response = response
        return answer

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response, self._response = self._response, None
        if response is not None:
            with map_aiohttp_exceptions():
                await response.__aexit__(None, None, None)


class _Target:
    """A URL as httpx normalises it, and as aiohttp takes it (built once per URL's text).

    An invalid URL raises `httpx.InvalidURL` every time, as httpx would (an exception is
    not remembered), and fetch.py reports it as it reports httpx's."""

    __slots__ = ("aiohttp_url", "host", "httpx_url", "text", "tls")

    def __init__(self, text: str) -> None:
        url = self.httpx_url = httpx.URL(text)
        self.text = str(url)
        self.tls = url.scheme != "http"  # the session's TLS context needs its CAs first
        self.host = url.netloc.decode("ascii")  # httpx's Host header
        try:
            self.aiohttp_url: yarl.URL | str = yarl.URL(self.text)
        except ValueError:  # aiohttp raises its own error for it, which the mapping translates
            self.aiohttp_url = self.text


@functools.lru_cache(maxsize=4096)  # by the text: an httpx.URL hashes its text made anew
def _target(url: str) -> _Target:
    return _Target(url)


class DirectLane:
    """Sends the plain GETs of the client it belongs to (`PollingClient.lane`)."""

    def __init__(self, client: httpx.AsyncClient, session: SharedSession, guard: NetGuard) -> None:
        self.client = client
        self.session = session
        self.guard = guard
        self._base: tuple[list[tuple[bytes, bytes]], dict[str, str]] | None = None

    def get(self, url: str, headers: Mapping[str, str | bytes]) -> _Exchange | None:
        """The hop's exchange to `url`, or None when it must go through httpx (a header
        that is not ASCII text)."""
        merged = self._client_headers()
        for name, value in headers.items():
            if not (isinstance(value, str) and value.isascii() and name.isascii()):
                return None
            key = name.lower()
            merged.pop(key, None)  # httpx's merge: a header the hop sets moves to the end
            merged[key] = value
        target = _target(url)
        merged = {"host": target.host, **merged} if "host" not in merged else merged
        cookies = self.client.cookies
        if cookies.jar and "cookie" not in merged:
            merged = self._with_cookie(target, merged, cookies)
        return _Exchange(self, target, merged)

    def _client_headers(self) -> dict[str, str]:
        """A copy of the client's headers with lower-case names (remembered while unchanged)."""
        raw = self.client.headers.raw
        base = self._base
        if base is None or base[0] != raw:
            merged: dict[str, str] = {}
            for name, value in self.client.headers.multi_items():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            base = self._base = (raw, merged)
        return dict(base[1])

    def _with_cookie(
        self, target: _Target, headers: dict[str, str], cookies: httpx.Cookies
    ) -> dict[str, str]:
        """The jar's `Cookie` for this URL, as httpx adds it (only when the hop has none)."""
        request = httpx.Request("GET", target.httpx_url, headers=headers)
        cookies.set_cookie_header(request)
        value = request.headers.get("cookie")
        return {**headers, "cookie": value} if value is not None else headers

    def keep_cookies(
        self, target: _Target, sent: dict[str, str], response: aiohttp.ClientResponse
    ) -> None:
        """The answer's `Set-Cookie`s into the client's jar, as httpx keeps them."""
        request = httpx.Request("GET", target.httpx_url, headers=sent)
        answer = httpx.Response(
            response.status, headers=list(response.raw_headers), request=request
        )
        self.client.cookies.extract_cookies(answer)
