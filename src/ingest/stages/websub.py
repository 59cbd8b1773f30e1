"""WebSub's rules for a subscriber (W3C Recommendation), as pure functions.

One job: decide, from values, what the subscriber does and answers:

- `plan` compares the sources that advertise a hub (`Advert`, recorded at
  their polls) with the stored `Subscription`s and says what to do now:
  subscribe, renew before the lease ends, unsubscribe (a source removed,
  disabled, moved to another hub, or `websub_callback` unset), give up on a
  request the hub did not verify within `websub_verify_timeout`, or try a
  failed one again after a backoff;
- `verification` answers a hub's verification of intent (§5.3): the
  challenge when the mode and topic match a subscription we asked for, else
  None (answered 404);
- `signature_ok` checks a content distribution's `X-Hub-Signature` (§7.1:
  HMAC with sha1, sha256, sha384 or sha512, compared in constant time);
- `push_status` and `push_trouble` say what a stored subscription comes to
  for the people who run ingest (`ingest status` and the `/status` page show
  them; `pushed` is its "subscribed");
- `renew_at`, `retry_after`, `callback_url`, `new_secret` and `pushed`
  are the small rules those use.

It does no I/O: the hub requests are `websub_hub.py`'s, the table is
`store/subscriptions.py`'s, the scheduler's job is `service/subscriber.py`'s
and the callback routes are `web/websub.py`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from ingest.model import Advert

__all__ = [
    "ALGORITHMS",
    "CALLBACK_PATH",
    "LEASE_REQUESTED",
    "PUSH_WORDS",
    "Action",
    "PushStatus",
    "SubscriberTiming",
    "Subscription",
    "callback_url",
    "new_secret",
    "plan",
    "push_status",
    "push_trouble",
    "pushed",
    "renew_at",
    "retry_after",
    "retry_at",
    "signature_ok",
    "verification",
]

CALLBACK_PATH: Final = "/websub/"  # `ingest serve` answers hubs under websub_callback + this
LEASE_REQUESTED: Final = 10 * 86400  # hub.lease_seconds asked for; the hub decides
ALGORITHMS: Final = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

State = Literal["requested", "active", "unsubscribing", "failed", "denied"]
PushStatus = Literal["subscribed", "pending", "lapsed", "failed", "denied", "unsubscribing"]
PUSH_WORDS: Final[Mapping[PushStatus, str]] = {
    "subscribed": "subscribed",
    "pending": "pending verification",
    "lapsed": "lease ended, renewing",
    "failed": "failed",
    "denied": "denied by the hub",
    "unsubscribing": "unsubscribing",
}  # `push_status` in words, for pages
Verb = Literal["subscribe", "renew", "unsubscribe", "expire", "drop"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """One row of the `subscriptions` table (docs/database.md)."""

    id: str  # random, unguessable: the callback URL's last segment
    source_key: str
    hub: str
    topic: str
    callback: str
    secret: str
    state: State
    requested_at: datetime | None = None  # the last request to the hub (subscribe, renew, ...)
    verified_at: datetime | None = None
    lease_seconds: int | None = None
    expires_at: datetime | None = None  # the lease's end, from the hub's verification
    retry_at: datetime | None = None  # a failed request is not sent again before this
    failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriberTiming:
    """How the subscriber backs off after a failed request, in seconds (tests shorten them).

    How long a hub has to verify a request is `settings: websub_verify_timeout`
    (`plan`'s `verify_timeout`), which an operator sets.
    """

    retry: float = 3600.0  # first wait after a failure, doubling ...
    retry_max: float = 86400.0  # ... up to this


@dataclass(frozen=True, slots=True)
class Action:
    """What to do with one subscription now.

    subscribe: a new one for `advert` (`subscription` None) or a failed one again;
    renew: ask the hub again before the lease ends; unsubscribe: ask the hub to stop;
    expire: the hub never verified a request (the error is `reason`);
    drop: forget a row the hub no longer knows of (nothing to ask it).
    """

    verb: Verb
    source_key: str
    subscription: Subscription | None = None
    advert: Advert | None = None
    reason: str = ""


def callback_url(base: str, subscription_id: str) -> str:
    """The URL a hub calls for one subscription: `websub_callback` + /websub/ + its id."""
    return base.rstrip("/") + CALLBACK_PATH + subscription_id


def new_secret() -> str:
    """A per-subscription `hub.secret`: 32 random bytes as hex (the spec allows 200 bytes)."""
    return secrets.token_hex(32)


def renew_at(expires_at: datetime, lease_seconds: float) -> datetime:
    """When to renew a lease ending at `expires_at`: with a tenth of it left, but at
    least an hour before its end (half the lease, for leases under two hours)."""
    margin = min(lease_seconds / 2, max(lease_seconds / 10, 3600.0))
    return expires_at - timedelta(seconds=margin)


def retry_after(failures: int, timing: SubscriberTiming) -> float:
    """Seconds before a request that failed `failures` times in a row is sent again."""
    return min(timing.retry * 2.0 ** max(0, min(failures, 30) - 1), timing.retry_max)


def retry_at(sub: Subscription, now: datetime, timing: SubscriberTiming) -> datetime:
    """When a request for `sub` that failed (or was denied) once more is sent again."""
    return now + timedelta(seconds=retry_after(sub.failures + 1, timing))


def pushed(sub: Subscription, now: datetime) -> bool:
    """Whether the hub pushes this subscription's topic now (verified, lease running)."""
    return push_status(sub.state, sub.expires_at, now) == "subscribed"


def push_status(state: str, expires_at: datetime | None, now: datetime) -> PushStatus:
    """A stored subscription's state as the people who run ingest see it (`ingest
    status`, `/status`): subscribed (verified, its lease running: the hub pushes),
    pending (asked, not verified yet), lapsed (verified once, its lease over, so
    nothing is pushed until a renewal is verified), failed, denied (by the hub), or
    unsubscribing."""
    if state == "active":
        return "subscribed" if expires_at is not None and expires_at > now else "lapsed"
    return _PUSH_STATUS.get(state, "failed")


_PUSH_STATUS: dict[str, PushStatus] = {
    "requested": "pending",
    "denied": "denied",
    "unsubscribing": "unsubscribing",
}  # any other stored state but "active" is a failure


def push_trouble(state: str, error: str | None, refused: int) -> str | None:
    """What about a subscription needs a person, or None: why it failed or was
    denied, and how many pushes were refused for a bad signature."""
    trouble = error if state in ("failed", "denied") and error else None
    if refused:
        counted = f"{refused} {'push' if refused == 1 else 'pushes'} refused (bad signature)"
        trouble = f"{trouble}; {counted}" if trouble else counted
    return trouble


def plan(
    wanted: Mapping[str, Advert],
    subs: Sequence[Subscription],
    callback: str | None,
    now: datetime,
    verify_timeout: float,
) -> list[Action]:
    """What to do now, for the sources `wanted` (key -> what it advertises; empty
    without `callback`) and the stored `subs`.  A request the hub has not verified
    `verify_timeout` seconds after it was sent (`settings: websub_verify_timeout`)
    is given up: a subscribe is failed (and retried after a backoff), a renewal
    is sent again, an unsubscribe is forgotten."""
    actions: list[Action] = []
    covered: set[str] = set()
    for sub in subs:
        advert = wanted.get(sub.source_key) if callback else None
        fits = (
            advert is not None
            and (sub.hub, sub.topic) == (advert.hub, advert.topic)
            and callback is not None
            and sub.callback == callback_url(callback, sub.id)
        )
        if sub.state == "unsubscribing":
            if _waited(sub, now, verify_timeout):
                actions.append(Action("drop", sub.source_key, sub, reason="never verified"))
            continue
        if not fits:
            if sub.state in ("active", "requested"):
                actions.append(Action("unsubscribe", sub.source_key, sub))
            else:  # failed or denied: the hub holds nothing for us
                actions.append(Action("drop", sub.source_key, sub))
            continue
        covered.add(sub.source_key)
        action = _next_step(sub, now, verify_timeout)
        if action is not None:
            actions.append(action)
    for key, advert in sorted(wanted.items()):
        if callback and key not in covered:
            actions.append(Action("subscribe", key, advert=advert))
    return actions


def _next_step(sub: Subscription, now: datetime, verify_timeout: float) -> Action | None:
    if sub.retry_at is not None and now < sub.retry_at:
        return None
    if sub.state == "requested":
        if _waited(sub, now, verify_timeout):
            why = (
                f"the hub did not verify the subscription within {verify_timeout:g}s "
                "(websub_verify_timeout): is websub_callback reachable from the hub?"
            )
            return Action("expire", sub.source_key, sub, reason=why)
        return None
    if sub.state in ("failed", "denied"):
        return Action("subscribe", sub.source_key, sub)
    if sub.state == "active" and sub.expires_at is not None:
        renewing = sub.requested_at is not None and (
            sub.verified_at is None or sub.requested_at > sub.verified_at
        )
        if renewing and not _waited(sub, now, verify_timeout):
            return None  # a renewal is on its way to being verified
        if now >= renew_at(sub.expires_at, sub.lease_seconds or 0):
            return Action("renew", sub.source_key, sub)
    return None


def _waited(sub: Subscription, now: datetime, seconds: float) -> bool:
    return sub.requested_at is None or now - sub.requested_at >= timedelta(seconds=seconds)


def verification(sub: Subscription | None, mode: str, topic: str, challenge: str) -> str | None:
    """The body answering a hub's verification of intent, or None for a 404.

    A subscribe (or renewal) is confirmed while we want it (requested or
    active), an unsubscribe while we asked for one; the topic must be the
    subscription's, and there must be a challenge to echo.
    """
    if sub is None or not challenge or topic != sub.topic:
        return None
    if mode == "subscribe" and sub.state in ("requested", "active"):
        return challenge
    if mode == "unsubscribe" and sub.state == "unsubscribing":
        return challenge
    return None


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` (X-Hub-Signature: `method=hex`) signs `body` with `secret`.

    The method is one of sha1, sha256, sha384, sha512; the digests are
    compared with `hmac.compare_digest` (constant time).  No header, another
    method or a malformed value is a bad signature: every subscription of
    ours has a secret, so an unsigned push is never accepted.
    """
    if not header:
        return False
    method, sep, signature = header.strip().partition("=")
    digest = ALGORITHMS.get(method.strip().lower())
    if not sep or digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest().encode()
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))
