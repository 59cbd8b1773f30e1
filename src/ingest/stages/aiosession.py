"""The one aiohttp session a polling client's transport and direct lane share.

One job: `SharedSession` makes the session on first use (in the event loop,
as aiohttp asks) and closes it; `SessionTransport` is httpx-aiohttp's
transport on that session, closing it with the client whichever of the two
opened it.  The session's settings (limits, the guarded resolver, no cookie
jar of aiohttp's own) are transport.py's; what is sent on it, the lane's
(lane.py) and httpx's.  It is imported only when a client is made, with
aiohttp itself, and it imports aiohttp with the CA loading of aiohttp's default
SSL contexts put off until a TLS connection may need it: `SharedSession.get`
loads them before it hands the session out, unless its caller says the request
is plain http (the lane does; httpx's transport asks once, for any request).
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

__all__ = ["SessionTransport", "SharedSession"]


class _CertLoader:
    """The CAs of the SSL contexts aiohttp makes when it is imported, loaded when a TLS
    connection first needs them.

    aiohttp's connector module makes two default contexts at import, and each loads
    the system's CA bundle (`set_default_verify_paths`): 40-60 ms of CPU apiece here,
    in every run, whether or not any source is https.  During our import of aiohttp
    that call is only noted.  `ready()` makes it, for each noted context that
    verifies, before `SharedSession.get` hands the session out for anything but a
    plain-http request, so no TLS connection is ever made with a context whose CAs
    are not loaded.  The unverified context (CERT_NONE, which
    ingest never uses) gets none: it would never look at them.  If aiohttp was
    imported before (a test, a library), its contexts are complete already.
    """

    def __init__(self) -> None:
        self._noted: list[ssl.SSLContext] = []

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Note, not run, `set_default_verify_paths` of the contexts made in the block."""
        noted = self._noted
        own = ssl.SSLContext.__dict__.get("set_default_verify_paths")  # else the C base's

        def note(context: ssl.SSLContext) -> None:
            noted.append(context)

        ssl.SSLContext.set_default_verify_paths = note  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            if own is None:
                del ssl.SSLContext.set_default_verify_paths
            else:
                ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]

    def ready(self) -> None:
        """Load the CAs of every noted context that verifies (at once after the first time)."""
        if self._noted:
            noted, self._noted = self._noted, []
            for context in noted:
                if context.verify_mode != ssl.CERT_NONE:
                    context.set_default_verify_paths()


_certs = _CertLoader()
with _certs.deferring() if "aiohttp" not in sys.modules else nullcontext():
    import aiohttp

from httpx_aiohttp import AiohttpTransport  # noqa: E402


class SharedSession:
    """One aiohttp session for the lane and the transport, made on first use (in the loop)."""

    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._session: aiohttp.ClientSession | None = None

    def get(self, *, tls: bool = True) -> aiohttp.ClientSession:
        """The session, for a request that may make a TLS connection (an https URL, a
        proxy's tunnel: aiohttp's default context gets its CAs first) or, with
        `tls=False`, for a plain-http request with no proxy."""
        if tls:
            _certs.ready()
        if self._session is None:
            self._session = self._make()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class SessionTransport(AiohttpTransport):
    """httpx-aiohttp's transport on a `SharedSession`, which it closes (whoever opened it)."""

    def __init__(self, shared: SharedSession, **kwargs: Any) -> None:
        super().__init__(client=shared.get, **kwargs)
        self.shared = shared

    async def aclose(self) -> None:
        await self.shared.aclose()
