"""The HTTP client ingest polls with: aiohttp's pool under httpx's API, the network guard, proxies.

One job: build the one `httpx.AsyncClient` a process polls with
(`make_client`) and the transports under it.  `GuardedTransport` runs the
network guard (`netguard.py`) before every request; `ProxyRouter` sends a
request whose `ingest_proxy` extension names a proxy (a source's `proxy:`)
through a transport for that proxy, built on first use and closed with the
client:

- `http://` proxies go through aiohttp (`httpx-aiohttp`, aiohttp's own proxy
  support: a plain request for an http target, a CONNECT tunnel for https);
- `socks5://` and `socks5h://` proxies through httpx's own transport
  (httpcore with `socksio`).

Either way the guard still decides about the *target*: the name is resolved
and checked here, and the request goes to the checked address (the `Host`
header and the TLS server name keep the name), so neither a proxy nor its
DNS can take a poll to an address the guard refuses.  The proxy's own address
is the editor's explicit choice and is not checked.  It does not follow
redirects, read bodies or translate errors (fetch.py does).
"""

from __future__ import annotations

import base64
import ssl
import sys
from collections.abc import Callable
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, Final

# httpx's package imports its command-line tool (click, rich, pygments: ~0.09 s of
# every start) whenever those happen to be installed; ingest never calls it, and
# without it httpx.main is a stub that says how to get it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402

from ingest.model import Settings  # noqa: E402
from ingest.stages.netguard import NetGuard, guarded_resolver  # noqa: E402

if TYPE_CHECKING:  # aiohttp (0.15 s) is imported when the first client is made, not before
    import aiohttp

    from ingest.stages.aiosession import SharedSession
    from ingest.stages.lane import DirectLane

__all__ = [
    "ACCEPT",
    "PROXY_EXTENSION",
    "GuardedTransport",
    "PollingClient",
    "ProxyRouter",
    "make_client",
]

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
PROXY_EXTENSION: Final = "ingest_proxy"  # request extension: the proxy URL to go through


def make_client(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    guard: NetGuard | None = None,
    lane: bool = True,
) -> PollingClient:
    """The client ingest uses: aiohttp's connection pool under httpx's API, guarded.

    httpx's own pool slows down badly past a few dozen concurrent requests
    (docs/performance.md); the `httpx-aiohttp` transport keeps httpx's API
    with aiohttp's pool.  Tests inject `httpx.MockTransport` or a plain
    `httpx.AsyncHTTPTransport` instead.

    `guard` (default: `NetGuard.from_settings`, i.e. `allow_networks` plus
    `INGEST_ALLOW_NETWORKS`) decides which addresses may be connected to; a
    malformed `INGEST_ALLOW_NETWORKS` raises `ConfigError`.  An injected
    `httpx.MockTransport` opens no socket and is left unguarded (and without
    proxies) unless a `guard` is given.

    The production client (no `transport` given) sends a poll's plain GETs
    (no proxy) through its direct lane (`lane.DirectLane`: the same request on
    the same aiohttp session, without httpx's objects around it); `lane=False`
    sends them through httpx like every other request (the tests compare the two).
    """
    shared: SharedSession | None = None
    if transport is None:
        from ingest.stages.aiosession import SharedSession

        guard = guard or NetGuard.from_settings(settings)
        shared = SharedSession(_session_maker(settings, guard))
        direct = GuardedTransport(_aiohttp_transport(shared), guard, resolves=True)
        transport = ProxyRouter(direct, guard, settings)
    elif guard is not None or not isinstance(transport, httpx.MockTransport):
        guard = guard or NetGuard.from_settings(settings)
        transport = ProxyRouter(GuardedTransport(transport, guard, resolves=False), guard, settings)
    client = PollingClient(
        transport=transport,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        },
        follow_redirects=False,
        timeout=None,  # the whole-poll deadline is enforced by Fetcher
    )
    if shared is not None and guard is not None and lane:
        from ingest.stages.lane import DirectLane

        client.lane = DirectLane(client, shared, guard)
    return client


class _Cookies(httpx.Cookies):
    """httpx's cookie store, which does not look at a response that sets no cookie.

    httpx hands every response to `extract_cookies`, which wraps it and its
    request for `http.cookiejar` (a `urllib` request, the headers copied into an
    `email` message) before the jar finds no `Set-Cookie` in it: about a tenth
    of an unchanged poll's CPU.  The jar reads only `Set-Cookie` and
    `Set-Cookie2`, so skipping a response without either changes nothing.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class PollingClient(httpx.AsyncClient):
    """`httpx.AsyncClient` whose cookie store is `_Cookies` (same jar, same behaviour), with
    the direct lane for a poll's plain GETs when `make_client` built its transport."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._polling_cookies = _Cookies(super().cookies.jar)
        self.lane: DirectLane | None = None

    @property
    def cookies(self) -> httpx.Cookies:
        return self._polling_cookies

    @cookies.setter
    def cookies(
        self, cookies: httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]]
    ) -> None:
        self._polling_cookies = _Cookies(httpx.Cookies(cookies).jar)


