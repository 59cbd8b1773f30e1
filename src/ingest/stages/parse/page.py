"""Read an HTML page's bytes into `RawEntry` values with the source's CSS selectors.

One job: a listing page (a "latest news" list, a blog index) becomes a tuple of
`RawEntry`, one per element the source's `select.item` selector matches, with
the title, link, date, summary and image its other selectors find inside that
element.  It does not fetch anything, clean text, sanitize HTML, canonicalize
links or decide identity (that is `ingest.stages.normalize`), and it never guesses
where stories are: without matching selectors there are no entries, and a
page whose markup changed under the selectors is an error, not an empty list.

How it reads a page:

- Bytes are decoded once, as browsers do (`ingest.stages.parse.decoding`: a
  byte-order mark, else the `<meta charset>`, else UTF-8 when the bytes are
  mostly UTF-8, else windows-1252).  Bytes that are not HTML at all (PDF,
  images, archives, JSON, binary, plain text) raise `ParseError` saying what
  they look like.
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
- Dates are read by `ingest.stages.parse.dates.parse_date` (with the source's
  `day_first` and `date_format`) into aware UTC datetimes; what cannot be
  read leaves `published=None`.

Failures: the item selector matching nothing, or the title or link selector
finding nothing in every item, raise `ParseError` naming the selector; single
items without a title or a link are skipped.  At most `MAX_ITEMS` items are
read from one page.
"""

from __future__ import annotations

import html
import importlib.util
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import soupsieve
from bs4 import BeautifulSoup, Tag

from ingest.errors import ParseError
from ingest.model import DateZone, RawEntry, Source
from ingest.stages.parse.dates import parse_date, zone_label
from ingest.stages.parse.decoding import decode_html, not_html
from ingest.stages.urls import href_url

# parse_date lives in ingest.stages.parse.dates; it is re-exported here because
# tests/test_page.py imports it from this module.
__all__ = ["MAX_ITEMS", "parse_page"]

MAX_ITEMS = 1_000  # items read from one page; the rest are ignored

_FEATURES = "lxml" if importlib.util.find_spec("lxml") is not None else "html.parser"

# What config.py accepts after the last '@' as an attribute name.
_ATTR_RE = re.compile(r"[A-Za-z_:][-\w:.]*")
_URL_TEXT = re.compile(r"(?:https?://|/)\S*", re.IGNORECASE)
_T = TypeVar("_T")

_XML_DECLARATION = re.compile(r"\s*<\?xml\b[^>]*\?>")
_TAG_START = re.compile(r"<[A-Za-z!?/]")
_FIRST_ELEMENT = re.compile(r"<[A-Za-z]")  # not a declaration, comment or PI
_FEED_ROOT = re.compile(r"<(?:rss|feed|rdf:RDF)\b", re.IGNORECASE)


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

    def read_date(el: Tag, attr: str | None) -> tuple[datetime, DateZone] | None:
        shown = _date_text(el, attr)
        when = parse_date(shown, day_first=day_first, date_format=date_format) if shown else None
        return None if when is None else (when, zone_label(shown))

    entries: list[RawEntry] = []
    titled = linked = 0
    for item in items:
        title = _first(item, title_field, _title)
        link = _first(item, link_field, lambda el, attr: _link(el, attr, base))
        titled += title is not None
        linked += link is not None
        if title is None or link is None:
            continue
        dated = _first(item, date_field, read_date) if date_field else None
        entries.append(
            RawEntry(
                link=link,
                title=title,
                summary=_first(item, summary_field, _summary) if summary_field else None,
                published=dated[0] if dated else None,
                published_zone=dated[1] if dated else "offset",
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
        return href_url(_attr(el, attr), base)
    href = _attr(el, "href")
    if href:
        return href_url(href, base)
    text = _text(el)  # a URL printed as text; "Read more" is not a link
    return href_url(text, base) if text and _URL_TEXT.fullmatch(text) else None


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
    found = tuple(dict.fromkeys(u for v in values if (u := href_url(v, base)) is not None))
    return found or None


def _image_sources(el: Tag) -> list[str | None]:
    srcset = _attr(el, "srcset") or _attr(el, "data-srcset")
    first_of_set = srcset.split(",")[0].split()[0] if srcset and srcset.split() else None
    return [
        s
        for s in (_attr(el, "src"), _attr(el, "data-src"), _attr(el, "data-lazy-src"), first_of_set)
        if s
    ]


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
    problem = not_html(content)
    text = decode_html(content) if problem is None else ""
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
        with warnings.catch_warnings():  # bs4's advice is for programmers, not users
            warnings.simplefilter("ignore")
            return BeautifulSoup(text, _FEATURES, multi_valued_attributes=None), text
    except Exception as e:  # the parsers recover from anything; a raise is a fault
        raise ParseError(f"{url}: the HTML parser failed: {e}") from e


def _base(soup: BeautifulSoup, url: str) -> str:
    """The base for relative URLs: the first `<base href>`, resolved against `url`, else `url`."""
    tag = soup.find("base", href=True)
    href = _attr(tag, "href") if isinstance(tag, Tag) else None
    return (href_url(href, url) or url) if href else url


def _hint(soup: BeautifulSoup, text: str) -> str:
    """What the page was instead, for the "matched nothing" message."""
    root = _FIRST_ELEMENT.search(text[:4096])
    if root is not None and _FEED_ROOT.match(text, root.start()):
        return " (it looks like a feed: use 'kind: feed' for it)"
    title = soup.title
    shown = _text(title) if isinstance(title, Tag) else None
    return f" (the page's title is {shown[:80]!r})" if shown else ""
