"""Check the `sources:` list: each source's fields, a page's `select:`, a curated source's `items:`.

This module's one job is `_SourceChecker`, the per-source part of the
checker: it reads each source block (required and optional fields, `every`
or `cron`, duplicate keys, `select:` for pages, `items:` for curated
sources), applies the `defaults:` block as read (`_Defaults`), and builds
each `Source`.  It does not read the top level, `defaults:` or `settings:`
(`validate._Checker` does, building on this class), judge single values
(`values`, `notations`, `request_fields` for headers, proxy and timezone), or
implement the generic field reading (`fields`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ingest.config.fields import _FieldChecker
from ingest.config.notations import _cron, _date_format, _selector
from ingest.config.request_fields import _headers, _identity, _proxy, _timezone
from ingest.config.rule_fields import _rules
from ingest.config.values import (
    MAX_BODY,
    _Bad,
    _flag,
    _interval,
    _item_date,
    _key,
    _kind,
    _long_text,
    _param,
    _section,
    _size,
    _text,
    _timeout,
    _url,
)
from ingest.config.yaml_nodes import _NULL_TAG, _is_null, _kind_of, _line
from ingest.model import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_EVERY,
    DEFAULT_MIN_EVERY,
    DEFAULT_TIMEOUT,
    CuratedItem,
    Rule,
    Source,
)

__all__ = ["AUTO", "_SOURCE_FIELDS", "_Defaults", "_SourceChecker", "_body_size", "_every"]

_SOURCE_FIELDS: Final = (
    "key",
    "name",
    "url",
    "kind",
    "section",
    "every",
    "cron",
    "min_every",
    "max_every",
    "enabled",
    "include",
    "exclude",
    "strip_params",
    "select",
    "timeout",
    "max_body",
    "date_format",
    "day_first",
    "max_age",
    "items",
    "headers",
    "proxy",
    "timezone",
    "date_offset_fix",
    "identity",
    "rules",
)
_SELECT_FIELDS: Final = ("item", "title", "link", "date", "summary", "image")
_SELECT_REQUIRED: Final = ("item", "title", "link")
_ITEM_FIELDS: Final = ("title", "url", "summary", "image", "date")
_SOURCE_HINTS: Final = {
    **{f: f"; '{f}' belongs under select:" for f in _SELECT_FIELDS},
    "allow_networks": "; 'allow_networks' applies to every source, put it under defaults:",
}
_body_size: Final = _size(MAX_BODY, "1GiB")


def _span(seconds: float) -> str:
    """A duration as the shortest exact notation: 600 -> 10m, 90000 -> 25h."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_DEFAULT_EVERY: Final = Source(key="", name="", url="").every


AUTO: Final = -1.0  # what `_every` returns for `every: auto`


def _every(node: Node, name: str) -> float:
    """`every`: a duration, or `auto` (returned as `AUTO`) for the adaptive interval."""
    if isinstance(node, ScalarNode) and node.value.strip().lower() == "auto":
        return AUTO
    if isinstance(node, ScalarNode) and not any(c.isdigit() for c in node.value):
        raise _Bad(f"{name}: {node.value!r} is neither a duration (e.g. 30m) nor 'auto'", node)
    return _interval(node, name)


def _label(f: Mapping[str, tuple[Node, Node]]) -> str:
    """How to name a source in a message about a missing field: its key, else its name."""
    for name, template in (("key", "source {!r}"), ("name", "the source named {!r}")):
        node = f[name][1] if name in f else None
        if isinstance(node, ScalarNode) and node.tag != _NULL_TAG and node.value.strip():
            return template.format(node.value.strip())
    return "this source"


@dataclass(slots=True)
class _Defaults:
    """The `defaults:` block as read (by `validate._Checker`): what each source starts from."""

    every: float | None = None  # AUTO for `every: auto`
    cron: str | None = None
    min_every: float | None = None  # None: the model's default (or the source's own)
    max_every: float | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_body: int = DEFAULT_MAX_BODY
    section: str = "latest"
    enabled: bool = True
    strip_params: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


