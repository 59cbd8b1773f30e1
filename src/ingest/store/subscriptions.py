"""WebSub subscriptions in the database (`subscriptions`, and `sources.websub_hub`/`_topic`).

One job: read and write the rows `websub.py` reasons about: the hubs the
sources advertise (`adverts`), every subscription (`all_rows`, `by_id`), a
new or re-sent request (`requested`), what the hub's verification, denial or
failure came to (`verified`, `denied`, `failed`), pushes received and
refused (`pushed`, `refused`), the sources being pushed now (`pushed_keys`,
which the pipeline's safety-net polling reads) and the push columns of
`ingest status` and the `/status` page (`status_by_source`, `with_push`).
Each function takes a Connection in a transaction the caller owns
(`Store`); nothing here decides what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from ingest.model import Advert
from ingest.stages import websub
from ingest.stages.policy import polled_every
from ingest.stages.websub import Subscription
from ingest.store.db import chunks
from ingest.store.schema import sources, subscriptions

__all__ = [
    "adverts",
    "all_rows",
    "by_id",
    "denied",
    "failed",
    "forget",
    "pushed",
    "pushed_keys",
    "refused",
    "requested",
    "resume_polling",
    "status_by_source",
    "verified",
    "with_push",
]

_FIELDS = (
    "id", "source_key", "hub", "topic", "callback", "secret", "state", "requested_at",
    "verified_at", "lease_seconds", "expires_at", "retry_at", "failures", "last_error",
)  # fmt: skip


def _subscription(row: Any) -> Subscription:
    m = row._mapping
    return Subscription(**{f: m[f] for f in _FIELDS})


def adverts(conn: Connection) -> dict[str, Advert]:
    """Every source in the file, enabled and not disabled, whose feed advertises a hub."""
    rows = conn.execute(
        select(sources.c.key, sources.c.websub_hub, sources.c.websub_topic).where(
            sources.c.websub_hub.is_not(None),
            sources.c.websub_topic.is_not(None),
            sources.c.enabled.is_(True),
            sources.c.in_config.is_(True),
            sources.c.disabled_reason.is_(None),
        )
    )
    return {r[0]: Advert(r[1], r[2]) for r in rows}


def all_rows(conn: Connection) -> list[Subscription]:
    return [
        _subscription(r)
        for r in conn.execute(select(subscriptions).order_by(subscriptions.c.created_at))
    ]


def by_id(conn: Connection, sub_id: str) -> Subscription | None:
    row = conn.execute(select(subscriptions).where(subscriptions.c.id == sub_id)).first()
    return None if row is None else _subscription(row)


def requested(conn: Connection, sub: Subscription, now: datetime) -> None:
    """Record a request sent to the hub: a new row, or the row's new state and time."""
    values = {
        "hub": sub.hub, "topic": sub.topic, "callback": sub.callback, "state": sub.state,
        "requested_at": now, "retry_at": None, "updated_at": now,
    }  # fmt: skip
    done = conn.execute(update(subscriptions).where(subscriptions.c.id == sub.id).values(values))
    if not done.rowcount:
        conn.execute(
            subscriptions.insert().values(
                id=sub.id, source_key=sub.source_key, secret=sub.secret, created_at=now, **values
            )
        )


def failed(
    conn: Connection, sub_id: str, error: str, now: datetime, retry_at: datetime, state: str
) -> None:
    """A request the hub refused, could not be sent, or never verified."""
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub_id)
        .values(
            state=state,
            last_error=error,
            retry_at=retry_at,
            updated_at=now,
            failures=subscriptions.c.failures + 1,
        )
    )


def verified(conn: Connection, sub_id: str, mode: str, lease: int | None, now: datetime) -> None:
    """The hub verified our intent: a subscription is active for `lease` seconds (the
    spec requires the hub to say; the lease we asked for, `websub.LEASE_REQUESTED`,
    is assumed when it does not); an unsubscription is over, and its row goes."""
    if mode == "unsubscribe":
        forget(conn, sub_id)
        return
    seconds = lease if lease is not None and lease > 0 else websub.LEASE_REQUESTED
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub_id)
        .values(
            state="active",
            verified_at=now,
            lease_seconds=seconds,
            failures=0,
            expires_at=now + timedelta(seconds=seconds),
            last_error=None,
            retry_at=None,
            updated_at=now,
        )
    )


