"""Check a whole sources file: the top level, defaults:, settings: and each source.

This module's one job is `_Checker`: compose the text, walk the top-level keys,
`defaults:`, `settings:` and `sources:` (with each page's `select:` and each
curated source's `items:`), apply the
defaults to every source, and return the sources and settings, or raise one
`ConfigError` with every problem in line order.  It does not read files or
build the `Config` (the package's `load_config` and `parse_config` do), judge
single values (`values`), or implement the generic field reading (`fields`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ingest.config.fields import _fail, _FieldChecker
from ingest.config.values import (
    _Bad,
    _count,
    _cron,
    _date_format,
    _flag,
    _fraction,
    _interval,
    _item_date,
    _key,
    _kind,
    _network,
    _param,
    _section,
    _selector,
    _size,
    _text,
    _url,
)
from ingest.config.yaml_nodes import (
    _NULL_TAG,
    _is_null,
    _kind_of,
    _line,
    _syntax_problem,
    _TextResolver,
)
from ingest.errors import ConfigError
from ingest.model import DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, CuratedItem, Settings, Source

__all__ = ["_Checker"]

_T = TypeVar("_T")
_Checked: TypeAlias = tuple[tuple[Source, ...], Settings]

_TOP_FIELDS: Final = ("defaults", "settings", "sources")
_SOURCE_FIELDS: Final = (
    "key",
    "name",
    "url",
    "kind",
    "section",
    "every",
    "cron",
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
)
_DEFAULT_FIELDS: Final = (
    "every",
    "cron",
    "timeout",
    "max_body",
    "section",
    "enabled",
    "strip_params",
    "allow_networks",
)
_SETTINGS_FIELDS: Final = (
    "concurrency",
    "per_host",
    "max_redirects",
    "user_agent",
    "backoff_max",
    "jitter",
    "retention",
    "history",
    "respect_max_age",
    "max_entries",
    "parse_cpu",
    "parse_memory",
)
_SELECT_FIELDS: Final = ("item", "title", "link", "date", "summary", "image")
_SELECT_REQUIRED: Final = ("item", "title", "link")
_ITEM_FIELDS: Final = ("title", "url", "summary", "image", "date")
_SOURCE_HINTS: Final = {
    **{f: f"; '{f}' belongs under select:" for f in _SELECT_FIELDS},
    "allow_networks": "; 'allow_networks' applies to every source, put it under defaults:",
}
_SETTINGS_HINTS: Final = {"allow_networks": "; 'allow_networks' belongs under defaults:"}
_DEFAULT_HINTS: Final = {
    f: f"; '{f}' cannot be a default, set it on each source"
    for f in _SOURCE_FIELDS
    if f not in _DEFAULT_FIELDS
}
_DEFAULT_EVERY: Final = Source(key="", name="", url="").every


def _image(node: Node, name: str) -> str:
    try:
        return _url(node, name)
    except _Bad as e:
        raise _Bad(e.message.replace("url ", f"{name} ", 1), e.node) from None


def _label(f: Mapping[str, tuple[Node, Node]]) -> str:
    """How to name a source in a message about a missing field: its key, else its name."""
    for name, template in (("key", "source {!r}"), ("name", "the source named {!r}")):
        node = f[name][1] if name in f else None
        if isinstance(node, ScalarNode) and node.tag != _NULL_TAG and node.value.strip():
            return template.format(node.value.strip())
    return "this source"


@dataclass(slots=True)
class _Defaults:
    every: float | None = None
    cron: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_body: int = DEFAULT_MAX_BODY
    section: str = "latest"
    enabled: bool = True
    strip_params: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()


class _Checker(_FieldChecker):
    """Checks one sources file, collecting every problem; see the module docstring."""

    # -- the whole file

    def check(self, text: str, loader: type[_TextResolver]) -> _Checked:
        # Composing a big file makes tens of thousands of small objects, which
        # sets off the cyclic collector again and again for nothing; pausing it
        # takes a 2,000-source file from ~85 ms to ~50 ms.  Restored after.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._check(text, loader)
        finally:
            if was_enabled:
                gc.enable()

    def _check(self, text: str, loader: type[_TextResolver]) -> _Checked:
        try:
            root = yaml.compose(text, Loader=loader)  # type: ignore[arg-type]
        except yaml.YAMLError as e:
            self.add(*_syntax_problem(text, e))
            raise ConfigError(self.problems) from e
        except RecursionError as e:  # the pure-Python parser on absurdly deep nesting
            _fail(self.path, 1, f"YAML syntax error: nested too deeply to read ({e})")
        if root is None:
            _fail(self.path, 1, "the file is empty; it needs a 'sources:' list")
        if not isinstance(root, MappingNode):
            _fail(
                self.path,
                _line(root),
                f"the file must be a mapping with a 'sources:' list, not {_kind_of(root)}",
            )
        top = self.fields(root, _TOP_FIELDS, "unknown top-level key", "")
        defaults = self.defaults(top["defaults"]) if "defaults" in top else _Defaults()
        settings = self.settings(top["settings"]) if "settings" in top else Settings()
        if defaults.allow_networks:  # process-wide, though written under defaults:
            settings = replace(settings, allow_networks=defaults.allow_networks)
        sources: list[Source] = []
        if "sources" not in top:
            self.add(1, "the file has no 'sources:' list")
        else:
            sources = self.sources(top["sources"], defaults)
        if self.problems:
            # an anchor used by many sources reports the same problem once
            unique = dict.fromkeys(self.problems)
            raise ConfigError(sorted(unique, key=lambda p: p.line))
        return tuple(sources), settings

    # -- defaults: and settings:

    def defaults(self, pair: tuple[Node, Node]) -> _Defaults:
        d = _Defaults()
        node = self.mapping(pair, "defaults")
        if node is None:
            return d
        w = "defaults: "
        f = self.fields(node, _DEFAULT_FIELDS, "unknown field", w, _DEFAULT_HINTS)
        f = {n: pair for n, pair in f.items() if pair[1].tag != _NULL_TAG}  # empty: not given
        if "every" in f and "cron" in f:
            self.add(_line(f["cron"][0]), f"{w}use either 'every' or 'cron', not both")
        if "every" in f:
            d.every = self.convert(f["every"], _interval, "every", w)
        if "cron" in f:
            d.cron = self.convert(f["cron"], _cron, "cron", w)
        if "timeout" in f:
            d.timeout = self.convert(f["timeout"], _interval, "timeout", w) or d.timeout
        if "max_body" in f:
            d.max_body = self.convert(f["max_body"], _size, "max_body", w) or d.max_body
        if "section" in f:
            d.section = self.convert(f["section"], _section, "section", w) or d.section
        if "enabled" in f:
            enabled = self.convert(f["enabled"], _flag, "enabled", w)
            d.enabled = d.enabled if enabled is None else enabled
        if "strip_params" in f:
            d.strip_params = self.strings(f["strip_params"], "strip_params", w, _param)
        if "allow_networks" in f:
            networks = self.strings(f["allow_networks"], "allow_networks", w, _network)
            d.allow_networks = tuple(dict.fromkeys(networks))
        return d

    def settings(self, pair: tuple[Node, Node]) -> Settings:
        s = Settings()
        node = self.mapping(pair, "settings")
        if node is None:
            return s
        w = "settings: "
        f = self.fields(node, _SETTINGS_FIELDS, "unknown setting", w, _SETTINGS_HINTS)
        return Settings(
            concurrency=self._setting(f, "concurrency", _count(1, 100_000), s.concurrency),
            per_host=self._setting(f, "per_host", _count(1, 100_000), s.per_host),
            max_redirects=self._setting(f, "max_redirects", _count(0, 20), s.max_redirects),
            user_agent=self._setting(f, "user_agent", _text, s.user_agent),
            backoff_max=self._setting(f, "backoff_max", _interval, s.backoff_max),
            jitter=self._setting(f, "jitter", _fraction, s.jitter),
            retention=self._setting(f, "retention", _interval, s.retention),
            history=self._setting(f, "history", _interval, s.history),
            respect_max_age=self._setting(f, "respect_max_age", _flag, s.respect_max_age),
            max_entries=self._setting(f, "max_entries", _count(1, 1_000_000), s.max_entries),
            parse_cpu=self._setting(f, "parse_cpu", _interval, s.parse_cpu),
            parse_memory=self._setting(f, "parse_memory", _size, s.parse_memory),
        )

    def _setting(
        self,
        f: Mapping[str, tuple[Node, Node]],
        name: str,
        convert: Callable[[Node, str], _T],
        default: _T,
    ) -> _T:
        if name not in f or _is_null(f[name][1]):
            return default
        value = self.convert(f[name], convert, name, "settings: ")
        return default if value is None else value

    # -- sources:

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

        section = d.section
        if "section" in given:
            section = self.convert(given["section"], _section, "section") or section

        every, cron = d.every, d.cron
        if "every" in given and "cron" in given:
            self.add(
                _line(given["cron"][0]),
                "use either 'every' or 'cron', not both "
                f"('every' is on line {_line(given['every'][0])})",
            )
        if "every" in given:  # the source's own schedule replaces the default one
            every, cron = self.convert(given["every"], _interval, "every"), None
        elif "cron" in given:
            cron = self.convert(given["cron"], _cron, "cron")

        enabled = d.enabled
        if "enabled" in given:
            flag = self.convert(given["enabled"], _flag, "enabled")
            enabled = enabled if flag is None else flag
        include = self.strings(given["include"], "include") if "include" in given else ()
        exclude = self.strings(given["exclude"], "exclude") if "exclude" in given else ()
        strip = d.strip_params
        if "strip_params" in given:
            own = self.strings(given["strip_params"], "strip_params", "", _param)
            strip = tuple(dict.fromkeys(strip + own)) if strip else own
        timeout = d.timeout
        if "timeout" in given:
            timeout = self.convert(given["timeout"], _interval, "timeout") or timeout
        max_body = d.max_body
        if "max_body" in given:
            max_body = self.convert(given["max_body"], _size, "max_body") or max_body
        max_age = (
            self.convert(given["max_age"], _interval, "max_age") if "max_age" in given else None
        )

        date_format: str | None = None
        day_first = True
        for field in ("date_format", "day_first"):
            if field in given and kind in ("feed", "curated"):
                self.add(_line(given[field][0]), f"'{field}' is only for pages (kind: page)")
        if "date_format" in given:
            date_format = self.convert(given["date_format"], _date_format, "date_format")
        if "day_first" in given:
            flag = self.convert(given["day_first"], _flag, "day_first")
            day_first = True if flag is None else flag

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
            every=_DEFAULT_EVERY if every is None else every,
            cron=cron,
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
            line=_line(node),
        )

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
                self.convert(given["summary"], _text, "summary", w) if "summary" in given else None
            )
            image = self.convert(given["image"], _image, "image", w) if "image" in given else None
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
