"""Turn one value node into the value its field expects, or say what is wrong.

This module's one job is the rules for single values: `parse_duration` and
`parse_size` (public), and the converters the checker runs, each taking
(value node, field name) to a value or raising `_Bad`: text (never with
control characters), keys, sections, URLs, kinds, true/false, fractions,
intervals and timeouts, sizes, whole numbers in a range (each bounded, so
that no accepted value overflows in the run), a User-Agent, curated items'
dates and query parameter names.  Values written in
another tool's notation (cron strings, CSS selectors, date formats, CIDR
networks) are checked by `notations`.  It does not walk mappings, know which
field goes where, or collect problems.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from functools import lru_cache
from typing import Final, Literal
from urllib.parse import urlsplit

from yaml.nodes import Node, ScalarNode

from ingest.config.yaml_nodes import _NULL_TAG, _kind_of
from ingest.stages.controls import CONTROL_CHARS, CONTROL_CHARS_IN_TEXT

__all__ = [
    "MAX_BODY",
    "MAX_DURATION",
    "MAX_MEMORY",
    "MAX_TIMEOUT",
    "_DURATION_UNITS",
    "_Bad",
    "_count",
    "_did_you_mean",
    "_flag",
    "_fraction",
    "_interval",
    "_item_date",
    "_key",
    "_kind",
    "_long_text",
    "_param",
    "_section",
    "_size",
    "_text",
    "_timeout",
    "_url",
    "_user_agent",
    "parse_duration",
    "parse_size",
]

_KINDS: Final = ("feed", "page", "curated")

# Upper bounds: every value below them is one the run can compute with (dates, leases,
# timers, rlimits); past them it would overflow somewhere, or make no sense.
MAX_DURATION: Final = 100 * 365 * 86400  # intervals, ages, horizons: a hundred years (keep all)
MAX_TIMEOUT: Final = 3600  # a poll's deadline, a parse's CPU budget: one hour
MAX_BODY: Final = 1024**3  # a body is held in memory: 1 GiB
MAX_MEMORY: Final = 1024**4  # a parse worker's extra address space: 1 TiB
# Control characters: C0, DEL and C1.  Never wanted in a name, URL, word or header (a
# NUL is refused by PostgreSQL, CR/LF split an HTTP header, ESC drives terminals).
_CONTROL_RE: Final = CONTROL_CHARS  # ingest.stages.controls says what a control character is
_CONTROL_IN_TEXT_RE: Final = CONTROL_CHARS_IN_TEXT  # tab, newline ok
_PRINTABLE_ASCII_RE: Final = re.compile(r"[\x20-\x7e]+")

_KEY_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
_SECTION_RE: Final = re.compile(r"[a-z0-9-]+")
_PARAM_RE: Final = re.compile(r"[^\s&=#?]+")
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN_URL_RE: Final = re.compile(
    rf"https?://{_LABEL}(?:\.{_LABEL})*\.?(?::(\d{{1,5}}))?(?:[/?#][^\s]*)?", re.IGNORECASE
)
_BOOLS: Final = {
    "true": True,
    "yes": True,
    "on": True,
    "false": False,
    "no": False,
    "off": False,
}

_SECOND: Final = 1
_MINUTE: Final = 60
_HOUR: Final = 3600
_DAY: Final = 86400
_DURATION_UNITS: Final = {
    "s": _SECOND,
    "sec": _SECOND,
    "secs": _SECOND,
    "second": _SECOND,
    "seconds": _SECOND,
    "m": _MINUTE,
    "min": _MINUTE,
    "mins": _MINUTE,
    "minute": _MINUTE,
    "minutes": _MINUTE,
    "h": _HOUR,
    "hr": _HOUR,
    "hrs": _HOUR,
    "hour": _HOUR,
    "hours": _HOUR,
    "d": _DAY,
    "day": _DAY,
    "days": _DAY,
}
_NUMBER: Final = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_NUMBER_RE: Final = re.compile(_NUMBER)
_DURATION_PART_RE: Final = re.compile(rf"({_NUMBER})\s*([a-z]+)\s*")
_SIZE_RE: Final = re.compile(rf"({_NUMBER})\s*([a-z]*)")
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: "30s", "30m", "1h", "2d", "1h30m", "90" (seconds), 90.

    Units may also be spelled out ("30 minutes").  Raises ValueError on
    anything else, including negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration: {value!r}")
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    return _duration(value.strip().lower())


@lru_cache(maxsize=256)
def _duration(text: str) -> float:
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    total = 0.0
    pos = 0
    for m in _DURATION_PART_RE.finditer(text):
        unit = _DURATION_UNITS.get(m.group(2))
        if m.start() != pos or unit is None:
            break
        total += float(m.group(1)) * unit
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"not a duration: {text!r} (use a number with s, m, h or d, e.g. 30m)")
    return total


def parse_size(value: str | int) -> int:
    """Bytes in a size: "10MiB", "512KiB", "10MB" (10**7), "1048576", 1048576.

    Units: B, KB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024),
    any case.  Raises ValueError on anything else, including negative numbers.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return value
    m = _SIZE_RE.fullmatch(value.strip().lower())
    unit = _SIZE_UNITS.get(m.group(2)) if m else None
    if m is None or unit is None or (unit == 1 and "." in m.group(1)):
        raise ValueError(
            f"not a size: {value!r} (use a whole number of bytes or B, KB, MB, GB, KiB, MiB, GiB)"
        )
    return round(Fraction(m.group(1)) * unit)


