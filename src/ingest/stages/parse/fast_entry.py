"""One feed entry replayed through feedparser's rules, for the fast reader.

One job: `EntryReader` turns one `<item>`/`<entry>` element (lxml) into the
dict feedparser would have made of it, holding the keys `ingest.stages.parse.feed`
reads: element names lower-cased and namespaces mapped to feedparser's
prefixes (`name_of`), attributes as its strict parser gives them, the
summary/content precedence (a second description is content; content is
copied to an absent summary), the title-depth rule, author details with the
e-mail split, links and enclosures, media, xml:base (`base_of`), and its text
repairs (`repair`).  A shape it does not replay raises `Refused`, and the
document goes to feedparser.  It parses nothing itself (`ingest.stages.parse.fast`
does) and cleans nothing (`ingest.stages.normalize`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from typing import Any

import feedparser as _fp
import feedparser.datetimes
import feedparser.html
import feedparser.mixin
import feedparser.urls

from ingest.stages.urls import joins_as_is

__all__ = ["FEED_LEVEL_REFUSED", "EntryReader", "Refused", "base_of", "name_of"]

_XML_NS = "{http://www.w3.org/XML/1998/namespace}base"
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_ENTITY_IN_LINK = re.compile(r"&([A-Za-z0-9_]+);")


class Refused(Exception):
    """This document is feedparser's to read."""


# -- feedparser's view of an element -------------------------------------------------

_NAMESPACES = {k.lower(): v for k, v in _fp.mixin._FeedParserMixin.namespaces.items()}


def name_of(el: Any) -> str:
    """The element's name as feedparser dispatches on it: `prefix:local`, lower case,
    with known namespaces mapped to feedparser's prefixes ('' for RSS and Atom)."""
    key = (el.tag, el.prefix)
    name = _NAMES.get(key)
    if name is None:
        name = _name_from(el)
        if len(_NAMES) < 4096:  # bounded: a hostile document may invent any number of tags
            _NAMES[key] = name
    return name


_NAMES: dict[tuple[str, str | None], str] = {}  # (tag, prefix) -> name: a few dozen in practice


def _name_from(el: Any) -> str:
    tag: str = el.tag
    if tag[0] != "{":
        return tag.lower()
    uri, _, local = tag[1:].partition("}")
    lowered = uri.lower()
    if "backend.userland.com/rss" in lowered:
        lowered = "http://backend.userland.com/rss"
    prefix = _NAMESPACES.get(lowered, el.prefix)  # None: an unknown default namespace
    return f"{prefix.lower()}:{local.lower()}" if prefix else local.lower()


def _attrs(el: Any) -> dict[str, str]:
    """Attributes as feedparser's strict parser gives them: names lower case, known
    namespaces as prefixes, `rel` and `type` values lower case."""
    out: dict[str, str] = {}
    for key, value in el.attrib.items():
        if key[0] == "{":
            uri, _, local = key[1:].partition("}")
            prefix = _NAMESPACES.get(uri.lower(), "")
            key = f"{prefix}:{local}" if prefix else local
        key = key.lower()
        out[key] = value.lower() if key in ("rel", "type") else value
    return out


def _repair(text: str) -> str:
    """feedparser's repairs of every text it stores: UTF-8 read as Latin-1 undone,
    C1 controls mapped as windows-1252 maps them."""
    if text.isascii():  # both repairs leave ASCII alone
        return text
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("iso-8859-1").decode("utf-8")
    return text.translate(_CP1252) if _C1.search(text) else text


def _own_text(el: Any) -> str:
    """The text directly inside `el` (its children's tails included), as feedparser's
    element stack collects it for an element whose children push their own."""
    parts = [el.text or ""]
    parts += [child.tail or "" for child in el]
    return "".join(parts)


def _plain_text(el: Any) -> str:
    """The text of an element that must have no element children."""
    if len(el):
        raise Refused
    return el.text or ""


def _map_type(value: str) -> str:
    value = value.lower()
    return {"text": "text/plain", "plain": "text/plain", "html": "text/html"}.get(
        value, "application/xhtml+xml" if value == "xhtml" else value
    )


