"""Turn one document's `RawEntry` values into clean, identified `Item` values.

One job: links (resolved, tracking parameters removed, canonical identity
form), titles (plain text), summaries (HTML sanitized with nh3, relative URLs
made absolute), dates (UTC, with the fallback chain recorded), the entry's
identity within its source, and a hash of what readers see.  It does not
parse documents (`ingest.stages.parse`), decide what is new or changed across polls
(`ingest.stages.dedupe`), or store anything; it never mutates its inputs.  The URL
rules themselves (`canonical_url`, `clean_url`, `absolute_http_url`) live in
`ingest.stages.urls`.

Decisions worth knowing:

- A link's identity is its `canonical_url` (https, lower-case host, no
  default port, fragment or tracking parameters, sorted query, normalized
  percent-encoding); `Item.url` is its `clean_url`: exactly as published
  minus tracking parameters.
- An entry without an http(s) link keeps `url == ""` and gets the synthetic
  canonical key ``urn:ingest:<source key>:<entry key>``, so it never merges
  with another source's story.
- `Item.title` is plain text (entities decoded, tags removed): escape it
  when writing HTML.  A `<` left in it that could open a tag gets a space
  after it ("a< b"), so even a page that forgets to escape a title shows
  text, never markup (tests/test_xss.py).  `Item.summary` is sanitized HTML.
- `Item.kind` is "video" or "audio" when the entry carries such media, and
  "video" for links to YouTube videos and TED talks; else "article".  A
  YouTube link under /shorts/ is a Short (`is_short`).  A video without a
  media URL gets its embeddable player when the link names one (YouTube's
  /embed/ID, TED's embed.ted.com).
- Talk titles "Talk | Speaker" (TED's form) become title "Talk" and author
  "Speaker" when the title has exactly one " | " and the part after it is
  the entry's own author (any entry: the name is said twice), or, for
  videos and audio only, looks like a person's name (2-6 capitalised
  words, no digits, no words such as "Part" or "Episode").  An article
  whose title has a "|" before anything but its author's name is never
  touched.
- `content_hash` covers the media fields only for items that have some, so
  articles hash as they always did.
- Every text field and URL of an `Item` passes `controls.without_controls`
  as the Item is made: no C0 control character or DEL survives (tab and
  newline stay in text), whatever reader the entry came from.
- An undated item of a curated source (an editor's pick) is dated
  `LISTED_EPOCH` (1970-01-01) minus its place in the file in seconds
  (`date_source` "listed"): newest first is then the order of sources.yaml,
  and a pick never outranks a dated story in a mixed list.  Moving a pick
  in the file updates it in place.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urljoin

import nh3

from ingest.model import LISTED_EPOCH, DateSource, Item, ItemKind, RawEntry, Source
from ingest.stages.controls import without_controls
from ingest.stages.entry_rules import entry_key_of, local_dates
from ingest.stages.talks import split_speaker, video_player
from ingest.stages.urls import absolute_http_url, canonical_url, clean_url, url_fragment

# canonical_url and clean_url live in ingest.stages.urls; they are re-exported here
# because tests/test_normalize.py imports them from this module.
__all__ = ["MAX_DEPTH", "MAX_SUMMARY", "MAX_TITLE", "normalize"]

MAX_TITLE = 1_000
MAX_SUMMARY = 100_000
MAX_DEPTH = 512  # HTML nested deeper than this is stored as its text (`_too_deep`)
FUTURE_TOLERANCE = timedelta(days=1)
TITLE_FROM_SUMMARY = 80  # characters of summary text used when an entry has no title


# -- HTML -------------------------------------------------------------------------

_TAGS = frozenset(
    {
        *("p", "br", "hr", "div", "span", "a", "img", "figure", "figcaption"),
        *("ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "code"),
        *("strong", "em", "b", "i", "u", "s", "del", "ins", "small", "sub", "sup"),
        *("abbr", "cite", "q", "mark", "h2", "h3", "h4", "h5", "h6"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td"),
    }
)
_ATTRIBUTES = {
    "a": frozenset({"href", "title"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan"}),
}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Removed together with everything inside them (not just the tags).
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "noscript", "object", "embed", "template", "svg", "math"}
    | {"title"}  # a pasted-in document's <title> is not text of the story
)
# tags, comments, declarations (<!DOCTYPE ...>) and processing instructions (<?xml ...?>)
_TAG = re.compile(r"<(?:!--.*?-->|![A-Za-z\[][^>]*>|\?[^>]*>|/?[A-Za-z][^>]*>)", re.DOTALL)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_TAG_OPEN = re.compile(r"<(?=[A-Za-z!/?])")  # where an HTML parser would start a tag
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
# (a slash or not, the name) of each tag: `findall` gives pairs, not match objects
_START_OR_END = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)")
# void elements, and elements a parser closes by itself (a <p> or an <li> left open
# does not nest: the next one closes it)
_NOT_NESTING = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
    ]
)
_IMG_SRC = re.compile(r"""\ssrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_CHAR_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# C0 controls other than whitespace, and DEL: never wanted in text (and NUL breaks PostgreSQL).
_CONTROLS = dict.fromkeys([*range(9), 11, 12, *range(14, 32), 127])
_PIXEL = re.compile(r"""\s(?:width|height)\s*=\s*["']?[01](?:px)?(?:["'\s/>])""", re.IGNORECASE)