def denied(conn: Connection, sub_id: str, reason: str, now: datetime, retry_at: datetime) -> None:
    """The hub refused the subscription (hub.mode=denied)."""
    failed(conn, sub_id, f"the hub denied the subscription: {reason}", now, retry_at, "denied")


def forget(conn: Connection, sub_id: str) -> None:
    conn.execute(delete(subscriptions).where(subscriptions.c.id == sub_id))


def pushed(conn: Connection, sub_id: str, now: datetime) -> None:
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub_id)
        .values(pushes=subscriptions.c.pushes + 1, last_push_at=now, updated_at=now)
    )


def refused(conn: Connection, sub_id: str, now: datetime) -> None:
    """A push refused for its signature: counted, never stored."""
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == sub_id)
        .values(refused=subscriptions.c.refused + 1, last_refused_at=now, updated_at=now)
    )


def pushed_keys(conn: Connection, keys: Sequence[str], now: datetime) -> set[str]:
    """Of `keys`, the sources a hub pushes now (an active subscription, lease running)."""
    out: set[str] = set()
    for chunk in chunks(keys):
        rows = conn.execute(
            select(subscriptions.c.source_key).where(
                subscriptions.c.source_key.in_(chunk),
                subscriptions.c.state == "active",
                subscriptions.c.expires_at > now,
            )
        )
        out.update(r[0] for r in rows)
    return out


def resume_polling(conn: Connection, keys: Sequence[str], now: datetime) -> None:
    """Sources no longer pushed are due now, not at the end of their safety-net wait."""
    for chunk in chunks(keys):
        conn.execute(
            update(sources)
            .where(sources.c.key.in_(chunk), sources.c.next_due_at > now)
            .values(next_due_at=now, updated_at=now)
        )


def status_by_source(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per source, its newest subscription's state for `ingest status` (no secret)."""
    out: dict[str, dict[str, Any]] = {}
    query = select(
        subscriptions.c.source_key, subscriptions.c.hub, subscriptions.c.state,
        subscriptions.c.expires_at, subscriptions.c.last_push_at, subscriptions.c.pushes,
        subscriptions.c.refused, subscriptions.c.last_error,
    ).order_by(subscriptions.c.created_at)  # fmt: skip
    for r in conn.execute(query):
        m = r._mapping
        if m["state"] == "unsubscribing" and m["source_key"] in out:
            continue  # the one being replaced says less than the current one
        out[m["source_key"]] = {
            "push_state": m["state"], "push_hub": m["hub"], "push_expires_at": m["expires_at"],
            "push_last_at": m["last_push_at"], "pushes": m["pushes"],
            "push_refused": m["refused"], "push_error": m["last_error"],
        }  # fmt: skip
    return out


def with_push(
    row: dict[str, Any], push: dict[str, Any] | None, now: datetime, push_every: float
) -> None:
    """Add a status row's push columns; what they come to (websub.py): `push_status`
    (subscribed, pending, lapsed, failed, denied, unsubscribing; None without a
    subscription), `push_trouble` (what needs a person) and `pushed` (a hub pushes it
    now), which `ingest status` and the `/status` page both show; and for a pushed
    source the safety-net interval it is polled at, as `poll_interval_seconds` (which
    `ingest health` judges staleness by)."""
    row.update(push or {})
    state = row.get("push_state")
    status: websub.PushStatus | None = None
    trouble: str | None = None
    if state is not None:
        status = websub.push_status(state, row.get("push_expires_at"), now)
        trouble = websub.push_trouble(state, row.get("push_error"), row.get("push_refused") or 0)
    row["push_status"], row["push_trouble"] = status, trouble
    row["pushed"] = status == "subscribed"
    if row.get("poll_interval_seconds") is not None:
        row["poll_interval_seconds"] = polled_every(
            row["poll_interval_seconds"], row["pushed"], push_every
        )