_CP1252 = _fp.html._cp1252
_C1 = re.compile("[\x80-\x9f]")
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_AUTHORS = frozenset({"author", "managingeditor", "dc:author", "dc:creator", "itunes:author"})
_AUTHOR_PARTS = frozenset({"name", "itunes:name", "email", "itunes:email", "uri", "url"})
_PUBLISHED = frozenset({"pubdate", "published", "issued", "dcterms:issued"})
_UPDATED = frozenset({"updated", "modified", "lastbuilddate", "dc:date", "dcterms:modified"})
_CREATED = frozenset({"created", "dcterms:created"})
_DATE_KEYS = {
    **dict.fromkeys(_PUBLISHED, "published"),
    **dict.fromkeys(_UPDATED, "updated"),
    **dict.fromkeys(_CREATED, "created"),
}
_DESCRIPTIONS = frozenset({"description", "dc:description", "media:description"})
_CONTENTS = {"content": "text/plain", "content:encoded": "text/html", "fullitem": "text/html"}
# content outside any entry would set feedparser's "has content" flag for the first one
FEED_LEVEL_REFUSED = frozenset({*_CONTENTS, "body", "xhtml:body"})
_GENERIC_READ = frozenset({"itunes_duration", "yt_videoid"})
# keys ingest reads that a generic element of the same name would clobber
_READ_KEYS = frozenset(
    {"id", "link", "links", "title", "summary", "content", "author", "author_detail", "image"}
    | {"media_content", "media_thumbnail", "published_parsed", "updated_parsed"}
    | {"created_parsed", "title_detail", "summary_detail", "authors"}
)
_REFUSED = frozenset({"image", "textinput", "item", "entry", "body", "xhtml:body", "abstract"})
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|"""
    r"""(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)


def base_of(el: Any, parent: str) -> str:
    """feedparser's base URI inside `el` (xml:base, or a plain `base` attribute)."""
    given = el.get(_XML_NS) or el.get("base")
    if not given:
        return parent
    if parent:
        return str(_fp.urls.make_safe_absolute_uri(parent, given) or parent)
    return str(_fp.urls._urljoin(parent, given))


