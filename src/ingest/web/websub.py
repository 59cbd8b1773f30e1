"""`ingest serve`'s WebSub callback: `/websub/{id}`, where hubs verify and push.

One job: answer HTTP for the subscriber side of WebSub (docs/deploying.md):

- GET is the hub's verification of intent (§5.3): the `hub.challenge` echoed
  (200, text/plain) when `hub.mode` and `hub.topic` match a subscription we
  asked for (`websub.verification`), which then becomes active for
  `hub.lease_seconds` (or, for an unsubscribe, is forgotten); 404 otherwise.
  `hub.mode=denied` records the hub's refusal and its `hub.reason`.
- POST is content distribution (§7): the body is read up to the source's
  `max_body` (413 past it), its `X-Hub-Signature` is checked with the
  subscription's secret (`websub.signature_ok`, constant time), and a signed
  body goes through the poll's stages (`push.receive`).  A bad or missing
  signature is logged, counted (`ingest status`) and nothing is stored, but
  the answer is the same 202 as for a good one: the spec allows it, and it
  tells someone guessing signatures nothing.  An unknown or no longer wanted
  subscription answers 410 Gone, which asks the hub to drop it.

The id in the path is random (websub.py), so the URLs cannot be enumerated.
Deciding is websub.py's, storing push.py's and the store's; this module
only speaks HTTP.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ingest.model import utcnow
from ingest.runtime import push
from ingest.stages import websub
from ingest.store import Store

__all__ = ["websub_routes"]

log = logging.getLogger("ingest.websub")
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PUSHABLE = frozenset({"active", "requested"})  # a hub may push right after it verified


def _text(body: str, status: int) -> Response:
    return PlainTextResponse(body, status_code=status, headers=_HEADERS)


def websub_routes(store: Store, parsing: push.PushParsing) -> list[Route]:
    """The callback routes over `store`; pushed bodies are parsed by `parsing` (here, or
    in a budgeted worker); a denied subscription is asked for again after the
    subscriber's default backoff (`websub.SubscriberTiming`)."""
    patience = websub.SubscriberTiming()
    path = websub.CALLBACK_PATH + "{sub_id}"

    def verify(request: Request) -> Response:  # plain function: Starlette's thread pool
        q = request.query_params
        sub = store.subscription(request.path_params["sub_id"])
        mode, topic = q.get("hub.mode", ""), q.get("hub.topic", "")
        now = utcnow()
        if mode == "denied":
            if sub is None or topic != sub.topic:
                return _text("no such subscription", 404)
            reason = q.get("hub.reason", "no reason given")[:500]
            store.subscription_denied(sub.id, reason, now, websub.retry_at(sub, now, patience))
            log.warning("%s: %s denied the subscription: %s", sub.source_key, sub.hub, reason)
            return _text("noted", 200)
        answer = websub.verification(sub, mode, topic, q.get("hub.challenge", ""))
        if sub is None or answer is None:
            return _text("no such subscription", 404)
        lease = q.get("hub.lease_seconds", "")
        seconds = int(lease) if lease.isascii() and lease.isdigit() and len(lease) < 10 else None
        store.subscription_verified(sub.id, mode, seconds, now)
        log.info(
            "%s: %s verified the %s (topic %s, lease %ss)",
            sub.source_key, sub.hub, mode, sub.topic, seconds,
        )  # fmt: skip
        return _text(answer, 200)

    async def distribute(request: Request) -> Response:
        sub = await run_in_threadpool(store.subscription, request.path_params["sub_id"])
        if sub is None or sub.state not in _PUSHABLE:
            return _text("no such subscription", 410)
        source = await run_in_threadpool(store.source, sub.source_key)
        if source is None:  # removed from the database since: nothing to read it for
            log.warning("push for %s, which the database does not know; ignored", sub.source_key)
            return _text("accepted", 202)
        cap = source.max_body
        body = await _body(request, cap)
        if body is None:
            return _text(f"the body is over {cap} bytes", 413)
        now = utcnow()
        if not websub.signature_ok(sub.secret, body, request.headers.get("x-hub-signature")):
            client = request.client.host if request.client else "?"
            log.warning(
                "%s: refused a push from %s: bad or missing X-Hub-Signature; nothing stored",
                sub.source_key, client,
            )  # fmt: skip
            await run_in_threadpool(store.push_refused, sub.id, now)
            return _text("accepted", 202)
        content_type = request.headers.get("content-type")
        await run_in_threadpool(push.receive, store, sub, source, body, content_type, now, parsing)
        return _text("accepted", 202)

    return [
        Route(path, verify, methods=["GET"]),
        Route(path, distribute, methods=["POST"]),
    ]


async def _body(request: Request, cap: int) -> bytes | None:
    """The request's body, or None as soon as it passes `cap` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
    return b"".join(parts)
