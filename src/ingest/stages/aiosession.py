"""The one aiohttp session a polling client's transport and direct lane share.

One job: `SharedSession` makes the session on first use (in the event loop,
as aiohttp asks) and closes it; `SessionTransport` is httpx-aiohttp's
transport on that session, closing it with the client whichever of the two
opened it.  The session's settings (limits, the guarded resolver, no cookie
jar of aiohttp's own) are transport.py's; what is sent on it, the lane's
(lane.py) and httpx's.  It is imported only when a client is made, with
aiohttp itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from httpx_aiohttp import AiohttpTransport

__all__ = ["SessionTransport", "SharedSession"]


class SharedSession:
    """One aiohttp session for the lane and the transport, made on first use (in the loop)."""

    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
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
