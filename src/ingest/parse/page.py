"""Read an HTML page's bytes into `RawEntry` values with the source's CSS selectors.

One job: a listing page (a "latest news" list, a blog index) becomes a tuple of
`RawEntry`, one per element the source's `select.item` selector matches, with
the title, link, date, summary and image its other selectors find inside that
element.  It does not fetch anything, clean text, sanitize HTML, canonicalize
links or decide identity (that is `ingest.normalize`), and it never guesses
where stories are: without matching selectors there are no entries, and a
page whose markup changed under the selectors is an error, not an empty list.

How it reads a page:

- Bytes are decoded here, once: a byte-order mark, else the `<meta charset>`
  (or XML declaration), else UTF-8 when the bytes are (mostly) UTF-8, else
  windows-1252 (what browsers assume for English pages; "iso-8859-1" and
  "ascii" labels also mean windows-1252, as browsers read them).  Bytes that
  are not HTML at all (PDF, images, archives, JSON, binary, plain text) raise
  `ParseError` saying what they look like.
- The page is parsed once with lxml (html.parser when lxml is missing) and
  selectors run through soupsieve.  A field selector looks inside the item,
  then at the item itself (so `item: a.card` with `link: a@href` works).
- `css@attr` reads the attribute of the first match that has a non-empty
  one; without `@attr` a field reads: title, the text; link, the `href`, else
  a URL written as the text; date, the `datetime` attribute, else the text;
  summary, the inner HTML; image, `src`, then `data-src`/`data-lazy-src`/the
  first `srcset` URL, of the element or of the first `<img>` inside it.  For
  a date whose named attribute is missing, the element's text is read
  instead; a date text that does not parse moves on to the next match.
- Links and images are made absolute against the page's `<base href>`
  (itself resolved against the page URL), else the page URL; that base goes
  in `RawEntry.base` when it differs from the page URL, for the summary's
  relative URLs.  A link that is empty, only a `#fragment`, or not http(s)
  (`javascript:`, `mailto:`) counts as no link.
- Dates become aware UTC datetimes (`parse_date`): ISO 8601, `<time
  datetime>` values, "12 March 2026", "Mar 12, 2026", "Thursday 12 March
  2026", numeric "12/03/2026" (day first unless the source says otherwise, or
  a strptime `date_format`), with an optional time and zone; a naive time is
  UTC.  What cannot be read leaves `published=None`.

Failures: the item selector matching nothing, or the title or link selector
finding nothing in every item, raise `ParseError` naming the selector; single
items without a title or a link are skipped.  At most `MAX_ITEMS` items are
read from one page.
"""

from __future__ import annotations

import codecs
import html
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import soupsieve
from bs4 import BeautifulSoup, Tag
from bs4.dammit import EncodingDetector

from ingest.errors import ParseError
from ingest.model import RawEntry, Source

__all__ = ["MAX_ITEMS", "parse_date", "parse_page"]

MAX_ITEMS = 1_000  # items read from one page; the rest are ignored

_FEATURES = "lxml" if importlib.util.find_spec("lxml") is not None else "html.parser"

# What config.py accepts after the last '@' as an attribute name.
_ATTR_RE = re.compile(r"[A-Za-z_:][-\w:.]*")
_HTTP = frozenset({"http", "https"})
_URL_WHITESPACE = dict.fromkeys(map(ord, "\t\n\r"))
_URL_TEXT = re.compile(r"(?:https?://|/)\S*", re.IGNORECASE)
_T = TypeVar("_T")

# -- decoding -------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels browsers read as another encoding (WHATWG Encoding Standard, the common ones).
_LABELS = {
    **dict.fromkeys(
        ("ascii", "us-ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "cp1252"),
        "windows-1252",
    ),
    **dict.fromkeys(("utf-16", "utf-16le", "utf-16be", "utf-32"), "utf-8"),  # in a meta tag
    **dict.fromkeys(("gb2312", "x-gbk"), "gbk"),
}
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"{\\rtf", "an RTF document"),
)
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")
_XML_DECLARATION = re.compile(r"\s*<\?xml\b[^>]*\?>")
_TAG_START = re.compile(r"<[A-Za-z!?/]")
_FIRST_ELEMENT = re.compile(r"<[A-Za-z]")  # not a declaration, comment or PI
_FEED_ROOT = re.compile(r"<(?:rss|feed|rdf:RDF)\b", re.IGNORECASE)

# -- dates ----------------------------------------------------------------------

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


def parse_page(source: Source, content: bytes, url: str) -> tuple[RawEntry, ...]:
    """The entries of one listing page, in document order, read with `source.select`.

    `url` is where the page came from (after redirects): with the page's
    `<base href>`, the base for relative links and images.  Raises
    `ParseError` when `content` is not HTML, when a selector is invalid, when
    the item selector matches nothing, or when no matched item has both a
    title and a link (naming the selector that found nothing).
    """
    fields = _fields(source.select, url)
    if "item" not in fields:
        raise ParseError(f"{url}: the source has no 'select.item' selector")
    for required in ("title", "link"):
        if required not in fields:
            raise ParseError(f"{url}: the source has no 'select.{required}' selector")
    soup, text = _document(content, url)
    base = _base(soup, url)
    item_field = fields["item"]
    items = item_field.pattern.select(soup, limit=MAX_ITEMS)
    if not items:
        raise ParseError(
            f"{url}: selector {item_field.label} matched nothing on the page{_hint(soup, text)}"
        )

    day_first, date_format = source.day_first, source.date_format or None
    title_field, link_field = fields["title"], fields["link"]
    date_field, summary_field, image_field = (
        fields.get("date"),
        fields.get("summary"),
        fields.get("image"),
    )

    def read_date(el: Tag, attr: str | None) -> datetime | None:
        shown = _date_text(el, attr)
        return parse_date(shown, day_first=day_first, date_format=date_format) if shown else None

    entries: list[RawEntry] = []
    titled = linked = 0
    for item in items:
        title = _first(item, title_field, _title)
        link = _first(item, link_field, lambda el, attr: _link(el, attr, base))
        titled += title is not None
        linked += link is not None
        if title is None or link is None:
            continue
        entries.append(
            RawEntry(
                link=link,
                title=title,
                summary=_first(item, summary_field, _summary) if summary_field else None,
                published=_first(item, date_field, read_date) if date_field else None,
                base=base if base != url else None,
                images=(_first(item, image_field, lambda el, a: _images(el, a, base)) or ())
                if image_field
                else (),
            )
        )
    if not entries:
        raise ParseError(f"{url}: {_why_none(len(items), title_field, titled, link_field, linked)}")
    return tuple(entries)


# -- selectors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    css: str
    attr: str | None
    pattern: soupsieve.SoupSieve

    @property
    def label(self) -> str:
        """The selector as the editor wrote it, for messages: 'title: h3 a'."""
        spec = f"{self.css}@{self.attr}" if self.attr else self.css
        return f"'{self.name}: {spec}'"


def _fields(select: tuple[tuple[str, str], ...], url: str) -> dict[str, _Field]:
    """Each configured selector, split into CSS and `@attr` (as config.py does) and compiled."""
    fields: dict[str, _Field] = {}
    for name, value in select:
        css, attr = value.strip(), None
        at = css.rfind("@")
        if at >= 0 and _ATTR_RE.fullmatch(css[at + 1 :]):
            css, attr = css[:at].strip(), css[at + 1 :].lower()
        try:
            pattern = soupsieve.compile(css)
        except Exception as e:  # SelectorSyntaxError, or an empty/odd pattern
            first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ParseError(
                f"{url}: select.{name}: {css!r} is not a valid CSS selector ({first_line})"
            ) from e
        fields[name] = _Field(name, css, attr, pattern)
    return fields


def _candidates(item: Tag, pattern: soupsieve.SoupSieve) -> Iterator[Tag]:
    """The matches inside `item` in document order, then `item` itself if it matches."""
    yield from pattern.iselect(item)
    if pattern.match(item):
        yield item


def _first(item: Tag, field: _Field, read: Callable[[Tag, str | None], _T | None]) -> _T | None:
    """What `read` gives for the first candidate element that gives something."""
    for el in _candidates(item, field.pattern):
        value = read(el, field.attr)
        if value is not None:
            return value
    return None


def _attr(el: Tag, name: str) -> str | None:
    value = el.get(name)
    if isinstance(value, list):  # only when multi-valued attributes are on
        value = " ".join(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _text(el: Tag) -> str | None:
    text = " ".join(el.get_text().split())
    return text or None


def _title(el: Tag, attr: str | None) -> str | None:
    text = _attr(el, attr) if attr else _text(el)
    if text is None:
        return None
    # normalize reads titles as HTML (entities decoded, tags stripped): escape the text.
    return html.escape(" ".join(text.split()), quote=False)


def _link(el: Tag, attr: str | None, base: str) -> str | None:
    if attr:
        return _absolute(_attr(el, attr), base)
    href = _attr(el, "href")
    if href:
        return _absolute(href, base)
    text = _text(el)  # a URL printed as text; "Read more" is not a link
    return _absolute(text, base) if text and _URL_TEXT.fullmatch(text) else None


def _summary(el: Tag, attr: str | None) -> str | None:
    if attr:
        value = _attr(el, attr)
        return html.escape(value, quote=False) if value else None
    inner = el.decode_contents().strip()
    return inner or None


def _date_text(el: Tag, attr: str | None) -> str | None:
    if attr:
        return _attr(el, attr) or _text(el)
    return _attr(el, "datetime") or _text(el)


def _images(el: Tag, attr: str | None, base: str) -> tuple[str, ...] | None:
    if attr:
        values = [_attr(el, attr)]
    else:
        values = _image_sources(el)
        if not values and el.name != "img" and isinstance(img := el.find("img"), Tag):
            values = _image_sources(img)
    found = tuple(dict.fromkeys(u for v in values if (u := _absolute(v, base)) is not None))
    return found or None


def _image_sources(el: Tag) -> list[str | None]:
    srcset = _attr(el, "srcset") or _attr(el, "data-srcset")
    first_of_set = srcset.split(",")[0].split()[0] if srcset and srcset.split() else None
    return [
        s
        for s in (_attr(el, "src"), _attr(el, "data-src"), _attr(el, "data-lazy-src"), first_of_set)
        if s
    ]


def _absolute(value: str | None, base: str) -> str | None:
    """`value` resolved against `base` when that gives an http(s) URL with a host."""
    if value and ("\n" in value or "\t" in value or "\r" in value):
        value = value.translate(_URL_WHITESPACE)  # browsers drop these from URLs
    if not value or value.startswith("#"):
        return None
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in _HTTP or not parts.netloc:
        return None
    return absolute


def _why_none(count: int, title: _Field, titled: int, link: _Field, linked: int) -> str:
    """Why `count` matched items gave no entry, naming the selector(s) to fix."""
    items = f"{count} item" if count == 1 else f"{count} items"
    missing = [f.label for f, hits in ((title, titled), (link, linked)) if hits == 0]
    if missing:
        any_of = "the 1 item" if count == 1 else f"any of the {items}"
        return "; ".join(f"selector {label} found nothing in {any_of}" for label in missing)
    return (
        f"no item has both a title and a link: selector {title.label} found one in "
        f"{titled} of {items}, {link.label} in {linked} of {items}"
    )


# -- the document -------------------------------------------------------------------


def _document(content: bytes, url: str) -> tuple[BeautifulSoup, str]:
    """The parsed page and its text; `ParseError` when the bytes are not an HTML page."""
    problem = _not_html(content)
    text = _decode(content) if problem is None else ""
    if problem is None and not _TAG_START.search(text):
        problem = f"text without any HTML tags, starting {text.strip()[:40]!r}"
    if problem is not None:
        raise ParseError(f"{url}: not an HTML page: looks like {problem}")
    if "\x00" in text:
        text = text.replace("\x00", "")
    if (declaration := _XML_DECLARATION.match(text)) is not None:
        # Means nothing to an HTML parser (the text is decoded already), and makes
        # bs4 warn about XML parsed as HTML when the document is a feed.
        text = text[declaration.end() :]
    try:
        return BeautifulSoup(text, _FEATURES, multi_valued_attributes=None), text
    except Exception as e:  # the parsers recover from anything; a raise is a fault
        raise ParseError(f"{url}: the HTML parser failed: {e}") from e


def _not_html(content: bytes) -> str | None:
    """What `content` looks like when it is clearly not an HTML page, else None."""
    if content.startswith(tuple(bom for bom, _ in _BOMS)) or content[:2] in (b"<\x00", b"\x00<"):
        return None  # a byte-order mark, or UTF-16 without one: text
    head = content[:1024].lstrip(b" \t\r\n\f")
    if not head:
        return "an empty document"
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if b"\x00" in head or sum(b < 9 or 13 < b < 27 or 27 < b < 32 for b in head) > 2:
        return f"binary data ({len(content)} bytes, starting {head[:8]!r})"
    if head.startswith((b"{", b"[")):
        return "JSON"
    return None


def _decode(content: bytes) -> str:
    """The page as text: BOM, else declared charset, else UTF-8, else windows-1252."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, errors="replace")
    if content[:2] == b"<\x00":
        return content.decode("utf-16-le", errors="replace")
    if content[:2] == b"\x00<":
        return content.decode("utf-16-be", errors="replace")
    declared = EncodingDetector.find_declared_encoding(content[:16_384], is_html=True)
    if declared:
        label = declared.strip().lower()
        encoding = _LABELS.get(label, label)
        try:
            codecs.lookup(encoding)
        except LookupError:
            pass  # an unknown label: read it as if undeclared
        else:
            return content.decode(encoding, errors="replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Mostly UTF-8 with a few bad bytes (a pasted-in fragment) stays UTF-8; else windows-1252.
    sequences = _UTF8_SEQUENCE.findall(content)
    stray = len(_HIGH_BYTE.findall(content)) - sum(len(m) for m in sequences)
    if len(sequences) > stray:
        return content.decode("utf-8", errors="replace")
    return content.decode("windows-1252", errors="replace")


def _base(soup: BeautifulSoup, url: str) -> str:
    """The base for relative URLs: the first `<base href>`, resolved against `url`, else `url`."""
    tag = soup.find("base", href=True)
    href = _attr(tag, "href") if isinstance(tag, Tag) else None
    return (_absolute(href, url) or url) if href else url


def _hint(soup: BeautifulSoup, text: str) -> str:
    """What the page was instead, for the "matched nothing" message."""
    root = _FIRST_ELEMENT.search(text[:4096])
    if root is not None and _FEED_ROOT.match(text, root.start()):
        return " (it looks like a feed: use 'kind: feed' for it)"
    title = soup.title
    shown = _text(title) if isinstance(title, Tag) else None
    return f" (the page's title is {shown[:80]!r})" if shown else ""


# -- dates --------------------------------------------------------------------------


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
            return _utc(datetime.strptime(text, date_format))
        except (ValueError, OverflowError):
            pass
    if _ISO_LIKE.fullmatch(text):
        try:
            return _utc(datetime.fromisoformat(text.replace("z", "Z")))
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
    return _utc(local.replace(tzinfo=timezone(timedelta(minutes=offset))))


def _us_summer(day: datetime) -> bool:
    """Whether US daylight saving time is in force on `day` (second Sunday in March to
    first Sunday in November; the 2 a.m. changeover itself is not modelled)."""
    march = datetime(day.year, 3, 8, tzinfo=UTC)
    november = datetime(day.year, 11, 1, tzinfo=UTC)
    start = march + timedelta(days=(6 - march.weekday()) % 7)
    end = november + timedelta(days=(6 - november.weekday()) % 7)
    return start <= day < end


def _utc(moment: datetime) -> datetime | None:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
