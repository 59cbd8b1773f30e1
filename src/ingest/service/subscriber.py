"""The subscriber's job in the scheduler and the dispatcher: subscribe, renew, unsubscribe.

One job: `Subscriber.step` (run every few seconds) reads the hubs the
sources advertise and the stored subscriptions, asks `websub.plan` what to do
now, and does it: a request to the hub (`websub_hub.hub_request`, through the
guarded client), recorded before it is sent (a hub may verify before it
answers) and marked failed, with a backoff, when the hub refuses it, cannot
be reached, or does not verify it within `settings: websub_verify_timeout`.
A source whose pushes stopped (lease lapsed, request failed, unsubscribed)
is made due at once, so its regular polling takes over without waiting out
the long safety-net interval (`settings: push_every`).
Without `settings: websub_callback` nothing is subscribed, and existing
subscriptions are ended.  The rules are websub.py's; the callback that
completes each request is `ingest serve`'s (web/websub.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ingest import errors
from ingest.model import Clock, Settings, utcnow
from ingest.stages import websub
from ingest.stages.websub import Action, SubscriberTiming, Subscription
from ingest.stages.websub_hub import hub_request

if TYPE_CHECKING:
    import httpx

    from ingest.store import Store

__all__ = ["Subscriber"]

log = logging.getLogger("ingest.websub")
Run = Callable[..., Awaitable[Any]]
_AT_ONCE = 8  # hub requests in flight at a time


class Subscriber:
    """Keeps the subscriptions in step with the sources that advertise a hub."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        run: Run,
        *,
        timing: SubscriberTiming | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.client = client
        self.run = run  # where the caller keeps its database work (a thread)
        self.timing = timing or SubscriberTiming()
        self.clock = clock
        # the sources pushed at the last step; None before the first, when any source
        # with a subscription may have been pushed before this process started
        self._pushed: set[str] | None = None
        self._slots = asyncio.Semaphore(_AT_ONCE)

    async def step(self, settings: Settings) -> list[Action]:
        """Do what `websub.plan` says now; returns the actions taken."""
        callback = settings.websub_callback
        wanted = await self.run(self.store.adverts) if callback else {}
        subs: list[Subscription] = await self.run(self.store.subscriptions)
        now = self.clock()
        actions = websub.plan(wanted, subs, callback, now, settings.websub_verify_timeout)
        await asyncio.gather(*(self._act(a, callback, settings, now) for a in actions))
        pushed = {s.source_key for s in subs if websub.pushed(s, now)}
        pushed -= {a.source_key for a in actions if a.verb in ("unsubscribe", "expire", "drop")}
        before = self._pushed
        if before is None:  # a restart: a lease may have ended while no process watched
            before = {s.source_key for s in subs}
        lapsed = sorted(before - pushed)
        if lapsed:
            log.info("no longer pushed, polled from now on: %s", ", ".join(lapsed))
            await self.run(self.store.resume_polling, lapsed, now)
        self._pushed = pushed
        return actions

    async def _act(
        self, action: Action, callback: str | None, settings: Settings, now: datetime
    ) -> None:
        sub = action.subscription
        try:
            if action.verb == "subscribe":
                await self._subscribe(action, callback, settings, now)
            elif action.verb == "renew" and sub is not None:
                await self._send(replace(sub, state="active"), "subscribe", settings, now)
            elif action.verb == "unsubscribe" and sub is not None:
                await self._send(replace(sub, state="unsubscribing"), "unsubscribe", settings, now)
            elif action.verb == "expire" and sub is not None:
                log.warning("%s: %s", sub.source_key, action.reason)
                await self._failed(sub, action.reason, now, "failed")
            elif action.verb == "drop" and sub is not None:
                await self.run(self.store.forget_subscription, sub.id)
        except errors.StoreError as e:
            log.warning("%s: cannot record the %s: %s", action.source_key, action.verb, e)

    async def _subscribe(
        self, action: Action, callback: str | None, settings: Settings, now: datetime
    ) -> None:
        sub = action.subscription
        if sub is None:
            if action.advert is None or callback is None:
                return
            sub_id = secrets.token_urlsafe(24)
            sub = Subscription(
                id=sub_id, source_key=action.source_key, hub=action.advert.hub,
                topic=action.advert.topic, callback=websub.callback_url(callback, sub_id),
                secret=websub.new_secret(), state="requested",
            )  # fmt: skip
        await self._send(replace(sub, state="requested"), "subscribe", settings, now)

    async def _send(self, sub: Subscription, mode: str, settings: Settings, now: datetime) -> None:
        """Record the request, then send it; a failure is recorded with its backoff."""
        await self.run(self.store.subscription_requested, sub, now)
        form = {
            "hub.callback": sub.callback,
            "hub.mode": mode,
            "hub.topic": sub.topic,
            "hub.lease_seconds": str(websub.LEASE_REQUESTED),
        }
        if mode == "subscribe":
            form["hub.secret"] = sub.secret
        try:
            async with self._slots:
                await hub_request(self.client, sub.hub, form, max_redirects=settings.max_redirects)
        except errors.FetchError as e:
            log.warning("%s: %s to %s failed: %s", sub.source_key, mode, sub.hub, e)
            if mode == "unsubscribe":  # nothing more to ask: pushes to it will get 410
                await self.run(self.store.forget_subscription, sub.id)
            else:
                await self._failed(sub, f"{mode} request failed: {e}", now, sub.state)
            return
        log.info("%s: asked %s to %s (topic %s)", sub.source_key, sub.hub, mode, sub.topic)

    async def _failed(self, sub: Subscription, error: str, now: datetime, state: str) -> None:
        state = "active" if state == "active" else "failed"  # a renewal keeps its lease
        retry = websub.retry_at(sub, now, self.timing)
        await self.run(self.store.subscription_failed, sub.id, error, now, retry, state)