# -- normalize ------------------------------------------------------------------


def normalize(
    source: Source, base_url: str, entries: Sequence[RawEntry], now: datetime
) -> tuple[Item, ...]:
    """The `Item`s of one document from `source`, in document order.

    `base_url` is the document's final URL (relative links resolve against
    an entry's xml:base, then against it); `now` is when it was fetched (the
    date of undated entries, and the reference for "in the future").
    Entries with neither a title nor any summary text are dropped, and so is
    any entry whose `entry_key` an earlier entry already has.
    """
    now = _as_utc(now)
    if source.timezone is not None:
        entries = [local_dates(raw, source) for raw in entries]
    strip = source.strip_params
    entry_ids = [raw.id.translate(_CONTROLS).strip() if raw.id else "" for raw in entries]
    ids = Counter(i for i in entry_ids if i)
    bases = [_base(base_url, raw.base) for raw in entries]
    links = [absolute_http_url(raw.link, base) for raw, base in zip(entries, bases, strict=True)]
    keys = _story_keys([(canonical_url(x, strip), url_fragment(x)) if x else None for x in links])
    items: list[Item] = []
    seen: set[str] = set()
    for place, (raw, base, entry_id, link, key) in enumerate(
        zip(entries, bases, entry_ids, links, keys, strict=True)
    ):
        item = _item(source, base_url, base, raw, link, key, entry_id, now, ids, place)
        if item is not None and item.entry_key not in seen:
            seen.add(item.entry_key)
            items.append(item)
    return tuple(items)


def _story_keys(
    links: Sequence[tuple[str, str] | None],
) -> list[tuple[str, str | None]]:
    """Each link's (canonical URL, fragment URL) from its (canonical URL, fragment).

    A fragment does not make a different story, except where the document
    itself publishes several entries on one page under different fragments
    (an "awesome list" whose entries are its sections): those entries are
    keyed with their fragment (`page#two`).  Any other link with a fragment
    keeps it as `fragment_url`, which the store tries first, so that it
    joins another source's story keyed `page#two` (docs/database.md).
    """
    fragments: dict[str, set[str]] = {}
    for found in links:
        if found is not None and found[1]:
            fragments.setdefault(found[0], set()).add(found[1])
    out: list[tuple[str, str | None]] = []
    for found in links:
        if found is None:
            out.append(("", None))
            continue
        canonical, fragment = found
        if not fragment:
            out.append((canonical, None))
        elif len(fragments[canonical]) > 1:
            out.append((f"{canonical}#{fragment}", None))
        else:
            out.append((canonical, f"{canonical}#{fragment}"))
    return out


def _base(base_url: str, xml_base: str | None) -> str:
    """The base for an element's URLs: its xml:base resolved against the document URL."""
    return urljoin(base_url, xml_base.strip()) if xml_base and xml_base.strip() else base_url


