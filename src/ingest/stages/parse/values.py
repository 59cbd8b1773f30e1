"""Small converters the feed readers share: text, URL lists, media kinds, durations.

One job: turn one value as a document carries it into what a `RawEntry`
holds (`as_text`: a non-blank string or None; `unique`: URLs in order, each
once; `media_kind`: "video" or "audio" from a medium or MIME type;
`parse_duration`: whole seconds from the duration notations of podcasts and
video feeds).  Pure; it reads no documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ingest.model import MediaKind

__all__ = ["as_text", "media_kind", "parse_duration", "unique"]

_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:\.\d+)?")
_ISO_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", re.IGNORECASE)
_MAX_DURATION = 7 * 86400  # longer is not a real talk or episode: ignored


def as_text(value: object, *, strip: bool = True) -> str | None:
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if not stripped:
        return None
    return stripped if strip else value


def media_kind(medium: object, mime: object) -> MediaKind | None:
    """ "video" or "audio" from a media:content `medium` or a MIME type, else None."""
    for value in (medium, str(mime or "").partition("/")[0]):
        word = str(value or "").strip().lower()
        if word == "video":
            return "video"
        if word == "audio":
            return "audio"
    return None


def parse_duration(value: object) -> int | None:
    """Whole seconds from a media duration: 872, "872", "14:32", "0:14:32", "PT14M32S".

    None for anything else, for zero, and for more than a week (a typo, not a talk).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = as_text(value)
        if text is None:
            return None
        clock, iso = _CLOCK.fullmatch(text), _ISO_DURATION.fullmatch(text)
        if clock is not None:
            hours, minutes, secs = (int(g or 0) for g in clock.groups())
            if (clock.group(1) is not None and minutes > 59) or secs > 59:
                return None
            seconds = float(hours * 3600 + minutes * 60 + secs)
        elif iso is not None and text.upper() != "PT":
            hours, minutes = int(iso.group(1) or 0), int(iso.group(2) or 0)
            seconds = hours * 3600 + minutes * 60 + float(iso.group(3) or 0)
        else:
            try:
                seconds = float(text)
            except ValueError:
                return None
    if not 0 < seconds <= _MAX_DURATION:  # also refuses NaN
        return None
    return round(seconds)


def unique(urls: Iterable[object]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for u in urls:
        text = as_text(u)
        if text:
            seen.setdefault(text, None)
    return tuple(seen)