class _SourceChecker(_FieldChecker):
    """Checks the sources of one file; `validate._Checker` builds on it (see the module doc)."""

    def sources(self, pair: tuple[Node, Node], defaults: _Defaults) -> list[Source]:
        node = pair[1]
        if _is_null(node) or (isinstance(node, SequenceNode) and not node.value):
            self.add(_line(pair[0]), "'sources' lists no sources; add at least one")
            return []
        if not isinstance(node, SequenceNode):
            self.add(
                _line(node),
                f"'sources' must be a list of sources (each starting with '- key:'), "
                f"not {_kind_of(node)}",
            )
            return []
        out: list[Source] = []
        seen: dict[str, int] = {}
        for item in node.value:
            source = self.source(item, defaults, seen)
            if source is not None:
                out.append(source)
        return out

    def source(self, node: Node, d: _Defaults, seen: dict[str, int]) -> Source | None:
        if not isinstance(node, MappingNode):
            what = "empty" if _is_null(node) else _kind_of(node)
            self.add(_line(node), f"each source must be a block of key: value lines, not {what}")
            return None
        before = len(self.problems)
        f = self.fields(node, _SOURCE_FIELDS, "unknown field", "", _SOURCE_HINTS)
        # an optional field left empty (`every:`) counts as not given
        given = {n: pair for n, pair in f.items() if pair[1].tag != _NULL_TAG}

        kind: Literal["feed", "page", "curated"] | None = "feed"
        if "kind" in given:
            kind = self.convert(given["kind"], _kind, "kind")  # None: reported; skip select checks

        key = self._required(f, "key", _key, node)
        name = self._required(f, "name", _text, node)
        url: str | None = ""
        if kind != "curated":
            url = self._required(f, "url", _url, node)
        elif "url" in f:
            self.add(
                _line(f["url"][0]),
                "'url' is not used by kind: curated (each item has its own url); remove it",
            )
        if key is not None:
            line = _line(f["key"][1])
            if key in seen:
                self.add(
                    line,
                    f"key '{key}' is used twice (lines {seen[key]} and {line}); "
                    "each source needs its own key",
                )
            else:
                seen[key] = line

        section = self.optional(given, "section", _section, d.section)

        every, cron = d.every, d.cron
        if "every" in given and "cron" in given:
            self.add(
                _line(given["cron"][0]),
                "use either 'every' or 'cron', not both "
                f"('every' is on line {_line(given['every'][0])})",
            )
        if "every" in given:  # the source's own schedule replaces the default one
            every, cron = self.convert(given["every"], _every, "every"), None
        elif "cron" in given:
            cron = self.convert(given["cron"], _cron, "cron")
        auto = every == AUTO and "cron" not in given
        min_every, max_every = self.bounds(given, d, auto)

        enabled = self.optional(given, "enabled", _flag, d.enabled)
        include = self.strings(given["include"], "include") if "include" in given else ()
        exclude = self.strings(given["exclude"], "exclude") if "exclude" in given else ()
        strip = d.strip_params
        if "strip_params" in given:
            own = self.strings(given["strip_params"], "strip_params", "", _param)
            strip = tuple(dict.fromkeys(strip + own)) if strip else own
        timeout = self.optional(given, "timeout", _timeout, d.timeout)
        max_body = self.optional(given, "max_body", _body_size, d.max_body)
        max_age = self.optional(given, "max_age", _interval, None)

        for field in ("date_format", "day_first"):
            if field in given and kind in ("feed", "curated"):
                self.add(_line(given[field][0]), f"'{field}' is only for pages (kind: page)")
        date_format = self.optional(given, "date_format", _date_format, None)
        day_first = self.optional(given, "day_first", _flag, True)

        for field in ("headers", "proxy", "timezone", "date_offset_fix"):
            if field in given and kind == "curated":
                self.add(
                    _line(given[field][0]),
                    f"'{field}' is not used by kind: curated (no request is made, and each "
                    "item's date is written in the file)",
                )
        no_headers: tuple[tuple[str, str], ...] = ()
        headers = self.optional(given, "headers", _headers, no_headers)
        proxy = self.optional(given, "proxy", _proxy, None)
        timezone = self.optional(given, "timezone", _timezone, None)
        offset_fix = self.optional(given, "date_offset_fix", _flag, False)
        identity = self.optional(given, "identity", _identity, None)
        no_rules: tuple[Rule, ...] = ()
        rules = d.rules + self.optional(given, "rules", _rules, no_rules)
        if identity is not None and kind == "curated":
            self.add(
                _line(given["identity"][0]),
                "'identity' is not used by kind: curated (each item is its url)",
            )
        if offset_fix and "timezone" not in given:
            self.add(
                _line(given["date_offset_fix"][0]),
                "'date_offset_fix' needs a 'timezone:' (the zone the feed's times really are in)",
            )

        select: tuple[tuple[str, str], ...] = ()
        if kind is None:
            pass
        elif "select" in given:
            if kind == "page":
                select = self.select(given["select"])
            else:
                self.add(
                    _line(given["select"][0]),
                    "'select' is only for pages; add 'kind: page' or remove the select block",
                )
        elif kind == "page":
            self.add(
                _line(f["kind"][0]),
                "kind: page needs a 'select:' block with at least item, title and link",
            )

        items: tuple[CuratedItem, ...] = ()
        if kind == "curated":
            if "items" in f:
                items = self.curated_items(f["items"])
            else:
                self.add(
                    _line(f["kind"][0]),
                    "kind: curated needs an 'items:' list (each item with at least title and url)",
                )
        elif "items" in given and kind is not None:
            self.add(
                _line(given["items"][0]),
                "'items' is only for curated sources; add 'kind: curated' or remove the items",
            )

        if len(self.problems) > before or key is None or name is None or url is None:
            return None
        if kind is None:  # pragma: no cover - a bad kind is always a reported problem
            return None
        return Source(
            key=key,
            name=name,
            url=url,
            kind=kind,
            section=section,
            every=_DEFAULT_EVERY if every is None or every == AUTO else every,
            cron=cron,
            auto=auto,
            min_every=min_every,
            max_every=max_every,
            enabled=enabled,
            include=include,
            exclude=exclude,
            strip_params=strip,
            select=select,
            date_format=date_format,
            day_first=day_first,
            max_age=max_age,
            items=items,
            timeout=timeout,
            max_body=max_body,
            headers=headers,
            proxy=proxy,
            timezone=timezone,
            date_offset_fix=offset_fix,
            identity=identity,
            rules=rules,
            line=_line(node),
        )

    def bounds(
        self, given: Mapping[str, tuple[Node, Node]], d: _Defaults, auto: bool
    ) -> tuple[float, float]:
        """`min_every` and `max_every` (own, else from defaults:, else the model's)."""
        low = d.min_every if d.min_every is not None else DEFAULT_MIN_EVERY
        high = d.max_every if d.max_every is not None else DEFAULT_MAX_EVERY
        for name in ("min_every", "max_every"):
            if name in given and not auto:
                self.add(_line(given[name][0]), f"'{name}' only applies with 'every: auto'")
        low = self.optional(given, "min_every", _interval, low)
        high = self.optional(given, "max_every", _interval, high)
        if low > high and ("min_every" in given or "max_every" in given):
            where = given.get("max_every", given.get("min_every"))
            assert where is not None
            self.add(
                _line(where[0]),
                f"min_every ({_span(low)}) is longer than max_every ({_span(high)}); "
                "min_every is the shortest interval, max_every the longest",
            )
        return low, max(low, high)

    def _required(
        self,
        f: Mapping[str, tuple[Node, Node]],
        name: str,
        convert: Callable[[Node, str], str],
        node: MappingNode,
    ) -> str | None:
        if name not in f:
            self.add(_line(node), f"{_label(f)} has no '{name}' (required)")
            return None
        if _is_null(f[name][1]):
            self.add(_line(f[name][0]), f"'{name}' is empty (required)")
            return None
        return self.convert(f[name], convert, name)

    def select(self, pair: tuple[Node, Node]) -> tuple[tuple[str, str], ...]:
        node = self.mapping(pair, "select")
        if node is None:
            return ()
        w = "select: "
        f = self.fields(node, _SELECT_FIELDS, "unknown field", w)
        missing = [name for name in _SELECT_REQUIRED if name not in f]
        if missing:
            self.add(
                _line(pair[0]),
                f"select is missing {', '.join(repr(m) for m in missing)} "
                "(item, title and link are required)",
            )
        out: list[tuple[str, str]] = []
        for name, field_pair in f.items():
            value = self.convert(field_pair, _selector, name)
            if value is not None:
                out.append((name, value))
        return tuple(out)

    def curated_items(self, pair: tuple[Node, Node]) -> tuple[CuratedItem, ...]:
        """A curated source's `items:` list; every mistake is reported at its line."""
        node = pair[1]
        if _is_null(node) or (isinstance(node, SequenceNode) and not node.value):
            self.add(_line(pair[0]), "'items' lists no items; add at least one (title and url)")
            return ()
        if not isinstance(node, SequenceNode):
            self.add(
                _line(node),
                f"'items' must be a list of items (each starting with '- title:'), "
                f"not {_kind_of(node)}",
            )
            return ()
        out: list[CuratedItem] = []
        seen: dict[str, int] = {}
        w = "items: "
        for item in node.value:
            if not isinstance(item, MappingNode):
                what = "empty" if _is_null(item) else _kind_of(item)
                self.add(
                    _line(item), f"{w}each item must be a block of key: value lines, not {what}"
                )
                continue
            f = self.fields(item, _ITEM_FIELDS, "unknown field", w)
            given = {n: pair for n, pair in f.items() if pair[1].tag != _NULL_TAG}
            values: dict[str, str | None] = {}
            for field in ("title", "url"):
                if field not in given:
                    where = _line(f[field][0]) if field in f else _line(item)
                    self.add(where, f"{w}this item has no '{field}' (required)")
                    values[field] = None
                else:
                    convert = _url if field == "url" else _text
                    values[field] = self.convert(given[field], convert, field, w)
            summary = (
                self.convert(given["summary"], _long_text, "summary", w)
                if "summary" in given
                else None
            )
            image = self.convert(given["image"], _url, "image", w) if "image" in given else None
            date = self.convert(given["date"], _item_date, "date", w) if "date" in given else None
            title, url = values["title"], values["url"]
            if url is not None:
                line = _line(given["url"][1])
                if url in seen:
                    self.add(
                        line,
                        f"{w}url {url!r} is listed twice (lines {seen[url]} and {line}); "
                        "one story is one item",
                    )
                    continue
                seen[url] = line
            if title is not None and url is not None:
                out.append(CuratedItem(title, url, summary, image, date, _line(item)))
        return tuple(out)