def _item(
    source: Source,
    base_url: str,
    base: str,  # the entry's own base: its xml:base resolved against `base_url`
    raw: RawEntry,
    link: str | None,  # resolved against `base`, http(s) only
    story_key: tuple[str, str | None],  # (canonical URL, fragment URL), from _story_keys
    entry_id: str,  # raw.id, cleaned
    now: datetime,
    ids: Counter[str],
    place: int = 0,  # the entry's position in the document
) -> Item | None:
    strip = source.strip_params
    content_base = _base(base_url, raw.content_base)
    has_content = bool(raw.content and raw.content.strip())
    content = _sanitize(raw.content, content_base) if raw.content and has_content else None
    body: str | None
    if raw.summary and raw.summary.strip():  # the text for lists; else the content serves
        same = content is not None and raw.summary == raw.content and base == content_base
        summary = content if same and content is not None else _sanitize(raw.summary, base)
        body, body_base = raw.summary, base
    else:
        body, body_base, summary = raw.content, content_base, content or ""
    title = _plain(raw.title)[:MAX_TITLE] if raw.title else ""
    if not title:
        title = _shorten(_inert(_html_text(summary)), TITLE_FROM_SUMMARY)
        if not title:
            return None
    published_at, date_source = _date(raw, now)
    if date_source == "first_seen" and source.kind == "curated":
        published_at, date_source = LISTED_EPOCH - timedelta(seconds=place), "listed"

    canonical, fragment_url = story_key
    text = _html_text(content or summary) if source.identity == "content" else ""
    unique_id = entry_id if entry_id and ids[entry_id] == 1 else ""
    entry_key = entry_key_of(source.identity, raw, unique_id, canonical, title, text)

    url = clean_url(link, strip) if link else ""
    image_url = _image(raw, body_base, summary, body, content_base)
    author = _plain(raw.author) if raw.author else ""
    player = video_player(link) if link else None  # (embed URL, is a Short) of a video link
    kind: ItemKind = raw.media_kind or ("video" if player else "article")
    media_url = absolute_http_url(raw.media_url, base)
    if kind == "video" and media_url is None and player:
        media_url = player[0]
    is_short = kind == "video" and player is not None and player[1]
    duration = raw.duration if kind != "article" or media_url else None
    title, author = split_speaker(title, author, talk=kind != "article")
    stamp = "" if date_source == "first_seen" else published_at.isoformat()
    seen_fields: tuple[str, ...] = (url, title, summary, image_url or "", author or "", stamp)
    if kind != "article" or media_url:  # articles keep the hashes they always had
        seen_fields += (kind, str(duration or ""), media_url or "", "short" if is_short else "")
    if content is not None:  # so does an entry without full content
        seen_fields += ("content", content)
    item = Item(
        source_key=source.key,
        entry_key=entry_key,
        canonical_url=canonical or f"urn:ingest:{source.key}:{entry_key}",
        url=url,
        title=title,
        summary=summary,
        published_at=published_at,
        date_source=date_source,
        section=source.section,
        author=author or None,
        image_url=image_url,
        content_hash=hashlib.sha1("\x00".join(seen_fields).encode()).hexdigest(),
        kind=kind,
        duration=duration,
        media_url=media_url,
        is_short=is_short,
        content=content,
        fragment_url=fragment_url,
    )
    return without_controls(item)


def _date(raw: RawEntry, now: datetime) -> tuple[datetime, DateSource]:
    """published, else updated, else now; a date over a day ahead of `now` is not trusted."""
    latest = now + FUTURE_TOLERANCE
    if raw.published is not None and (published := _as_utc(raw.published)) <= latest:
        return published, "published"
    if raw.updated is not None and (updated := _as_utc(raw.updated)) <= latest:
        return updated, "updated"
    return now, "first_seen"


def _as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- text and HTML ----------------------------------------------------------------


def _plain(text: str) -> str:
    """Plain text: entities decoded, tags, scripts and controls removed, spaces collapsed."""
    text = text.translate(_CONTROLS)
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        if "<![" in text:  # a CDATA section's text is text
            text = _CDATA.sub(r"\1", text)
        text = _inert(_TAG.sub(" ", _SCRIPT.sub(" ", text)))
    return " ".join(text.split())


def _inert(text: str) -> str:
    """Plain text that no HTML parser reads a tag in: "<" + letter becomes "< " + letter."""
    return _TAG_OPEN.sub("< ", text) if "<" in text else text


