"""The requests a WebSub subscriber sends to a hub: subscribe and unsubscribe (§5.1).

One job: `hub_request` POSTs one form-encoded request (`hub.callback`,
`hub.mode`, `hub.topic`, `hub.lease_seconds`, `hub.secret`) through the
client ingest polls with, so a hub's address passes the same network guard
as a feed's (netguard.py: private and loopback addresses are refused unless
`allow_networks` lets them through), within one deadline, following up to
`max_redirects` 307/308 redirects (the form is sent again).  A 2xx (the
spec's 202 Accepted) is success: the hub verifies the intent later, at the
callback.  Anything else raises a `FetchError` (`HTTPStatusError` for a
refusal, with the start of the hub's answer).  It decides nothing about
when to ask (websub.py) and records nothing (websub_service.py).
"""

from __future__ import annotations

import asyncio

import httpx

from ingest import errors
from ingest.stages.netguard import Refused, cause_in
from ingest.stages.urls import absolute_http_url

__all__ = ["hub_request"]

_KEEP_METHOD = frozenset({307, 308})
_SNIPPET = 200  # characters of a hub's refusal kept in the error


async def hub_request(
    client: httpx.AsyncClient,
    hub: str,
    form: dict[str, str],
    *,
    timeout: float = 20.0,
    max_redirects: int = 5,
) -> int:
    """POST `form` to `hub`; the hub's 2xx status, or a `FetchError`."""
    url = hub
    try:
        async with asyncio.timeout(timeout):
            for _ in range(max_redirects + 1):
                resp = await client.post(url, data=form)
                if resp.status_code in _KEEP_METHOD and resp.headers.get("location"):
                    target = absolute_http_url(resp.headers["location"], url)
                    if target is None:
                        raise errors.FetchError("the hub redirected to a non-HTTP URL", url=url)
                    url = target
                    continue
                if 200 <= resp.status_code < 300:
                    return resp.status_code
                text = " ".join(resp.text[:_SNIPPET].split())
                raise errors.HTTPStatusError(
                    f"the hub answered HTTP {resp.status_code}" + (f": {text}" if text else ""),
                    status=resp.status_code,
                    url=url,
                )
            raise errors.FetchError(f"more than {max_redirects} redirects", url=hub)
    except TimeoutError as e:
        raise errors.FetchTimeoutError(
            f"the hub did not answer within {timeout:g}s", url=url
        ) from e
    except Refused as e:
        raise errors.RefusedError(str(e), url=url) from e
    except httpx.HTTPError as e:
        refusal = cause_in(e, lambda c: isinstance(c, Refused))
        if refusal is not None:
            raise errors.RefusedError(str(refusal), url=url) from e
        raise errors.NetworkError(f"cannot reach the hub: {e or type(e).__name__}", url=url) from e
    except httpx.InvalidURL as e:
        raise errors.FetchError(f"not a usable hub URL: {e}", url=url) from e
