"""The source-health page (`/status` of `ingest serve`): every source's state in plain words.

One job: turn the `sources` rows (`Store.status()`, with `failing_since`
from the poll log) into what an operator reads: a state in words (ok;
failing since…; backing off until…; asked us to wait until…; moved to…;
feed found at…; disabled; not polled yet), the last success as an age, the
stories carried, when it is next due, and the last error; failing sources
first.  A source with a WebSub subscription also shows its push state
(`PushView`): the row's `push_status` and `push_trouble`, classified once
by the store (`websub.push_status`, as `ingest status` shows them), in
words, with the hub, the lease's end and the last push.
`source_views` is pure (rows and the moment in, views out);
`render_status` fills the `status.html` template.  It reads nothing itself
and is linked from no public page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment

from ingest.stages.websub import PUSH_WORDS, PushStatus

__all__ = ["PushView", "SourceView", "age", "render_status", "source_views"]

# the order of the page: what needs a person first
_RANK = {"failing": 0, "waiting": 1, "attention": 2, "new": 3, "ok": 4, "off": 5}


@dataclass(frozen=True, slots=True)
class PushView:
    """A source's WebSub subscription, as the page shows it."""

    status: PushStatus  # subscribed, pending, lapsed, failed, denied, unsubscribing
    state: str  # in words: "subscribed", "pending verification", ...
    hub: str
    lease: str | None  # "ends 2026-12-17 12:00 UTC (in 10 days)"; None before a verification
    last_push: str  # an age ("never"), with the count
    trouble: str | None  # why it failed or was denied; pushes refused for a bad signature


@dataclass(frozen=True, slots=True)
class SourceView:
    key: str
    name: str
    url: str
    kind: str  # failing, waiting, attention, new, ok, off: the card's class
    state: str  # in words
    notes: tuple[str, ...]  # moved to..., feed found at...: what an editor should act on
    last_success: str  # an age, or "never"
    stories: int
    next_due: str
    error: str | None
    median_lag: str | None
    push: PushView | None = None  # only for a source with a WebSub subscription


def age(then: datetime | None, now: datetime) -> str:
    """'never', 'just now', '5 min ago', '3 h ago', '2 days ago'."""
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"


def _until(when: datetime, now: datetime) -> str:
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return f"in {seconds:.0f} s"
    if seconds < 3600:
        return f"in {seconds // 60:.0f} min"
    if seconds < 2 * 86400:
        return f"in {seconds / 3600:.1f} h"
    return f"in {seconds // 86400:.0f} days"


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _lag(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _push(r: Mapping[str, Any], now: datetime) -> PushView | None:
    status: PushStatus | None = r.get("push_status")
    if status is None:
        return None
    expires: datetime | None = r.get("push_expires_at")
    lease = None
    if expires is not None and expires > now:
        lease = f"ends {_stamp(expires)} ({_until(expires, now)})"
    elif expires is not None:
        lease = f"ended {_stamp(expires)} ({age(expires, now)})"
    pushes = int(r.get("pushes") or 0)
    last = age(r.get("push_last_at"), now)
    counted = f" ({pushes} {'push' if pushes == 1 else 'pushes'})" if pushes else ""
    return PushView(
        status=status, state=PUSH_WORDS[status], hub=r.get("push_hub") or "", lease=lease,
        last_push=last + counted, trouble=r.get("push_trouble"),
    )  # fmt: skip


def _view(r: Mapping[str, Any], now: datetime) -> SourceView:
    failures = int(r.get("consecutive_failures") or 0)
    nxt: datetime | None = r.get("next_due_at")
    wait: datetime | None = r.get("retry_after_until")
    notes = []
    if r.get("moved_to"):
        notes.append(f"moved to {r['moved_to']}: update sources.yaml")
    if r.get("discovered_url"):
        notes.append(f"feed found at {r['discovered_url']}: update sources.yaml")
    words: list[str] = []
    if not r["in_config"]:
        kind, words = "off", ["removed from sources.yaml"]
    elif not r["enabled"]:
        kind, words = "off", ["disabled in sources.yaml"]
    elif r.get("disabled_reason"):
        kind, words = "failing", [f"disabled by ingest: {r['disabled_reason']}"]
    elif failures:
        since: datetime | None = r.get("failing_since")
        started = f"since {_stamp(since)}" if since is not None else "since its last success"
        polls = "poll" if failures == 1 else "polls in a row"
        kind, words = "failing", [f"failing {started} ({failures} {polls})"]
        if nxt is not None and nxt > now and (r.get("backoff_seconds") or 0) > 0:
            words.append(f"backing off until {_stamp(nxt)}")
    elif r.get("last_attempt_at") is None:
        kind, words = "new", ["not polled yet"]
    else:
        kind, words = ("attention" if notes else "ok"), ["ok"]
    if wait is not None and wait > now and kind != "off":
        words.append(f"asked us to wait until {_stamp(wait)}")
        kind = "waiting" if kind in ("ok", "attention", "new") else kind
    off = kind == "off" or bool(r.get("disabled_reason"))
    due = "not polled" if off else (_until(nxt, now) if nxt is not None else "now")
    if r.get("pushed") and not off:
        due += " (pushed; polled only as a safety net)"
    return SourceView(
        key=r["key"], name=r["name"], url=r["url"], kind=kind, state="; ".join(words),
        notes=tuple(notes), last_success=age(r.get("last_success_at"), now),
        stories=int(r.get("items") or 0),
        next_due=due, error=r.get("last_error") if failures or r.get("disabled_reason") else None,
        median_lag=_lag(r.get("median_lag_seconds")), push=_push(r, now),
    )  # fmt: skip


def source_views(rows: Sequence[Mapping[str, Any]], now: datetime) -> list[SourceView]:
    """Every source as the page shows it: failing first, then by key."""
    views = [_view(r, now) for r in rows]
    return sorted(views, key=lambda v: (_RANK[v.kind], v.key))


def render_status(env: Environment, views: Sequence[SourceView], now: datetime) -> str:
    counts = {k: sum(1 for v in views if v.kind == k) for k in _RANK}
    return env.get_template("status.html").render(
        sources=views, counts=counts, generated=_stamp(now), total=len(views)
    )