def _html_text(fragment: str) -> str:
    """The text of sanitized HTML."""
    if "<" in fragment:
        fragment = _TAG.sub(" ", fragment)
    # controls go first: one between "<" and a letter would hide a tag from `_inert`
    return " ".join(html.unescape(fragment).translate(_CONTROLS).split())


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:-") + "…"


@lru_cache(maxsize=128)
def _cleaner(base: str) -> nh3.Cleaner:
    """The sanitizer for one base URL: relative URLs rewritten against it, or dropped
    (also when nh3 refuses the base: the fallback is cached with the rest)."""
    if absolute_http_url(base, "") is not None:
        try:
            return _new_cleaner(("rewrite_with_base", base))
        except ValueError:
            pass
    return _new_cleaner("deny")


def _new_cleaner(relative: nh3.UrlRelative) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer",
        url_relative=relative,
    )


def _sanitize(fragment: str, base: str) -> str:
    """Safe HTML of at most `MAX_SUMMARY` characters, relative URLs absolute against `base`."""
    fragment = fragment[:MAX_SUMMARY]
    if _too_deep(fragment):  # the sanitizer's time grows with the square of the depth
        if fragment.rfind("<") > fragment.rfind(">"):  # a tag cut short by the cap
            fragment = fragment[: fragment.rfind("<")]
        return html.escape(_html_text(fragment)[: MAX_SUMMARY // 6])
    cleaner = _cleaner(base)
    out: str = cleaner.clean(fragment)
    for _ in range(3):  # escaping and rel= can make it longer: cut and re-clean (never mid-tag)
        if len(out) <= MAX_SUMMARY:
            return out.strip()
        out = cleaner.clean(out[: MAX_SUMMARY * 3 // 4])
    return html.escape(_html_text(out)[: MAX_SUMMARY // 6])  # escaping grows text at most 6x


def _too_deep(fragment: str) -> bool:
    """Whether the elements of `fragment` nest deeper than `MAX_DEPTH` (void elements,
    and those a parser closes by itself, aside): html5ever, under nh3, scans its stack
    of open elements for many block tags, so 20,000 nested <div>s cost it a second."""
    if fragment.count("<") <= MAX_DEPTH:
        return False
    depth = 0
    for close, name in _START_OR_END.findall(_without_comments(fragment)):
        if name in _NOT_NESTING:
            continue  # neither its start nor its end tag changes the depth
        if close:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > MAX_DEPTH:
                return True
    return False


def _without_comments(fragment: str) -> str:
    """`fragment` without its HTML comments (Word's pasted `<!--[if gte mso 9]><xml>`
    blocks are full of tags), in one pass: an unclosed comment runs to the end, and
    `<!-->` or `<!--->` closes at once, as an HTML parser reads them."""
    if "<!--" not in fragment:
        return fragment
    kept, pos = [], 0
    while (start := fragment.find("<!--", pos)) != -1:
        kept.append(fragment[pos:start])
        end = fragment.find("-->", start + 2)
        if end == -1:
            return "".join(kept)
        pos = end + 3
    kept.append(fragment[pos:])
    return "".join(kept)


def _image(
    raw: RawEntry, base: str, summary: str, body: str | None, content_base: str
) -> str | None:
    """The entry's image: its declared images first, else the first <img> of its HTML
    (the summary's, resolved against `base`, else the content's, against `content_base`)."""
    for candidate in raw.images:
        found = absolute_http_url(candidate, base)
        if found:
            return found
    if "<img" in summary:  # sanitized: tag names are lower case
        found = _first_img(summary, base)
        if found:
            return found
    if raw.content and raw.content != body:
        return _first_img(raw.content, content_base)
    return None


def _first_img(fragment: str, base: str) -> str | None:
    for tag in _IMG.finditer(fragment):
        markup = tag.group(0)
        src = _IMG_SRC.search(markup)
        if src is None or _PIXEL.search(markup):  # no source, or a 1x1 tracking pixel
            continue
        value = next(g for g in src.groups() if g is not None)
        found = absolute_http_url(_CHAR_REF.sub(_unescape_ref, value), base)
        if found:
            return found
    return None


def _unescape_ref(m: re.Match[str]) -> str:
    """One character reference in an attribute value (only `;`-terminated ones count)."""
    return html.unescape(m.group(0))