class _Bad(Exception):
    """One problem with one value, raised by a converter and recorded by the checker."""

    def __init__(self, message: str, node: Node | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


@lru_cache(maxsize=1024)  # a merged mapping repeats its unknown fields in every source
def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(choices)}"


# --------------------------------------------------------------------------
# converters: (value node, field name) -> value, or raise _Bad


def _text(node: Node, name: str) -> str:
    """One line of text: no control characters (see `_CONTROL_RE`)."""
    return _checked_text(node, name, _CONTROL_RE)


def _long_text(node: Node, name: str) -> str:
    """Text that may run over lines (a curated summary): tabs and newlines allowed."""
    return _checked_text(node, name, _CONTROL_IN_TEXT_RE)


def _checked_text(node: Node, name: str, controls: re.Pattern[str]) -> str:
    if not isinstance(node, ScalarNode):
        raise _Bad(f"{name} must be a single value, not {_kind_of(node)}", node)
    value = str(node.value).strip()
    if not value or node.tag == _NULL_TAG:
        raise _Bad(f"{name} is empty", node)
    bad = controls.search(value)
    if bad is not None:
        raise _Bad(
            f"{name} contains a control character (U+{ord(bad.group()):04X}, "
            f"at character {bad.start() + 1}); remove it",
            node,
        )
    return value


def _user_agent(node: Node, name: str) -> str:
    """An HTTP header value: printable ASCII only."""
    value = _text(node, name)
    if not _PRINTABLE_ASCII_RE.fullmatch(value):
        raise _Bad(
            f"{name} may only use printable ASCII characters (letters, digits, spaces and "
            "punctuation), as an HTTP header must",
            node,
        )
    return value


def _fraction(node: Node, name: str) -> float:
    """A number from 0 to 0.5 (jitter): `0.1` or `10%`."""
    text = _text(node, name)
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise _Bad(
            f"{name} must be a number from 0 to 0.5 (or 0% to 50%), not {text!r}", node
        ) from None
    if not 0 <= value <= 0.5:
        raise _Bad(f"{name} must be from 0 to 0.5 (or 0% to 50%), not {text!r}", node)
    return value


def _key(node: Node, name: str) -> str:
    value = _text(node, name)
    if not _KEY_RE.fullmatch(value):
        raise _Bad(
            f"key {value!r} may only use lower-case letters, digits and '-' "
            "and must start with a letter or digit (e.g. bmj-leader)",
            node,
        )
    return value


def _section(node: Node, name: str) -> str:
    value = _text(node, name)
    if not _SECTION_RE.fullmatch(value):
        raise _Bad(
            f"section {value!r} may only use lower-case letters, digits and '-' (e.g. latest)",
            node,
        )
    return value


