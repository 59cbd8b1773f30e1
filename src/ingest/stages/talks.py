"""Talks and videos: a link's embeddable player, and "Talk | Speaker" titles.

One job: the two rules `ingest.stages.normalize` applies to talks and videos.
`video_player` gives the embeddable player of a link to a YouTube video
(`https://www.youtube.com/embed/ID`, and whether it is a Short) or a TED talk
(`https://embed.ted.com/talks/...`); `split_speaker` turns TED's title form
"Talk | Speaker" into title "Talk" and author "Speaker" when the title has
exactly one " | " and the part after it is the entry's own author, or, for
videos and audio only, looks like a person's name (2-6 capitalised words, no
digits, no words such as "Part" or "Episode").  Pure string work: it fetches
nothing and reads no documents (the feed reader finds media elements).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["split_speaker", "video_player"]

_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com"})
_YOUTUBE_PATH = re.compile(r"/(?:shorts|embed|live|v)/([A-Za-z0-9_-]{6,20})(?:[/?#]|$)")
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{6,20}")
_TED_TALK = re.compile(r"/talks/([\w-]+)/?$")
_NOT_NAMES = frozenset(
    {
        *("part", "episode", "ep", "chapter", "series", "season", "vol", "volume"),
        *("trailer", "official", "full", "live", "highlights", "interview"),
        *("keynote", "panel", "webinar", "podcast", "talk", "video", "short", "shorts"),
    }
)
_NAME_PARTICLES = frozenset(
    {"de", "da", "di", "del", "della", "der", "den", "van", "von", "le", "la", "du", "dos"}
    | {"das", "bin", "ibn", "al", "el", "y", "and", "&"}
)


def video_player(url: str) -> tuple[str, bool] | None:
    """For a link to a YouTube video or a TED talk: its embeddable player, and whether it
    is a YouTube Short; None for any other link."""
    lowered = url.lower()
    if "youtu" not in lowered and "ted.com" not in lowered:  # the common case, without parsing
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    path = parts.path
    if host == "youtu.be":
        video = path.strip("/")
        if not _YOUTUBE_ID.fullmatch(video):
            return None
        return "https://www.youtube.com/embed/" + video, False
    if host in _YOUTUBE_HOSTS:
        found = None
        if path == "/watch":
            for part in parts.query.split("&"):
                name, _, value = part.partition("=")
                if name == "v" and _YOUTUBE_ID.fullmatch(value):
                    found = value
                    break
        elif (m := _YOUTUBE_PATH.match(path)) is not None:
            found = m.group(1)
        if found is None:
            return None
        return "https://www.youtube.com/embed/" + found, path.startswith("/shorts/")
    if host in ("ted.com", "www.ted.com") and (m := _TED_TALK.match(path)) is not None:
        return "https://embed.ted.com/talks/" + m.group(1), False
    return None


def split_speaker(title: str, author: str, *, talk: bool) -> tuple[str, str]:
    """("Talk", "Speaker") from "Talk | Speaker" (see the module doc), else unchanged."""
    if " | " not in title:
        return title, author
    name, _, speaker = title.partition(" | ")
    name, speaker = name.strip(), speaker.strip()
    if not name or not speaker or "|" in speaker:
        return title, author
    if (author and speaker.casefold() == author.casefold()) or (talk and _name_like(speaker)):
        return name, speaker
    return title, author


def _name_like(text: str) -> bool:
    words = text.split()
    if not 2 <= len(words) <= 6 or len(text) > 60 or any(c.isdigit() for c in text):
        return False
    for word in words:
        bare = word.strip(".,'\u2019()").lower()
        if bare in _NOT_NAMES:
            return False
        if not (word[0].isupper() or bare in _NAME_PARTICLES):
            return False
    return True
