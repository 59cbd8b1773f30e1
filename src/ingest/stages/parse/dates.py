"""Read the date (and time) a listing page shows into an aware UTC datetime.

One job: `parse_date`, a forgiving reader of the dates web pages print:
ISO 8601, `<time datetime>` values, epoch seconds or milliseconds, "12 March
2026", "Mar 12, 2026", "Thursday 12 March 2026", numeric "12/03/2026" (day
first unless the source says otherwise, or a strptime `date_format`), with an
optional time and zone; a naive time is UTC.  It does not find the date on a
page (`ingest.stages.parse.page` picks the element and its text), read feed dates
(feedparser does, in `ingest.stages.parse.feed`), or stand in for a missing date
(`ingest.stages.normalize` does).  Standard library only; English month names only.

It also holds the two pure steps of a source's date repair (docs/sources.md,
`timezone:` and `date_offset_fix:`): `zone_label` says how a date as written
gave its zone (none, UTC, another offset), and `repair` reads a date that
was taken as UTC as wall-clock time in the source's IANA zone (`zoneinfo`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from ingest.model import DateZone

__all__ = ["as_utc", "parse_date", "repair", "zone_label"]

# the end of a date as written: its zone, if any (RFC 822 names, Z, +hh:mm, +hhmm, +hh)
_ZONE_RE: Final = re.compile(
    r"(?:(?<=\d)|\s)(?P<zone>z|[+-]\d{2}(?::?\d{2})?|(?:gmt|ut|utc)(?:[+-]\d{1,2}(?::?\d{2})?)?"
    r"|[a-z]{1,5})\s*$",
    re.IGNORECASE,
)
_UTC_ZONES: Final = frozenset({"z", "gmt", "ut", "utc", "+00", "-00", "+0000", "-0000"})
_HAS_TIME_RE: Final = re.compile(r"\d{1,2}:\d{2}")

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"
_DATE_PATTERNS = (
    # 2026-03-12, 2026/03/12, 2026.03.12
    re.compile(
        r"(?<!\d)(?P<year>\d{4})(?P<sep>[-/.])(?P<mon>\d{1,2})(?P=sep)(?P<day>\d{1,2})(?!\d)"
    ),
    # 12 March 2026, 12th of March, 2026, 12-Mar-2026
    re.compile(
        rf"(?<!\d)(?P<day>\d{{1,2}}){_ORDINAL}[\s-]*(?:of\s+)?\b{_MONTH}[\s,-]*(?P<year>\d{{4}})(?!\d)",
        re.IGNORECASE,
    ),
    # March 12, 2026 / Mar. 12 2026
    re.compile(
        rf"\b{_MONTH}\s*(?P<day>\d{{1,2}}){_ORDINAL},?\s+(?P<year>\d{{4}})(?!\d)",
        re.IGNORECASE,
    ),
    # 12/03/2026, 12.03.2026, 12-03-26: day or month first, by the source
    re.compile(
        r"(?<!\d)(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})(?!\d)"
    ),
)
_ZONES = {
    "z": 0,
    "utc": 0,
    "gmt": 0,
    "bst": 60,
    "cet": 60,
    "cest": 120,
    "est": -300,
    "edt": -240,
    "cst": -360,
    "cdt": -300,
    "mst": -420,
    "mdt": -360,
    "pst": -480,
    "pdt": -420,
}
_TIME = (
    r"(?<![\d:.])(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,]\d+)?)?"
    r"(?!\d)\s*(?P<ampm>[ap]\.?\s?m\b\.?)?"
    r"(?:\s*(?:(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})"
    r"|(?:utc|gmt)(?P<sign2>[+-])(?P<oh2>\d{1,2})(?::?(?P<om2>\d{2}))?"
    r"|(?P<zone>" + "|".join(_ZONES) + r")\b|(?P<us>[ECMP])T\b))?"
)
_US_STANDARD = {"E": -300, "C": -360, "M": -420, "P": -480}  # ET, CT, MT, PT: DST by date
_TIME_AFTER = re.compile(r"\s*(?:t|at|@|,|-|–|\||·)?\s*" + _TIME, re.IGNORECASE)
_TIME_ANYWHERE = re.compile(_TIME, re.IGNORECASE)
_ISO_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}.*)?|\d{8}T\d{4}.*")
_EPOCH = re.compile(r"\d{10}|\d{13}")
_MAX_DATE_TEXT = 300  # characters of a date string looked at


def parse_date(
    text: str, *, day_first: bool = True, date_format: str | None = None
) -> datetime | None:
    """The date (and time) `text` shows, as an aware UTC datetime, or None.

    Tries `date_format` (a `datetime.strptime` format) on the whole text
    first, then reads: ISO 8601 (date alone, or with time and zone), epoch
    seconds or milliseconds (10 or 13 digits), "12 March 2026", "12 Mar
    2026", "12th of March, 2026", "Thursday 12 March 2026", "March 12, 2026",
    "Mar. 12 2026", and numeric 12/03/2026, 12.03.2026, 12-03-26 (two-digit
    years are 20xx), day first unless `day_first` is false (a part over 12
    settles it either way), year-first 2026/03/12.  The date may sit among
    other words ("Published on 12 March 2026 | 4 min read"); the earliest
    date in the text wins.  A time next to it ("at 9:30am", "14:05 GMT",
    "09:30 +01:00", "2:15 PM ET") is read when present; a time or date without
    a zone is UTC.  English month names only.  Never raises.
    """
    text = " ".join(text.split())[:_MAX_DATE_TEXT]
    if not text:
        return None
    if date_format:
        try:
            return as_utc(datetime.strptime(text, date_format))
        except (ValueError, OverflowError):
            pass
    if _ISO_LIKE.fullmatch(text):
        try:
            return as_utc(datetime.fromisoformat(text.replace("z", "Z")))
        except (ValueError, OverflowError):
            pass
    if _EPOCH.fullmatch(text):
        seconds = int(text) / (1000 if len(text) == 13 else 1)
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (ValueError, OverflowError, OSError):
            return None
    return _find_date(text, day_first)


def _find_date(text: str, day_first: bool) -> datetime | None:
    found = [m for p in _DATE_PATTERNS for m in p.finditer(text)]
    for m in sorted(found, key=lambda m: m.start()):
        day = _ymd(m, day_first)
        if day is None:
            continue
        after = _TIME_AFTER.match(text, m.end())
        moment = _with_time(day, after) if after is not None else None
        if moment is None:  # a time before the date: "14:05 GMT, 12 March 2026"
            before = list(_TIME_ANYWHERE.finditer(text, 0, m.start()))
            moment = _with_time(day, before[-1]) if before else None
        return moment or day
    return None


def _ymd(m: re.Match[str], day_first: bool) -> datetime | None:
    """The (UTC midnight) date one of `_DATE_PATTERNS` matched, or None if it is no date."""
    groups = m.groupdict()
    year = int(groups["year"])
    if len(groups["year"]) == 2:
        year += 2000
    if groups.get("month"):
        month, day = _MONTHS[groups["month"].lower()], int(groups["day"])
    elif groups.get("mon"):
        month, day = int(groups["mon"]), int(groups["day"])
    else:
        a, b = int(groups["a"]), int(groups["b"])
        if a > 12 >= b:
            day, month = a, b
        elif b > 12 >= a:
            day, month = b, a
        else:
            day, month = (a, b) if day_first else (b, a)
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def _with_time(day: datetime, m: re.Match[str]) -> datetime | None:
    """`day` at the time `m` matched, converted from its zone to UTC; None if no valid time."""
    hour, minute = int(m["hour"]), int(m["minute"])
    second = int(m["second"]) if m["second"] else 0
    if m["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m["ampm"].lower().startswith("p") else 0)
    if hour > 23 or minute > 59 or second > 60:
        return None
    offset = 0
    if m["sign"]:
        offset = int(m["oh"]) * 60 + int(m["om"])
        offset = -offset if m["sign"] == "-" else offset
    elif m["sign2"]:
        offset = int(m["oh2"]) * 60 + int(m["om2"] or 0)
        offset = -offset if m["sign2"] == "-" else offset
    elif m["zone"]:
        offset = _ZONES[m["zone"].lower()]
    elif m["us"]:
        offset = _US_STANDARD[m["us"].upper()] + (60 if _us_summer(day) else 0)
    if abs(offset) >= 24 * 60:
        return None
    local = day.replace(hour=hour, minute=minute, second=min(second, 59), tzinfo=None)
    return as_utc(local.replace(tzinfo=timezone(timedelta(minutes=offset))))


def _us_summer(day: datetime) -> bool:
    """Whether US daylight saving time is in force on `day` (second Sunday in March to
    first Sunday in November; the 2 a.m. changeover itself is not modelled)."""
    march = datetime(day.year, 3, 8, tzinfo=UTC)
    november = datetime(day.year, 11, 1, tzinfo=UTC)
    start = march + timedelta(days=(6 - march.weekday()) % 7)
    end = november + timedelta(days=(6 - november.weekday()) % 7)
    return start <= day < end


def as_utc(moment: datetime) -> datetime | None:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def zone_label(text: object) -> DateZone:
    """How the date `text` gave its zone: "none", "utc" (Z, GMT, +00:00) or "offset".

    A bare date, or a time whose text ends without a zone, is "none"; anything
    not understood (no text at all, a named zone such as EST) is "offset", the
    safe answer: no repair applies to it.
    """
    if not isinstance(text, str) or not text.strip():
        return "offset"
    if not _HAS_TIME_RE.search(text):
        return "none"  # a bare date: midnight, in no zone
    m = _ZONE_RE.search(text.strip())
    if m is None:
        return "none"
    zone = m.group("zone").lower().replace(":", "")
    if zone in _UTC_ZONES or zone in ("+00", "utc+0", "gmt+0", "ut+0"):
        return "utc"
    if zone[0] in "+-" or zone.startswith(("gmt", "utc", "ut")):
        return "offset"
    if zone in _MONTHS or zone in _WEEKDAYS or zone in ("am", "pm", "t"):
        return "none"
    return "offset"  # a named zone: EST, CEST, ...


_WEEKDAYS: Final = frozenset(
    {"mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"}
    | {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def repair(
    moment: datetime, label: DateZone, timezone_name: str | None, offset_fix: bool
) -> datetime:
    """`moment` (aware UTC) with the source's date repair applied.

    With `timezone_name`, a date written without an offset ("none") is that
    wall-clock time in the zone, not in UTC; with `offset_fix` too, so is a
    date labelled UTC ("utc").  A wall time that a daylight-saving change skips
    or repeats takes the earlier reading (`fold=0`).  Anything else is returned
    as it is.
    """
    if timezone_name is None or not (label == "none" or (offset_fix and label == "utc")):
        return moment
    local = moment.replace(tzinfo=_zone(timezone_name))
    try:
        return local.astimezone(UTC)
    except (OverflowError, ValueError):
        return moment