class EntryReader:
    """One entry's feedparser-shaped dict, built as feedparser's handlers build it."""

    def __init__(self, el: Any, base: str, depth: int) -> None:
        # feedparser's set of URL elements, as ingest.stages.parse.feed left it (ids are not URLs)
        self.can_be_relative = _fp.mixin._FeedParserMixin.can_be_relative_uri
        self.el = el
        self.base = base
        self.depth = depth
        self.e: dict[str, Any] = {}
        self.depths: dict[str, int] = {}
        self.title_depth = -1
        self.has_content = False

    def read(self) -> dict[str, Any]:
        attrs = _attrs(self.el)
        if "lastmod" in attrs or "href" in attrs:
            raise Refused
        about = attrs.get("rdf:about")
        if about:
            self.e["id"] = about
        self._children(self.el, self.base, self.depth)
        return self.e

    def _children(self, el: Any, base: str, depth: int) -> None:
        for child in el:
            self._element(child, base_of(child, base), depth + 1)

    # -- storing, as feedparser's pop() stores ----------------------------------------

    def _finish(self, name: str, text: str, base: str) -> str:
        """A pushed element's text after feedparser's pop(): stripped, resolved when it
        is a URL, repaired."""
        output = text.strip()
        if name in self.can_be_relative and output and not joins_as_is(output, base or ""):
            output = _fp.urls._urljoin(base or "", output)
        return _repair(output)

    def _store(self, key: str, value: Any, depth: int) -> None:
        old = self.depths.get(key)
        if old is None or depth <= old:
            self.depths[key] = depth
            self.e[key] = value

    # -- elements ---------------------------------------------------------------------

    def _element(self, el: Any, base: str, depth: int) -> None:
        name = name_of(el)
        handle = _HANDLERS.get(name)
        if handle is not None:
            handle(self, el, name, base, depth)
        elif name in _REFUSED:
            raise Refused
        else:
            self._generic(el, name, base, depth)

    # one handler per kind of element, found by name in `_HANDLERS` (below the class)

    def _on_title(self, el: Any, name: str, base: str, depth: int) -> None:
        value = self._text_construct(el, base, depth, "title", "text/plain")
        if value:
            self.title_depth = depth

    def _on_media_title(self, el: Any, name: str, base: str, depth: int) -> None:
        kept = self.title_depth
        self._on_title(el, name, base, depth)
        self.title_depth = kept

    def _on_summary(self, el: Any, name: str, base: str, depth: int) -> None:
        """`summary` (plain text unless typed) or a description (HTML unless typed): after a
        summary and before any content, a second one is content."""
        if "summary" in self.e and not self.has_content:
            self._content(el, base, depth, "text/plain", also=True)
        else:
            default = "text/plain" if name == "summary" else "text/html"
            self._text_construct(el, base, depth, "summary", default)

    def _on_content(self, el: Any, name: str, base: str, depth: int) -> None:
        self._content(el, base, depth, _CONTENTS[name], also=name == "content")

    def _on_enclosure(self, el: Any, name: str, base: str, depth: int) -> None:
        attrs = _enforce_href(_attrs(el))
        attrs["rel"] = "enclosure"
        self.e.setdefault("links", []).append(attrs)
        self._children(el, base, depth)

    def _on_media_content(self, el: Any, name: str, base: str, depth: int) -> None:
        self.e.setdefault("media_content", []).append(_attrs(el))
        self._children(el, base, depth)

    def _on_itunes_image(self, el: Any, name: str, base: str, depth: int) -> None:
        attrs = _attrs(el)
        href = attrs.get("href") or attrs.get("url")
        if href:
            self.e["image"] = {"href": href}
        self._children(el, base, depth)

    def _on_source(self, el: Any, name: str, base: str, depth: int) -> None:
        self.title_depth = -1  # and nothing inside it is the entry's

    def _on_media_group(self, el: Any, name: str, base: str, depth: int) -> None:
        self._children(el, base, depth)

    def _text_construct(self, el: Any, base: str, depth: int, key: str, default: str) -> str:
        """push_content + pop_content: the value and its detail (type, base)."""
        kind = _map_type(el.get("type", default))
        if kind not in _TEXT_TYPES or el.get("mode") == "base64":
            raise Refused
        output = self._finish(key, _plain_text(el), base)
        if key == "title" and -1 < self.title_depth <= depth:
            return output
        self._store(key, output, depth)
        self.e[key + "_detail"] = {"type": kind, "base": base, "value": output}
        return output

    def _content(self, el: Any, base: str, depth: int, default: str, *, also: bool) -> None:
        """_start_content / _end_content: a content value, copied to an absent summary."""
        self.has_content = True
        kind = _map_type(el.get("type", default))
        if kind not in _TEXT_TYPES or el.get("mode") == "base64" or el.get("src"):
            raise Refused
        output = self._finish("content", _plain_text(el), base)
        self.e.setdefault("content", []).append({"type": kind, "base": base, "value": output})
        self.e.setdefault("summary", output)

    def _on_link(self, el: Any, name: str, base: str, depth: int) -> None:
        attrs = _enforce_href(_attrs(el))
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        if "href" in attrs and not joins_as_is(attrs["href"], base or ""):
            attrs["href"] = _fp.urls._urljoin(base or "", attrs["href"])
        self.e.setdefault("links", []).append(attrs)
        if "href" in attrs:
            if attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _HTML_TYPES:
                self.e["link"] = attrs["href"]
            self._children(el, base, depth)
            return
        output = self._finish("link", _plain_text(el), base)
        output = _ENTITY_IN_LINK.sub(r"&\g<1>", output.replace("&amp;", "&"))
        self.e["link"] = output
        if output:
            attrs["href"] = output

    def _on_guid(self, el: Any, name: str, base: str, depth: int) -> None:
        is_link = _attrs(el).get("ispermalink", "true") == "true"
        value = self._finish("id", _plain_text(el), base)
        self._store("id", value, depth)
        self.e.setdefault("guidislink", is_link and "link" not in self.e)
        if is_link:
            self.e.setdefault("link", value)

    def _on_date(self, el: Any, name: str, base: str, depth: int) -> None:
        key = _DATE_KEYS[name]  # published, updated or created
        value = self._finish(key, _plain_text(el), base)
        self._store(key, value, depth)
        self.e[key + "_parsed"] = _fp.datetimes._parse_date(value)

    def _on_media_thumbnail(self, el: Any, name: str, base: str, depth: int) -> None:
        attrs = _attrs(el)
        self.e.setdefault("media_thumbnail", []).append(attrs)
        url = self._finish("url", _plain_text(el), base)
        self._store("url", url, depth)
        if url.strip() and "url" not in attrs:
            attrs["url"] = url

    def _on_author(self, el: Any, name: str, base: str, depth: int) -> None:
        """_start_author ... _end_author, with the name and email parts saved between."""
        self.e.setdefault("authors", []).append({})
        for part in el:
            part_name = name_of(part)
            if len(part):
                raise Refused
            if part_name not in _AUTHOR_PARTS:  # Blogger's gd:image: no text, no field of ours
                if part_name in _AUTHORS or (part.text or "").strip():
                    raise Refused
                self._generic(part, part_name, base, depth + 1)
                continue
            if _attrs(part):
                raise Refused
            if part_name in ("uri", "url"):
                href = self._finish("href", part.text or "", base_of(part, base))
                self._store("href", href, depth + 1)
                self._save_author("href", href)
            else:  # name, email: popped without repairs (not expecting text)
                field = part_name.rpartition(":")[2]
                self._save_author(field, (part.text or "").strip())
        self._store("author", self._finish("author", _own_text(el), base), depth)
        self._sync_author()

    def _save_author(self, key: str, value: str) -> None:
        self.e.setdefault("author_detail", {})[key] = value
        self._sync_author()
        self.e.setdefault("authors", [{}])[-1][key] = value

    def _sync_author(self) -> None:
        """feedparser's _sync_author_detail, for the entry."""
        detail = self.e.get("authors", [{}])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                self.e["author"] = f"{name} ({email})"
            elif name:
                self.e["author"] = name
            elif email:
                self.e["author"] = email
            return
        author, email = self.e.get("author"), None
        if not author:
            return
        match = _EMAIL.search(author)
        if match:
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            self.e.setdefault("author_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def _generic(self, el: Any, name: str, base: str, depth: int) -> None:
        """An element without a handler: its text is stored under its name when it has no
        attributes; its children are read either way."""
        key = name.replace(":", "_")
        if key in _READ_KEYS:
            raise Refused
        if key in _GENERIC_READ:
            attrs = _attrs(el)
            if attrs:
                self.e[key] = attrs
            else:
                self._store(key, self._finish(key, _own_text(el), base), depth)
        self._children(el, base, depth)


# element name -> its handler (`EntryReader._element`); a name without one is refused
# (`_REFUSED`) or read as a generic element.  No name is in two of these groups.
_Handler = Callable[[EntryReader, Any, str, str, int], None]
_GROUPS: tuple[tuple[Iterable[str], _Handler], ...] = (
    (("title", "dc:title"), EntryReader._on_title),
    (("media:title",), EntryReader._on_media_title),
    ((*_DESCRIPTIONS, "summary"), EntryReader._on_summary),
    (_CONTENTS, EntryReader._on_content),
    (("link",), EntryReader._on_link),
    (("guid", "id"), EntryReader._on_guid),
    ((*_PUBLISHED, *_UPDATED, *_CREATED), EntryReader._on_date),
    (_AUTHORS, EntryReader._on_author),
    (("enclosure",), EntryReader._on_enclosure),
    (("media:content",), EntryReader._on_media_content),
    (("media:thumbnail",), EntryReader._on_media_thumbnail),
    (("itunes:image", "itunes:link"), EntryReader._on_itunes_image),
    (("source",), EntryReader._on_source),
    (("media:group",), EntryReader._on_media_group),
)
_HANDLERS: dict[str, _Handler] = {name: handle for names, handle in _GROUPS for name in names}


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs
