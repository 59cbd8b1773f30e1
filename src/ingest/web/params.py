"""The `/api/items` query: validation and the opaque keyset cursor (pure).

A cursor is URL-safe base64 (no padding) of the JSON `["<published_at ISO
8601>", <id>]` of the last story on a page; the next page holds the stories
strictly after it in the newest-first order (`published_at DESC, id DESC`),
so a story stored between two requests is neither skipped nor repeated.
Everything a client can get wrong raises `BadRequest` with a message meant
for the person writing the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "BadRequest",
    "ItemsQuery",
    "decode_cursor",
    "encode_cursor",
    "items_query",
    "parse_since",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
ALLOWED = ("section", "source", "since", "limit", "cursor")
_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")  # sources.yaml's rule for keys and sections
_DIGITS = re.compile(r"[0-9]{1,6}")


class BadRequest(ValueError):
    """A query parameter the API cannot answer; `parameter` names it."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    section: str | None = None
    source: str | None = None
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT
    before: tuple[datetime, int] | None = None  # decoded cursor


def items_query(pairs: Iterable[tuple[str, str]]) -> ItemsQuery:
    """Validate the query string's (name, value) pairs; an empty value means "not given"."""
    given: dict[str, str] = {}
    for name, value in pairs:
        if name not in ALLOWED:
            raise BadRequest(
                f"unknown parameter {name!r} (allowed: {', '.join(ALLOWED)})", parameter=name
            )
        if name in given:
            raise BadRequest(f"parameter {name!r} given more than once", parameter=name)
        given[name] = value.strip()
    for name in ("section", "source"):
        if given.get(name) and not _KEY.fullmatch(given[name]):
            raise BadRequest(
                f"{name} must be lower-case letters, digits and '-' (e.g. latest)", parameter=name
            )
    limit = DEFAULT_LIMIT
    if given.get("limit"):
        text = given["limit"]
        if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}", "limit")
        limit = int(text)
    since = None
    if given.get("since"):
        try:
            since = parse_since(given["since"])
        except ValueError as e:
            raise BadRequest(str(e), parameter="since") from None
    before = None
    if given.get("cursor"):
        try:
            before = decode_cursor(given["cursor"])
        except ValueError:
            raise BadRequest(
                "cursor is not one this API gave out: pass next_cursor back unchanged",
                parameter="cursor",
            ) from None
    return ItemsQuery(
        section=given.get("section") or None,
        source=given.get("source") or None,
        since=since,
        limit=limit,
        before=before,
    )


def parse_since(text: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC.  Returns an aware UTC datetime."""
    # an unencoded '+' in a query string arrives as a space: 2026-06-01T08:00:00 01:00
    if len(text) > 19 and text[-6] == " " and text[-5:-3].isdigit():
        text = text[:-6] + "+" + text[-5:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since must be an ISO 8601 date or time, like 2026-06-01 or "
            f"2026-06-01T08:00:00Z (got {text!r})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def encode_cursor(published_at: datetime, item_id: int) -> str:
    raw = json.dumps([published_at.astimezone(UTC).isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(published_at, id) from `encode_cursor`'s output; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, item_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as e:
        raise ValueError("malformed cursor") from e
    if not isinstance(stamp, str) or not isinstance(item_id, int) or isinstance(item_id, bool):
        raise ValueError("malformed cursor")
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        raise ValueError("malformed cursor")
    return moment.astimezone(UTC), item_id
