"""The `/api/items` query: validation and the opaque keyset cursor (pure).

A cursor is URL-safe base64 (no padding) of the JSON `["<published_at ISO
8601>", <id>]` of the last story on a page; the next page holds the stories
strictly after it in the newest-first order (`published_at DESC, id DESC`),
so a story stored between two requests is neither skipped nor repeated.  A
search (`q=`) orders by relevance first, and its cursor carries the last
story's score too: `["<published_at>", <id>, <score>]`, and on SQLite, past
the first block of ranked matches (store/search.py), the id its block starts
at or below: `["<published_at>", <id>, <score>, <block>]`.
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
    "KINDS",
    "MAX_LIMIT",
    "BadRequest",
    "Cursor",
    "ItemsQuery",
    "decode_cursor",
    "encode_cursor",
    "items_query",
    "parse_since",
]

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
ALLOWED = ("section", "source", "kind", "since", "until", "q", "limit", "cursor")
KINDS = ("article", "video", "audio")
MAX_QUERY = 200  # characters of a search
_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")  # sources.yaml's rule for keys and sections
_DIGITS = re.compile(r"[0-9]{1,6}")
_WORD = re.compile(r"\w")


class BadRequest(ValueError):
    """A query parameter the API cannot answer; `parameter` names it."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last story of a page: its date and id, its search score when searching, and
    past the first block of ranked matches (SQLite) the id its block starts at or below."""

    published_at: datetime
    id: int
    score: float | None = None
    block: int | None = None


@dataclass(frozen=True, slots=True)
class ItemsQuery:
    section: str | None = None
    source: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None  # the reader's words (`q`)
    limit: int = DEFAULT_LIMIT
    before: Cursor | None = None  # decoded cursor


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
    since, until = (_moment(given, name) for name in ("since", "until"))
    if since is not None and until is not None and until <= since:
        raise BadRequest("until must be later than since", parameter="until")
    kind = given.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}", parameter="kind")
    search = given.get("q") or None
    if search is not None:
        if len(search) > MAX_QUERY:
            raise BadRequest(f"q must be at most {MAX_QUERY} characters", parameter="q")
        if not _WORD.search(search):
            raise BadRequest("q must contain a word (letters or digits)", parameter="q")
    before = None
    if given.get("cursor"):
        try:
            before = decode_cursor(given["cursor"])
        except ValueError:
            before = None
        if before is None or (before.score is None) != (search is None):
            raise BadRequest(
                "cursor is not one this API gave out for this query: pass next_cursor back "
                "unchanged, with the same q",
                parameter="cursor",
            ) from None
    return ItemsQuery(
        section=given.get("section") or None,
        source=given.get("source") or None,
        kind=kind,
        since=since,
        until=until,
        search=search,
        limit=limit,
        before=before,
    )


def _moment(given: dict[str, str], name: str) -> datetime | None:
    if not given.get(name):
        return None
    try:
        return parse_since(given[name], name)
    except ValueError as e:
        raise BadRequest(str(e), parameter=name) from None


def parse_since(text: str, name: str = "since") -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC.  Returns an aware UTC datetime."""
    # an unencoded '+' in a query string arrives as a space: 2026-06-01T08:00:00 01:00
    if len(text) > 19 and text[-6] == " " and text[-5:-3].isdigit():
        text = text[:-6] + "+" + text[-5:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 date or time, like 2026-06-01 or "
            f"2026-06-01T08:00:00Z (got {text!r})"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def encode_cursor(
    published_at: datetime, item_id: int, score: float | None = None, block: int | None = None
) -> str:
    position: list[object] = [published_at.astimezone(UTC).isoformat(), item_id]
    if score is not None:
        position.append(score)
        if block is not None:
            position.append(block)
    raw = json.dumps(position, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """The position `encode_cursor` wrote; ValueError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as e:
        raise ValueError("malformed cursor") from e
    if not isinstance(position, list) or len(position) not in (2, 3, 4):
        raise ValueError("malformed cursor")
    stamp, item_id, *rest = position
    if not isinstance(stamp, str) or not _whole(item_id):
        raise ValueError("malformed cursor")
    score = rest[0] if rest else None
    if rest and (not isinstance(score, int | float) or isinstance(score, bool)):
        raise ValueError("malformed cursor")
    block = rest[1] if len(rest) == 2 else None
    if block is not None and not _whole(block):
        raise ValueError("malformed cursor")
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        raise ValueError("malformed cursor")
    return Cursor(moment.astimezone(UTC), item_id, None if score is None else float(score), block)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