def _url(node: Node, name: str) -> str:
    value = _text(node, name)
    m = _PLAIN_URL_RE.fullmatch(value)
    if m is not None and int(m.group(1) or 0) <= 65535:
        return value  # the common shape, without urlsplit's cost
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not any(c.isspace() for c in value)
        )
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise _Bad(f"{name} {value!r} is not a web address (http:// or https:// and a host)", node)
    return value


def _kind(node: Node, name: str) -> Literal["feed", "page", "curated"]:
    value = _text(node, name)
    if value == "feed":
        return "feed"
    if value == "page":
        return "page"
    if value == "curated":
        return "curated"
    raise _Bad(
        f"kind must be 'feed', 'page' or 'curated', not {value!r}" + _did_you_mean(value, _KINDS),
        node,
    )


def _item_date(node: Node, name: str) -> datetime:
    """A curated item's date: 2026-03-12 (ISO, optionally with a time), 12 March 2026,
    or March 12, 2026; a time without a zone is UTC."""
    value = _text(node, name)
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        for form in ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y"):
            try:
                moment = datetime.strptime(" ".join(value.split()), form)
                break
            except ValueError:
                continue
    if moment is None:
        raise _Bad(
            f"{name} {value!r} is not a date; write it as 2026-03-12 (or 12 March 2026)", node
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _flag(node: Node, name: str) -> bool:
    value = node.value.strip().lower() if isinstance(node, ScalarNode) else None
    if value is None or value not in _BOOLS:
        raise _Bad(f"{name} must be true or false, not {_kind_of(node)}", node)
    return _BOOLS[value]


def _interval(node: Node, name: str) -> float:
    """A duration longer than zero and at most `MAX_DURATION` (a hundred years)."""
    return _bounded_duration(node, name, MAX_DURATION, "100 years (36500d)")


def _timeout(node: Node, name: str) -> float:
    """A duration longer than zero and at most `MAX_TIMEOUT` (an hour)."""
    return _bounded_duration(node, name, MAX_TIMEOUT, "an hour (1h)")


def _bounded_duration(node: Node, name: str, limit: float, said: str) -> float:
    value = _text(node, name)
    bare = value.strip()
    if _PLAIN_NUMBER_RE.fullmatch(bare) and float(bare) != 0:  # `max_age: 90`: 90 what?
        raise _Bad(
            f"{name}: {value!r} has no unit; write a number and a unit: s (seconds), "
            f"m (minutes), h (hours) or d (days), e.g. {bare}d or {bare}m",
            node,
        )
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise _Bad(
            f"{name}: {value!r} is not a duration; use a number and a unit (s, m, h, d), e.g. 30m",
            node,
        ) from None
    if seconds <= 0:
        raise _Bad(f"{name} must be longer than zero, not {value!r}", node)
    if seconds > limit:
        raise _Bad(f"{name} must be at most {said}, not {value!r}", node)
    return seconds


def _size(limit: int, said: str) -> Callable[[Node, str], int]:
    """Sizes of more than zero bytes and at most `limit` (`said` in words)."""

    def convert(node: Node, name: str) -> int:
        value = _text(node, name)
        try:
            size = parse_size(value)
        except ValueError:
            raise _Bad(
                f"{name}: {value!r} is not a size; use e.g. 10MiB, 512KiB or a number of bytes",
                node,
            ) from None
        if size <= 0:
            raise _Bad(f"{name} must be more than zero bytes, not {value!r}", node)
        if size > limit:
            raise _Bad(f"{name} must be at most {said}, not {value!r}", node)
        return size

    return convert


def _count(low: int, high: int) -> Callable[[Node, str], int]:
    def convert(node: Node, name: str) -> int:
        value = _text(node, name)
        if not re.fullmatch(r"[+-]?\d+", value) or not low <= int(value) <= high:
            raise _Bad(f"{name} must be a whole number from {low} to {high}, not {value!r}", node)
        return int(value)

    return convert


def _param(value: str, node: Node, name: str) -> None:
    if not _PARAM_RE.fullmatch(value):
        raise _Bad(f"{name}: {value!r} is not a query parameter name (e.g. utm_source)", node)