def _session_maker(
    settings: Settings, guard: NetGuard | None
) -> Callable[[], aiohttp.ClientSession]:
    """aiohttp's pool; names resolved through the guard, or (behind a proxy) by it only."""
    import aiohttp

    def session() -> aiohttp.ClientSession:  # called on the first request, in the loop
        connector = aiohttp.TCPConnector(
            limit=settings.concurrency,
            limit_per_host=settings.per_host,
            ttl_dns_cache=300,  # caches only what the guarded resolver let through
            enable_cleanup_closed=False,
            **({"resolver": guarded_resolver(guard)} if guard is not None else {}),
        )
        # cookies are httpx's to keep (its jar, its Cookie header): aiohttp's own jar would
        # keep them a second time and filter them again for every request
        return aiohttp.ClientSession(
            connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
        )

    return session


def _aiohttp_transport(shared: SharedSession, proxy: str | None = None) -> httpx.AsyncBaseTransport:
    """httpx's transport over aiohttp's pool (the session `shared` holds)."""
    from ingest.stages.aiosession import SessionTransport

    # The transport's own SSL context is only for a session it would build itself; ours is
    # built above and verifies with aiohttp's default context (the system's CAs, or
    # SSL_CERT_FILE).  Left to itself, httpx-aiohttp would load certifi's CA bundle into a
    # context nothing uses, 25 ms of every start: it gets an empty one instead, which trusts
    # nothing and so fails closed should it ever be used.
    unused = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return SessionTransport(shared, proxy=_http_proxy(proxy) if proxy else None, verify=unused)


def _http_proxy(url: str) -> httpx.Proxy:
    """An HTTP proxy whose credentials go in a Proxy-Authorization header of our own (the
    transport's way with `httpx.Proxy.auth` uses an aiohttp API that warns it is going)."""
    parsed = httpx.URL(url)
    if not (parsed.username or parsed.password):
        return httpx.Proxy(parsed)
    token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode("ascii")
    return httpx.Proxy(
        parsed.copy_with(username=None, password=None),
        headers={"Proxy-Authorization": f"Basic {token}"},
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """Runs the network guard before `inner` sends a request.

    `resolves=True` means `inner` resolves names through `guarded_resolver`
    (the aiohttp transport): only the scheme and IP-literal hosts, which
    aiohttp connects to without a lookup, are checked here.  `resolves=False`
    (any other transport, and every proxy): the name is resolved and checked
    here, and the request goes to the first allowed address, keeping the
    `Host` header and the TLS server name, so nothing is looked up twice.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: NetGuard, *, resolves: bool) -> None:
        self.inner = inner
        self.guard = guard
        self.resolves = resolves

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = self.guard.check_url(str(request.url))
        if host is not None and not self.resolves:
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            address = (await self.guard.resolve(host, port))[0]
            request = httpx.Request(
                request.method,
                request.url.copy_with(host=address),
                headers=request.headers,  # Host: still the name
                stream=request.stream,
                extensions={**request.extensions, "sni_hostname": host},
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _PlainProxyAuth(httpx.AsyncBaseTransport):
    """Adds the HTTP proxy's Proxy-Authorization to plain http requests, which aiohttp sends
    to the proxy as they are (an https request's CONNECT gets it from the proxy's headers,
    and the request inside the tunnel, which the target reads, must not have it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, value: str) -> None:
        self.inner = inner
        self.value = value

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":
            request.headers["Proxy-Authorization"] = self.value
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request direct, or through the proxy its `ingest_proxy` extension names."""

    def __init__(self, direct: httpx.AsyncBaseTransport, guard: NetGuard, settings: Settings):
        self.direct = direct
        self.guard = guard
        self.settings = settings
        self._proxied: dict[str, httpx.AsyncBaseTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = request.extensions.get(PROXY_EXTENSION)
        if not proxy:
            return await self.direct.handle_async_request(request)
        transport = self._proxied.get(proxy)
        if transport is None:
            transport = self._proxied[proxy] = self._through(proxy)
        return await transport.handle_async_request(request)

    def _through(self, proxy: str) -> httpx.AsyncBaseTransport:
        inner: httpx.AsyncBaseTransport
        if proxy.startswith("socks"):
            inner = httpx.AsyncHTTPTransport(proxy=proxy, trust_env=False)
        else:
            from ingest.stages.aiosession import SharedSession

            inner = _aiohttp_transport(SharedSession(_session_maker(self.settings, None)), proxy)
            auth = _http_proxy(proxy).headers.get("Proxy-Authorization")
            if auth is not None:
                inner = _PlainProxyAuth(inner, auth)
        return GuardedTransport(inner, self.guard, resolves=False)

    async def aclose(self) -> None:
        proxied, self._proxied = list(self._proxied.values()), {}
        for transport in proxied:
            await transport.aclose()
        await self.direct.aclose()
